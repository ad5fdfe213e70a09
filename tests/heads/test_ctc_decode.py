"""CTC decoding: prefix beam search finds the most probable label sequence (checked against brute force over
every alignment), beats best-path decoding where they differ, and respects padding."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch

from snlu.heads.ctc import CTCHead, prefix_beam_search


def brute_force(log_probs: torch.Tensor) -> tuple[tuple[int, ...], float]:
    """Sum the probability of every alignment into its collapsed label sequence; the best one."""
    t, v = log_probs.shape
    totals: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(v), repeat=t):
        labels = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))
        totals[labels] += math.exp(sum(log_probs[i, c].item() for i, c in enumerate(path)))
    return max(totals.items(), key=lambda kv: kv[1])


@pytest.mark.parametrize("seed", range(8))
def test_beam_search_is_exact_with_a_wide_beam(seed):
    g = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(6, 4, generator=g) * 1.5).log_softmax(-1)
    best, _ = brute_force(log_probs)
    assert tuple(prefix_beam_search(log_probs, beam_size=1100)) == best  # 1 + 3 + ... + 3^6 = 1093 prefixes


def test_beam_search_beats_best_path_where_they_differ():
    # Each frame: blank 0.6, "a" 0.4. Best path: blank blank -> "" (0.36); "a" sums 3 paths: 0.64.
    logits = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()[None]
    lengths = torch.tensor([2])
    assert CTCHead.decode(logits, lengths, beam_size=1) == [[]]
    assert CTCHead.decode(logits, lengths, beam_size=4) == [[1]]
    # a repeated label needs a blank in between: "a a" is only reachable through a-blank-a
    rep = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.1, 0.9]]).log()
    assert prefix_beam_search(rep, 4) == list(brute_force(rep)[0]) == [1, 1]


def test_beam_decode_respects_lengths():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 9, 5, generator=g) * 2
    logits[1, 5:] = 50.0  # padding must not matter
    out = CTCHead.decode(logits, torch.tensor([9, 5]), beam_size=5)
    assert out[1] == CTCHead.decode(logits[1:, :5], torch.tensor([5]), beam_size=5)[0]
    assert out[0] == CTCHead.decode(logits[:1], torch.tensor([9]), beam_size=5)[0]
