"""A test plugin of two fusions that compute as the raw fusion but cannot be exported: one branches in Python on a
tensor's value, one loops in Python over the frames (tests/export/test_exporter.py)."""

from __future__ import annotations

from torch import Tensor

from snlu.fusions.base import FusionConfig
from snlu.fusions.raw import RawFusion
from snlu.registry import FUSIONS


@FUSIONS.register("value_branch", config=FusionConfig)
class ValueBranchFusion(RawFusion):
    """The raw fusion, scaled when the frames are all zero: a Python branch on a tensor's value."""

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None
                ) -> Tensor:
        out = self.block(text, frames, frame_mask)
        if frames.abs().sum() == 0:
            out = out * 0.5
        return out


@FUSIONS.register("frame_loop", config=FusionConfig)
class FrameLoopFusion(RawFusion):
    """The raw fusion over frames summed one by one in a Python loop (over a length that varies)."""

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None
                ) -> Tensor:
        total = frames[:, 0] * 0
        for t in range(frames.shape[1]):
            total = total + frames[:, t]
        return self.block(text, frames + 0 * total[:, None], frame_mask)
