"""The numpy decoding beside exported graphs against the eager implementations: pytorch-crf's Viterbi,
snlu.heads.ctc's best path and prefix beam search."""

from __future__ import annotations

import numpy as np
import torch
from torchcrf import CRF

from snlu.export.decode import Viterbi, ctc_decode, ctc_greedy, log_softmax, prefix_beam_search
from snlu.heads.ctc import CTCHead
from snlu.heads.ctc import prefix_beam_search as eager_beam_search


def test_viterbi_equals_pytorch_crf():
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        b, p, k = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 15, (1,), generator=g)), 7
        crf = CRF(k, batch_first=True)
        for param in crf.parameters():
            torch.nn.init.normal_(param, generator=g)
        emissions = torch.randn(b, p, k, generator=g) * 3
        lengths = torch.randint(1, p + 1, (b,), generator=g)
        ref = crf.decode(emissions, mask=torch.arange(p)[None] < lengths[:, None])
        viterbi = Viterbi(*(x.detach().numpy() for x in (crf.start_transitions, crf.end_transitions,
                                                           crf.transitions)))
        assert viterbi.decode(emissions.numpy(), lengths.numpy()) == ref


def test_ctc_best_path_and_beam_search_equal_the_eager_ones():
    g = torch.Generator().manual_seed(1)
    for _ in range(40):
        b, t, v = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 25, (1,), generator=g)), 9
        logits = torch.randn(b, t, v, generator=g) * 3
        lengths = torch.randint(1, t + 1, (b,), generator=g)
        assert ctc_greedy(logits.numpy(), lengths.numpy()) == CTCHead.greedy_decode(logits, lengths)
        assert ctc_decode(logits.numpy(), lengths.numpy(), 1) == CTCHead.decode(logits, lengths, 1)
        for beam in (2, 4):
            assert ctc_decode(logits.numpy(), lengths.numpy(), beam) == CTCHead.decode(logits, lengths, beam)
        lp = logits.log_softmax(-1)
        assert prefix_beam_search(lp[0].numpy(), 3) == eager_beam_search(lp[0], 3)


def test_log_softmax_equals_torch():
    x = np.random.default_rng(0).standard_normal((3, 7, 11)).astype(np.float32) * 5
    assert np.allclose(log_softmax(x), torch.from_numpy(x).log_softmax(-1).numpy(), rtol=0, atol=1e-5)
