"""A test plugin (a single file, listed under ``plugins:`` in ctc_pool.yaml): a fusion that reads the CTC
posteriors, which the spoken_ner task offers by name, so no task subclass is needed.

Each utterance's frames are pooled with the CTC posterior that the frame is speech (1 - P(blank)) as weight;
the text gets a projection of that summary added to every word piece."""

from __future__ import annotations

from torch import Tensor, nn

from snlu.fusions.base import Fusion
from snlu.registry import FUSIONS


@FUSIONS.register("ctc_pool")
class CTCPoolFusion(Fusion):
    """The text plus the frames pooled by their CTC posterior of not being blank."""

    consumes = ("frames", "ctc_posteriors")

    def __init__(self, cfg: object, text_dim: int, audio_dim: int, intermediate_size: int, text_heads: int):
        super().__init__()
        self.proj = nn.Linear(audio_dim, text_dim)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None,
                ctc_posteriors: Tensor) -> Tensor:
        speech = (1 - ctc_posteriors[..., 0]) * frame_mask  # (B, T): blank is unit 0; padded frames weigh 0
        pooled = (speech.unsqueeze(-1) * frames.float()).sum(1) / speech.sum(1, keepdim=True).clamp_min(1e-6)
        return text + self.proj(pooled.to(frames.dtype)).unsqueeze(1)  # (B, N, Dt)
