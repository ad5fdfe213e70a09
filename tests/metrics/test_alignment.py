"""Alignment quality: the frame -> ms convention, boundary errors against a brute-force computation over
torchaudio's forced alignment, a posteriorgram with known boundaries, the summary and the checks."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from snlu.core.errors import DataError, SnluError
from snlu.data.utterance import Utterance
from snlu.encoders.subsampling import Conv2dSubsampling
from snlu.metrics.alignment import boundary_errors, char_starts_ms, check_model, check_timings, frame_ms, summarize


def test_frame_ms_is_the_centre_of_what_the_subsampling_reads():
    torch.manual_seed(0)
    sub = Conv2dSubsampling(40, 16, channels=8)
    feats = torch.randn(1, 60, 40, requires_grad=True)
    out, _ = sub(feats, torch.tensor([60]))
    for k in (0, 1, 5, out.shape[1] - 1):
        (grad,) = torch.autograd.grad(out[0, k].sum(), feats, retain_graph=True)
        read = torch.nonzero(grad[0].abs().sum(1)).flatten().tolist()
        assert read == list(range(4 * k, 4 * k + 7))
        # fbank frame i covers samples [160 i, 160 i + 400) at 16 kHz: its centre is at (160 i + 200) / 16 ms.
        centre = np.mean([(160 * i + 200) / 16 for i in read])
        assert frame_ms(k) == pytest.approx(centre)


def random_case(seed: int, n_chars: int, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(n_frames, 12, generator=g).mul(3).log_softmax(-1)
    targets = torch.randint(1, 12, (n_chars,), generator=g)
    targets[2] = targets[1]  # a repeated character
    return log_probs, targets


def random_timings(seed: int, n_chars: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, n_chars), size=n_chars // 2, replace=False).tolist())
    edges = [0, *cuts, n_chars]
    times = sorted(rng.integers(0, 3000, size=len(edges)).tolist())
    return [[a, b, t, u] for a, b, t, u in zip(edges, edges[1:], times, times[1:])]


def test_boundary_errors_match_brute_force_over_torchaudio():
    cases = [random_case(s, n, t) for s, (n, t) in enumerate([(6, 30), (9, 40), (4, 12), (8, 25)])]
    width = max(len(lp) for lp, _ in cases)
    log_probs = torch.stack([torch.nn.functional.pad(lp, (0, 0, 0, width - len(lp))) for lp, _ in cases])
    targets = torch.nn.utils.rnn.pad_sequence([t for _, t in cases], batch_first=True)
    starts = char_starts_ms(log_probs, torch.tensor([len(lp) for lp, _ in cases]), targets,
                            torch.tensor([len(t) for _, t in cases]))
    for seed, ((lp, tg), mine) in enumerate(zip(cases, starts)):
        path, scores = AF.forced_align(lp[None], tg[None].int(), blank=0)
        spans = AF.merge_tokens(path[0], scores[0].exp())
        assert [s.token for s in spans] == tg.tolist()
        timings = random_timings(seed, len(tg))
        expected = []
        for char_start, _, start_ms, _ in timings:  # brute force: the span's first frame, its window's centre
            frame = spans[char_start].start
            fbank_frames = range(4 * frame, 4 * frame + 7)
            centre = sum((160 * i + 200) / 16 for i in fbank_frames) / 7
            expected.append(abs(centre - start_ms))
        assert boundary_errors(mine, timings) == pytest.approx(expected)


def test_posteriorgram_with_known_boundaries_gives_zero_error():
    # Frames 0-2 blank, then each character holds its frames; espeak's times are those frames' centres.
    bounds = [3, 7, 8, 12, 20, 23]  # first frame of characters 0..5; 26 frames in all
    labels = [4, 9, 9, 2, 7, 5]
    n_frames = 26
    probs = torch.full((n_frames, 10), 0.02)
    owner = [0] * n_frames  # blank
    for j, (b, e) in enumerate(zip(bounds, [*bounds[1:], n_frames])):
        for t in range(b, e):
            owner[t] = labels[j]
    for t, v in enumerate(owner):
        probs[t, v] = 1.0
    log_probs = (probs / probs.sum(-1, keepdim=True)).log()
    (starts,) = char_starts_ms(log_probs[None], torch.tensor([n_frames]), torch.tensor([labels]), torch.tensor([6]))
    timings = [[0, 1, frame_ms(3), 0], [1, 3, frame_ms(7), 0], [3, 4, frame_ms(12), 0], [4, 6, frame_ms(20), 0]]
    assert boundary_errors(starts, timings) == [0.0] * 4
    jitter = [-17.0, 3.5, 19.0, -0.5]  # espeak's times off the frame centres: the error is exactly the offset
    shifted = [[a, b, t + d, u] for (a, b, t, u), d in zip(timings, jitter)]
    assert boundary_errors(starts, shifted) == pytest.approx([abs(d) for d in jitter])


def test_infeasible_row_is_none():
    log_probs = torch.randn(1, 3, 6).log_softmax(-1)
    assert char_starts_ms(log_probs, torch.tensor([3]), torch.tensor([[1, 2, 3, 4]]), torch.tensor([4])) == [None]


def test_summarize():
    s = summarize([10.0, 20.0, 30.0, 40.0], n_utterances=2, skipped=1)
    assert s == {"mean_ms": 25.0, "p50_ms": 25.0, "p90_ms": 37.0, "n_boundaries": 4, "n_utterances": 2,
                 "skipped_utterances": 1}


def utt(timings) -> Utterance:
    return Utterance("u", "北京欢迎你", None, 1.0, [], [], {"sentence": "北京欢迎你", "timings": timings}, "t.jsonl:7")


def test_check_timings():
    good = [[0, 2, 0, 300], [2, 5, 300, 900]]
    assert check_timings(utt(good)) == good
    with pytest.raises(DataError, match=r"t.jsonl:7: field 'timings\[1\]': expected .* char_end <= 5, got \[2, 6"):
        check_timings(utt([[0, 2, 0, 300], [2, 6, 300, 900]]))
    with pytest.raises(DataError, match="field 'timings': expected a non-empty list"):
        check_timings(utt([]))


def test_check_model_needs_a_ctc_head():
    text_only = types.SimpleNamespace(cfg=types.SimpleNamespace(task=types.SimpleNamespace(name="text_ner")))
    with pytest.raises(SnluError, match="^runs/x: the model \\(task 'text_ner'\\) has no CTC head"):
        check_model(text_only, "runs/x")
    check_model(types.SimpleNamespace(frontend=1, audio_encoder=2, ctc_head=3), "runs/y")
