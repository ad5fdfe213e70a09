"""The scan formulations of exported graphs against the originals: the CTC forced alignment against
snlu.tokenizers.align.ctc_forced_align, the CRF Viterbi against pytorch-crf's decode."""

from __future__ import annotations

import torch
from torchcrf import CRF

from snlu.export.scans import scan_forced_align, scan_viterbi
from snlu.tokenizers.align import ctc_forced_align


def test_forced_alignment_equals_the_loop():
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        b, t, v, n = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 5), (1, 30), (3, 8), (1, 8)))
        log_probs = torch.randn(b, t, v, generator=g).log_softmax(-1)
        frames = torch.randint(1, t + 1, (b,), generator=g)
        frames[0] = t
        targets = torch.randint(1, v, (b, n), generator=g)
        lengths = torch.randint(1, n + 1, (b,), generator=g)
        lengths[0] = n
        ref, ref_ok = ctc_forced_align(log_probs, frames, targets, lengths)
        got, ok = scan_forced_align(log_probs, frames, targets, lengths)
        assert torch.equal(got, ref) and torch.equal(ok, ref_ok)  # infeasible rows (too few frames) included


def test_viterbi_equals_pytorch_crf():
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        b, p, k = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 12, (1,), generator=g)), 7
        crf = CRF(k, batch_first=True)
        for param in crf.parameters():
            torch.nn.init.normal_(param, generator=g)
        emissions = torch.randn(b, p, k, generator=g)
        lengths = torch.randint(1, p + 1, (b,), generator=g)
        lengths[0] = p
        ref = crf.decode(emissions, mask=torch.arange(p)[None] < lengths[:, None])
        with torch.no_grad():
            tags = scan_viterbi(emissions, lengths, crf.start_transitions, crf.end_transitions, crf.transitions)
        assert [tags[i, : lengths[i]].tolist() for i in range(b)] == ref
