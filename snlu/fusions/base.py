"""The fusion contract and the BERT-style cross-attention block that ``raw`` and ``tokenized`` share.

A fusion is built as ``cls(cfg, text_dim, audio_dim, intermediate_size, text_heads)``: the text encoder's hidden
size, the audio encoder's, and the text encoder's feed-forward size and attention head count (what its options'
nulls follow). It gets the text states H_t (B, N, Dt) with their mask, the audio frames H_a (B, T, Da) with
their mask, and what else it consumes (``consumes``): the audio tokens A_tok (B, N, Da) already pooled to the
text's word pieces, the CTC logits or posteriors, the CTC forced alignment (the task's offer:
snlu/tasks/views.py). It returns one vector per word piece, (B, N, Dt). The classifier then sees [H_t; F].
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from snlu.core.checks import in_range, positive
from snlu.registry import FUSIONS


@dataclasses.dataclass
class FusionConfig:
    """Cross-attention options (hidden size follows the text encoder). ``num_heads`` null: the text encoder's
    head count (the reference builds the layer from a default ``BertConfig()``: 12 heads of 64 for a 768-wide
    BERT); ``dropout`` on the attention probabilities and the residual branches, as in BERT."""

    num_heads: int | None = None
    dropout: float = 0.1
    intermediate_size: int | None = None  # null: the text encoder's

    def __post_init__(self) -> None:
        if self.num_heads is not None:
            positive(self, "num_heads")
        in_range(self, "dropout", 0.0, 1.0)


class Fusion(nn.Module):
    """Base class: subclasses say which audio representations they read and implement ``forward``."""

    # What the task computes for it: frames, tokens, ctc_logits, ctc_posteriors, alignment (frames and frame_mask
    # are always passed; tokens is None unless consumed; the others come as keyword arguments when consumed).
    consumes: ClassVar[tuple[str, ...]] = ("tokens",)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None,
                **audio: Tensor) -> Tensor:
        raise NotImplementedError


FUSIONS.require(Fusion)


class CrossAttentionBlock(nn.Module):
    """Text queries attend to audio keys (projected Da -> Dt with tanh), then BERT's feed-forward block."""

    def __init__(self, text_dim: int, audio_dim: int, num_heads: int, dropout: float, intermediate: int):
        super().__init__()
        if text_dim % num_heads:
            raise ValueError(f"fusion.num_heads: must divide the text hidden size {text_dim}, got {num_heads}")
        self.heads = num_heads
        self.audio_proj = nn.Sequential(nn.Linear(audio_dim, text_dim), nn.Tanh())
        self.q, self.k, self.v = (nn.Linear(text_dim, text_dim) for _ in range(3))
        self.attn_out = nn.Linear(text_dim, text_dim)
        self.attn_norm = nn.LayerNorm(text_dim, eps=1e-12)
        self.intermediate = nn.Linear(text_dim, intermediate)
        self.output = nn.Linear(intermediate, text_dim)
        self.out_norm = nn.LayerNorm(text_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.p = dropout

    def _split(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, h, n, d/h)

    def forward(self, text: Tensor, audio: Tensor, audio_mask: Tensor) -> Tensor:
        """text (B, N, Dt), audio (B, S, Da), audio_mask (B, S) True on real keys -> (B, N, Dt)."""
        kv = self.audio_proj(audio)
        q, k, v = self._split(self.q(text)), self._split(self.k(kv)), self._split(self.v(kv))
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=audio_mask[:, None, None, :], dropout_p=self.p if self.training else 0.0
        )  # (B, h, N, d/h)
        ctx = ctx.transpose(1, 2).reshape(text.shape)
        x = self.attn_norm(text + self.dropout(self.attn_out(ctx)))
        return self.out_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))
