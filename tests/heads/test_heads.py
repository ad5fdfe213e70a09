"""CTC head (tied projection, infeasible lengths) and CRF head (masking, decoding)."""

from __future__ import annotations

import torch

from snlu.heads.ctc import CTCHead
from snlu.registry import HEADS


def test_ctc_projection_is_tied_to_embedding():
    head = HEADS.build("ctc", 16, 10)
    frames = torch.randn(2, 5, 16)
    torch.testing.assert_close(head(frames), frames @ head.embedding.t())
    assert head.embedding.shape == (10, 16)


def test_ctc_infeasible_utterance_gives_finite_loss_and_grads():
    torch.manual_seed(0)
    head = HEADS.build("ctc", 8, 6)
    frames = torch.randn(2, 10, 8, requires_grad=True)
    logits = head(frames)
    targets = torch.tensor([[1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]])
    lengths, target_lengths = torch.tensor([10, 4]), torch.tensor([3, 12])  # row 1: 4 frames for 12 chars
    loss = head.loss(logits, lengths, targets, target_lengths)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(frames.grad).all()
    assert frames.grad[1].abs().sum() == 0  # the infeasible row contributes nothing
    feasible_only = head.loss(logits[:1], lengths[:1], targets[:1], target_lengths[:1])
    torch.testing.assert_close(loss, feasible_only / 2)  # mean over the batch, infeasible counted as 0


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    logits = torch.full((1, 7, 4), -10.0)
    for t, c in enumerate([1, 1, 0, 1, 2, 2, 3]):
        logits[0, t, c] = 0
    assert CTCHead.greedy_decode(logits, torch.tensor([7])) == [[1, 1, 2, 3]]
    assert CTCHead.greedy_decode(logits, torch.tensor([4])) == [[1, 1]]


def test_crf_padding_does_not_change_loss_or_decode():
    torch.manual_seed(0)
    head = HEADS.build("crf", 12, 5).eval()
    x = torch.randn(2, 6, 12)
    tags = torch.randint(0, 5, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3], dtype=torch.bool)
    x_pad = x.clone()
    x_pad[1, 3:] = 100.0  # garbage in padding
    batch = head.decode(x_pad, mask)
    assert [len(t) for t in batch] == [6, 3]
    assert batch[1] == head.decode(x[1:, :3], mask[1:, :3])[0]
    alone = head.loss(x[1:, :3], tags[1:, :3], mask[1:, :3])
    both = head.loss(x_pad, tags, mask)
    torch.testing.assert_close(both, (head.loss(x[:1], tags[:1], mask[:1]) + alone) / 2)


def test_head_contracts():
    from snlu.testing import check_head

    check_head("crf", invalid=[{"dropout": 1.5}])
    check_head("ctc", kind="ctc")
