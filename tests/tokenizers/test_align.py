"""Tests for batched CTC Viterbi forced alignment (snlu.tokenizers.align)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchaudio.functional as AF

from snlu.tokenizers.align import alignment_mask, ctc_forced_align

BLANK = 0


def _random_batch(
    seed: int, B: int = 6, T: int = 40, L: int = 12, V: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random log-softmax frames with padded targets from a small vocab (so repeats happen)."""
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(B, T, V, generator=g).mul(3).log_softmax(-1)  # (B, T, V)
    input_lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    input_lengths[0] = T
    target_lengths = torch.randint(1, L + 1, (B,), generator=g)
    target_lengths[0] = L
    input_lengths[-1], target_lengths[-1] = L // 2, L  # infeasible: too few frames
    targets = torch.randint(1, V, (B, L), generator=g)  # (B, L), labels 1..V-1
    pad = torch.arange(L)[None, :] >= target_lengths[:, None]
    targets[pad] = -100  # arbitrary pad value
    return log_probs, input_lengths, targets, target_lengths


def _num_repeats(labels: list[int]) -> int:
    return sum(a == b for a, b in itertools.pairwise(labels))


def _torchaudio_token_index(log_probs: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """Per-frame token index from torchaudio.forced_align + merge_tokens (spans are in target order)."""
    frame_labels, scores = AF.forced_align(log_probs[None], labels[None], blank=BLANK)
    spans = AF.merge_tokens(frame_labels[0], scores[0], blank=BLANK)
    assert [span.token for span in spans] == labels.tolist()
    out = [-1] * log_probs.size(0)
    for j, span in enumerate(spans):
        out[span.start : span.end] = [j] * (span.end - span.start)
    return out


def _path_log_prob(log_probs: torch.Tensor, labels: list[int], token_index: list[int]) -> float:
    return sum(float(log_probs[t, BLANK if j < 0 else labels[j]]) for t, j in enumerate(token_index))


def _check_structure(token_index: list[int], num_tokens: int) -> None:
    """Monotone non-decreasing over aligned frames, and every token gets at least one frame."""
    aligned = [j for j in token_index if j >= 0]
    assert aligned == sorted(aligned)
    assert set(aligned) == set(range(num_tokens))


@pytest.mark.parametrize("seed", range(5))
def test_matches_torchaudio(seed: int) -> None:
    log_probs, input_lengths, targets, target_lengths = _random_batch(seed)
    token_index, feasible = ctc_forced_align(log_probs, input_lengths, targets, target_lengths, blank=BLANK)
    assert token_index.shape == (6, 40) and token_index.dtype == torch.long
    infeasible = 0
    for b in range(log_probs.size(0)):
        T_b, L_b = int(input_lengths[b]), int(target_lengths[b])
        labels = targets[b, :L_b]
        if T_b < L_b + _num_repeats(labels.tolist()):
            assert not feasible[b] and (token_index[b] == -1).all()
            infeasible += 1
            continue
        assert feasible[b]
        expected = _torchaudio_token_index(log_probs[b, :T_b], labels)
        assert token_index[b, :T_b].tolist() == expected
        assert (token_index[b, T_b:] == -1).all()
        _check_structure(token_index[b, :T_b].tolist(), L_b)
    assert infeasible >= 1


def test_matches_torchaudio_with_repeats_and_tight_lengths() -> None:
    # Heavy repeats (vocab of 2 non-blank labels) and lengths at / just above the feasibility bound.
    g = torch.Generator().manual_seed(123)
    cases = 0
    for _ in range(40):
        L = int(torch.randint(1, 8, (1,), generator=g))
        labels = torch.randint(1, 3, (L,), generator=g)
        need = L + _num_repeats(labels.tolist())
        T = need + int(torch.randint(0, 3, (1,), generator=g))
        log_probs = torch.randn(T, 3, generator=g).mul(2).log_softmax(-1)
        token_index, feasible = ctc_forced_align(
            log_probs[None], torch.tensor([T]), labels[None], torch.tensor([L])
        )
        assert feasible.item()
        assert token_index[0].tolist() == _torchaudio_token_index(log_probs, labels)
        _check_structure(token_index[0].tolist(), L)
        cases += 1
    assert cases == 40


def test_padding_invariance() -> None:
    log_probs, input_lengths, targets, target_lengths = _random_batch(7, B=5, T=50, L=10)
    token_index, feasible = ctc_forced_align(log_probs, input_lengths, targets, target_lengths)
    for b in range(5):
        T_b, L_b = int(input_lengths[b]), int(target_lengths[b])
        alone, feasible_alone = ctc_forced_align(
            log_probs[b : b + 1, :T_b],
            input_lengths[b : b + 1],
            targets[b : b + 1, :L_b],
            target_lengths[b : b + 1],
        )
        assert feasible_alone.item() == feasible[b].item()
        assert token_index[b, :T_b].tolist() == alone[0].tolist()
        assert (token_index[b, T_b:] == -1).all()
    # Garbage in padding frames / pad targets must not matter.
    noisy = log_probs.clone()
    pad_frames = torch.arange(50)[None, :] >= input_lengths[:, None]
    noisy[pad_frames] = torch.randn(int(pad_frames.sum()), log_probs.size(-1)).log_softmax(-1)
    noisy_targets = targets.clone()
    noisy_targets[noisy_targets < 0] = 999
    token_index2, feasible2 = ctc_forced_align(noisy, input_lengths, noisy_targets, target_lengths)
    assert torch.equal(token_index, token_index2) and torch.equal(feasible, feasible2)


def test_infeasible_rows() -> None:
    g = torch.Generator().manual_seed(3)
    log_probs = torch.randn(3, 6, 4, generator=g).log_softmax(-1)
    targets = torch.tensor([[1, 1, 2, 3], [1, 2, 3, 0], [2, 2, 2, 0]])
    target_lengths = torch.tensor([4, 3, 3])
    # Row 0 needs 5 frames but has 4; row 1 needs 3 and has 3; row 2 needs 5 and has 6 (but only 4 valid).
    input_lengths = torch.tensor([4, 3, 4])
    token_index, feasible = ctc_forced_align(log_probs, input_lengths, targets, target_lengths)
    assert feasible.tolist() == [False, True, False]
    assert (token_index[0] == -1).all() and (token_index[2] == -1).all()
    assert token_index[1].tolist() == [0, 1, 2, -1, -1, -1]
    # A single frame cannot hold two tokens; no exception, no NaN.
    token_index, feasible = ctc_forced_align(
        log_probs[:1, :1], torch.tensor([1]), targets[:1, :2], torch.tensor([2])
    )
    assert not feasible.item() and token_index.tolist() == [[-1]]
    # Zero-probability emissions also make a row infeasible.
    hard = torch.full((1, 3, 4), float("-inf"))
    hard[..., BLANK] = 0.0
    token_index, feasible = ctc_forced_align(hard, torch.tensor([3]), torch.tensor([[1]]), torch.tensor([1]))
    assert not feasible.item() and (token_index == -1).all()


def test_empty_target_and_half_precision() -> None:
    log_probs, input_lengths, targets, target_lengths = _random_batch(11, B=4, T=30, L=6)
    target_lengths[1] = 0
    targets[1] = -1
    token_index, feasible = ctc_forced_align(log_probs.half(), input_lengths, targets, target_lengths)
    assert feasible[1] and (token_index[1] == -1).all()
    ref, _ = ctc_forced_align(log_probs.half().float(), input_lengths, targets, target_lengths)
    assert torch.equal(token_index, ref)


def test_rejects_blank_in_targets() -> None:
    with pytest.raises(ValueError):
        ctc_forced_align(torch.zeros(1, 4, 3), torch.tensor([4]), torch.tensor([[1, 0]]), torch.tensor([2]))


def _brute_force_viterbi(log_probs: list[list[float]], labels: list[int]) -> tuple[list[int], float]:
    """Plain per-utterance CTC Viterbi over (t, s), torchaudio tie-breaking; returns (token_index, score)."""
    T, S = len(log_probs), 2 * len(labels) + 1
    ext = [BLANK if s % 2 == 0 else labels[s // 2] for s in range(S)]
    alpha = [[-math.inf] * S for _ in range(T)]
    back = [[0] * S for _ in range(T)]
    for s in range(min(2, S)):
        alpha[0][s] = log_probs[0][ext[s]]
    for t in range(1, T):
        for s in range(S):
            x0 = alpha[t - 1][s]
            x1 = alpha[t - 1][s - 1] if s >= 1 else -math.inf
            skip = s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]
            x2 = alpha[t - 1][s - 2] if skip else -math.inf
            if x2 > x1 and x2 > x0:
                best, back[t][s] = x2, 2
            elif x1 > x0:
                best, back[t][s] = x1, 1
            else:
                best, back[t][s] = x0, 0
            alpha[t][s] = best + log_probs[t][ext[s]]
    s = S - 1 if S == 1 or alpha[T - 1][S - 1] > alpha[T - 1][S - 2] else S - 2
    score = alpha[T - 1][s]
    token_index = [0] * T
    for t in range(T - 1, -1, -1):
        token_index[t] = (s - 1) // 2 if s % 2 == 1 else -1
        s -= back[t][s]
    return token_index, score


def _exhaustive_best(log_probs: list[list[float]], labels: list[int]) -> float:
    """Max log-prob over every valid CTC state path, enumerated by depth-first search."""
    T, S = len(log_probs), 2 * len(labels) + 1
    ext = [BLANK if s % 2 == 0 else labels[s // 2] for s in range(S)]
    best = -math.inf

    def walk(t: int, s: int, acc: float) -> None:
        nonlocal best
        acc += log_probs[t][ext[s]]
        if t == T - 1:
            if s >= S - 2:
                best = max(best, acc)
            return
        for nxt in (s, s + 1, s + 2):
            if nxt >= S or (nxt == s + 2 and (ext[nxt] == BLANK or ext[nxt] == ext[s])):
                continue
            walk(t + 1, nxt, acc)

    for s0 in range(min(2, S)):
        walk(0, s0, 0.0)
    return best


@pytest.mark.parametrize("ties", [False, True], ids=["random", "integer_ties"])
def test_against_brute_force_and_exhaustive_search(ties: bool) -> None:
    # With integer log-probs exact ties are everywhere, which pins down the tie-breaking rule (and catches
    # torchaudio's x1 == x2 > x0 bug, pytorch/audio#4221, which this implementation does not copy).
    g = torch.Generator().manual_seed(0)
    checked = 0
    for T in range(1, 7):
        for L in range(3):
            for _ in range(6):
                if ties:
                    log_probs = -torch.randint(0, 3, (T, 3), generator=g).double()
                else:
                    log_probs = torch.randn(T, 3, generator=g).mul(2).log_softmax(-1).double()
                labels = torch.randint(1, 3, (L,), generator=g)
                lp, lab = log_probs.tolist(), labels.tolist()
                token_index, feasible = ctc_forced_align(
                    log_probs[None], torch.tensor([T]), labels[None], torch.tensor([L])
                )
                best = _exhaustive_best(lp, lab)
                if T < L + _num_repeats(lab):
                    assert best == -math.inf and not feasible.item() and (token_index == -1).all()
                    continue
                ref_index, ref_score = _brute_force_viterbi(lp, lab)
                assert feasible.item()
                assert token_index[0].tolist() == ref_index
                assert ref_score == pytest.approx(best, abs=1e-9)
                assert _path_log_prob(log_probs, lab, token_index[0].tolist()) == pytest.approx(
                    best, abs=1e-9
                )
                _check_structure(token_index[0].tolist(), L)
                checked += 1
    assert checked > 60


def test_brute_force_with_ties_larger() -> None:
    # Tie-heavy inputs on larger sizes, batched: every row equals the per-utterance reference.
    g = torch.Generator().manual_seed(1)
    B, T, L, V = 16, 14, 6, 3
    log_probs = -torch.randint(0, 3, (B, T, V), generator=g).float()
    input_lengths = torch.randint(1, T + 1, (B,), generator=g)
    target_lengths = torch.randint(0, L + 1, (B,), generator=g)
    targets = torch.randint(1, V, (B, L), generator=g)
    token_index, feasible = ctc_forced_align(log_probs, input_lengths, targets, target_lengths)
    for b in range(B):
        T_b, L_b = int(input_lengths[b]), int(target_lengths[b])
        lab = targets[b, :L_b].tolist()
        if T_b < L_b + _num_repeats(lab):
            assert not feasible[b] and (token_index[b] == -1).all()
            continue
        ref_index, _ = _brute_force_viterbi(log_probs[b, :T_b].tolist(), lab)
        assert feasible[b]
        assert token_index[b].tolist() == ref_index + [-1] * (T - T_b)


def test_alignment_mask() -> None:
    token_index = torch.tensor([[0, 0, -1, 1, 2, -1], [-1, 1, 1, -1, -1, -1]])
    mask = alignment_mask(token_index, 3)
    assert mask.shape == (2, 3, 6) and mask.dtype == torch.bool
    assert mask[0].int().tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0]]
    assert mask[1].int().tolist() == [[0] * 6, [0, 1, 1, 0, 0, 0], [0] * 6]
    assert torch.equal(mask.any(1), token_index >= 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    log_probs, input_lengths, targets, target_lengths = _random_batch(5, B=8, T=60, L=15)
    cpu = ctc_forced_align(log_probs, input_lengths, targets, target_lengths)
    gpu = ctc_forced_align(log_probs.cuda(), input_lengths.cuda(), targets.cuda(), target_lengths.cuda())
    assert gpu[0].is_cuda
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())
