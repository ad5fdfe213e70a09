"""The named audio representations the spoken-NER task offers its fusion and audio tokenizer, each computed on
first use, so a batch computes only what a component consumes or an active loss needs.

A component says what it reads with a class attribute, ``consumes = ("frames", "ctc_posteriors")`` (its base
class, ``Fusion`` or ``AudioTokenizer``, has a default). What a fusion and a tokenizer are called with:

- fusion: ``forward(text, text_mask, frames, frame_mask, tokens, **others)``: the frames always (the encoder's
  output), ``tokens`` None unless consumed, each other consumed representation as a keyword argument;
- audio tokenizer: ``forward(frames, frame_lengths, ctc_logits, char_ids, char_lengths, **others)``: the CTC
  logits None unless consumed, each other consumed representation (``ctc_posteriors``, ``alignment``) as a
  keyword argument.
"""

from __future__ import annotations

import functools
from typing import Any

from torch import Tensor

from snlu.core.errors import ConfigError
from snlu.core.tensors import lengths_mask
from snlu.tokenizers.align import ctc_forced_align

VIEWS = {
    "frames": "the audio encoder's frames (B, T, Da), with frame_mask (B, T) True on real frames",
    "ctc_logits": "the CTC head's logits (B, T, V) over the output units (blank = 0)",
    "ctc_posteriors": "their softmax over the units (B, T, V), float32",
    "alignment": "the CTC forced alignment of the transcript (B, T) long: the character each frame is aligned to; "
                 "-1 for blank frames, padding, and utterances too short for their transcript",
    "tokens": "the audio tokenizer's vectors: one per word piece (B, N, Da) for a fusion (the mean over its "
              "characters), one per character (B, C, Da) for the audio CRF",
}
FUSION_ARGS = ("frames", "tokens")  # what a fusion gets positionally (frames with frame_mask)
TOKENIZER_ARGS = ("frames", "ctc_logits")  # what a tokenizer gets positionally (with lengths and characters)
FUSION_DEFAULT = ("tokens",)  # a fusion that declares nothing
TOKENIZER_DEFAULT = ("frames", "ctc_logits")  # a tokenizer that declares nothing


def consumed(component: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    """What a component (class or instance) reads: its ``consumes``, ``default`` when it has none."""
    return tuple(getattr(component, "consumes", default))


def check_consumes(section: str, component: Any, default: tuple[str, ...], offered: tuple[str, ...]) -> tuple[str, ...]:
    """``consumed(component)``, refused with a ConfigError naming ``section.name`` when it asks for something
    not ``offered``."""
    names = consumed(component, default)
    for name in names:
        if name not in offered:
            raise ConfigError(f"{section}.name: {getattr(component, '__qualname__', component)} consumes '{name}', "
                              f"which the spoken_ner task does not offer here (offered: {', '.join(offered)})")
    return names


class AudioViews:
    """One batch's audio representations, each computed on first use and at most once (``computed`` lists them)."""

    def __init__(self, task: Any, batch: dict[str, Any], frames: Tensor, frame_lengths: Tensor):
        self.task, self.batch = task, batch
        self.frames, self.frame_lengths = frames, frame_lengths
        self.computed: list[str] = ["frames"]

    def _done(self, name: str, value: Tensor) -> Tensor:
        self.computed.append(name)
        return value

    @functools.cached_property
    def frame_mask(self) -> Tensor:
        return lengths_mask(self.frame_lengths, self.frames.shape[1])

    @functools.cached_property
    def ctc_logits(self) -> Tensor:
        return self._done("ctc_logits", self.task.ctc_head(self.frames))  # (B, T, V)

    @functools.cached_property
    def ctc_posteriors(self) -> Tensor:
        return self._done("ctc_posteriors", self.ctc_logits.float().softmax(-1))

    @functools.cached_property
    def alignment(self) -> Tensor:
        log_probs = self.ctc_logits.detach().float().log_softmax(-1)
        index, _ = ctc_forced_align(log_probs, self.frame_lengths, self.batch["char_ids"], self.batch["char_lengths"])
        return self._done("alignment", index)

    @functools.cached_property
    def char_tokens(self) -> Tensor:
        """(B, C, Da): the tokenizer's vector of each transcript character."""
        tokenizer, wants = self.task.audio_tokenizer, self.task.wiring.tokenizer
        logits = self.ctc_logits if "ctc_logits" in wants else None
        return self._done("tokens", tokenizer(self.frames, self.frame_lengths, logits, self.batch["char_ids"],
                                              self.batch["char_lengths"], **self.others(wants, TOKENIZER_ARGS)))

    @functools.cached_property
    def tokens(self) -> Tensor:
        """(B, N, Da): the character vectors averaged over each word piece."""
        return self.batch["pool"].to(self.frames.dtype) @ self.char_tokens

    def others(self, wants: tuple[str, ...], positional: tuple[str, ...]) -> dict[str, Tensor]:
        """The consumed representations a component gets as keyword arguments."""
        return {name: getattr(self, name) for name in wants if name not in positional}
