"""CTC head: output projection tied to a character embedding matrix, blank = 0; optionally a second, auxiliary CTC
head on an intermediate encoder block (``aux``: intermediate CTC, Lee & Watanabe 2021) with units of its own."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snlu.registry import HEADS, UNITS


@dataclasses.dataclass
class AuxCTCConfig:
    """An auxiliary CTC on the output of encoder block ``block`` (1-based), over its own ``units`` (a ``UNITS``
    name: ``pinyin``, ``char``; ``pinyin_tones`` for pinyin) of the transcript, in training only: the CTC loss
    becomes ``(1 - weight) * main + weight * aux``."""

    units: str = "pinyin"
    pinyin_tones: bool = True
    block: int = 3
    weight: float = 0.3

    def __post_init__(self) -> None:  # (messages name aux.<key>: this config lives at ctc_head.aux)
        if self.units not in UNITS:
            raise ValueError(f"aux.units: expected one of {', '.join(UNITS.names())}, got '{self.units}'")
        if self.block <= 0:
            raise ValueError(f"aux.block: must be >= 1 (the first encoder block), got {self.block}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"aux.weight: must be in [0.0, 1.0], got {self.weight}")


@dataclasses.dataclass
class CTCConfig:
    """Options of the CTC head. ``train_embedding``: false computes the logits from the embedding matrix
    detached, as the reference does (``H . E.data^T``: CTC sends no gradient into E, which then keeps its
    initial, or ASR-pretrained, values); an ASR model must train it. ``aux``: an auxiliary CTC on an
    intermediate encoder block (null: none)."""

    dropout: float = 0.0
    train_embedding: bool = True
    aux: AuxCTCConfig | None = None


@HEADS.register("ctc", config=CTCConfig)
class CTCHead(nn.Module):
    """logits = H . E^T with E (vocab x d) a character embedding; infeasible utterances give loss 0, not inf."""

    blank = 0

    def __init__(self, cfg: CTCConfig, in_dim: int, vocab_size: int, aux_size: int = 0):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.embedding = nn.Parameter(torch.randn(vocab_size, in_dim) * in_dim**-0.5,
                                      requires_grad=cfg.train_embedding)
        aux = getattr(cfg, "aux", None)
        if aux is not None:  # (no submodule without it: the same parameters, in the same order, as before aux)
            if aux_size <= 0:
                raise ValueError("ctc_head.aux: the auxiliary CTC needs its units (aux_size)")
            self.aux_weight = float(aux.weight)
            self.aux = CTCHead(CTCConfig(dropout=cfg.dropout), in_dim, aux_size)  # its embedding always trains

    @classmethod
    def optimizer_groups(cls, cfg: CTCConfig, group: str) -> list[str]:
        """The head's group, unless its only parameter, the embedding, is frozen (``train_embedding: false``) and
        it has no auxiliary head."""
        return [group] if cfg.train_embedding or cfg.get("aux") is not None else []

    def mix(self, main: Tensor, aux: Tensor) -> Tensor:
        """The CTC loss with the auxiliary one: ``(1 - weight) * main + weight * aux``."""
        return (1.0 - self.aux_weight) * main + self.aux_weight * aux

    def forward(self, frames: Tensor) -> Tensor:
        """(B, T, d) -> (B, T, vocab) logits."""
        return self.dropout(frames) @ self.embedding.t()

    def loss(self, logits: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """Mean over the batch of per-utterance CTC loss divided by target length."""
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        # zero_infinity: an utterance whose subsampled length is shorter than its transcript
        # contributes 0 (and no gradient) instead of inf/NaN.
        return F.ctc_loss(
            log_probs, targets, lengths, target_lengths, blank=self.blank, reduction="mean", zero_infinity=True
        )

    @staticmethod
    def greedy_decode(logits: Tensor, lengths: Tensor) -> list[list[int]]:
        """Best path: argmax per frame, merge repeats, drop blanks."""
        best = logits.argmax(-1).tolist()
        out = []
        for row, n in zip(best, lengths.tolist()):
            ids, prev = [], None
            for i in row[:n]:
                if i != prev and i != CTCHead.blank:
                    ids.append(i)
                prev = i
            out.append(ids)
        return out

    @staticmethod
    def decode(logits: Tensor, lengths: Tensor, beam_size: int = 1) -> list[list[int]]:
        """Label ids per utterance: best path (``beam_size`` 1) or prefix beam search (``beam_size`` > 1)."""
        if beam_size <= 1:
            return CTCHead.greedy_decode(logits, lengths)
        log_probs = logits.detach().float().log_softmax(-1).cpu()
        return [prefix_beam_search(lp[:n], beam_size) for lp, n in zip(log_probs, lengths.tolist())]


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def prefix_beam_search(log_probs: Tensor, beam_size: int, blank: int = CTCHead.blank) -> list[int]:
    """The most probable label sequence of one utterance's (T, V) log-probabilities, by CTC prefix beam
    search without a language model (Graves 2012, sec. 7.5; Hannun et al. 2014).

    Each kept prefix carries its probability summed over all alignments, split into paths ending in blank
    and paths ending in its last label (a repeated label needs a blank between). Per frame, prefixes are
    extended by the ``beam_size`` most probable labels, then the ``beam_size`` best prefixes are kept (a beam
    wide enough to keep every prefix makes the search exact).
    """
    neg = -math.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg)}  # prefix -> (ends in blank, ends in label)
    k = min(beam_size, log_probs.shape[1])
    for row in log_probs:
        top = [c for c in row.topk(k).indices.tolist() if c != blank]
        lp = row.tolist()
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [neg, neg])
        for prefix, (b, nb) in beams.items():
            total = _logaddexp(b, nb)
            same = nxt[prefix]
            same[0] = _logaddexp(same[0], total + lp[blank])  # a blank keeps the prefix
            last = prefix[-1] if prefix else None
            if last is not None:
                same[1] = _logaddexp(same[1], nb + lp[last])  # the last label again, merged
            for c in top:
                ext = nxt[prefix + (c,)]
                ext[1] = _logaddexp(ext[1], (b if c == last else total) + lp[c])  # a repeat only after a blank
        best = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam_size]
        beams = {p: (v[0], v[1]) for p, v in best}
    return list(max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))[0])
