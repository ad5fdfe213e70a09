"""snlu.testing: the contract checks pass on the built-ins (their own tests call them) and FAIL on components
broken on purpose, each with a message naming the rule it broke."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from snlu.fusions.base import Fusion
from snlu.heads.crf import CRFHead
from snlu.registry import AUDIO_ENCODERS, AUDIO_TOKENIZERS, FUSIONS, HEADS
from snlu.testing import (
    ContractError,
    check_audio_encoder,
    check_audio_tokenizer,
    check_fusion,
    check_head,
)
from snlu.tokenizers.base import AudioTokenizerConfig
from snlu.tokenizers.dpmask import DPMaskTokenizer


@pytest.fixture(autouse=True)
def restore_registries():
    """The broken components registered here must not leak into other tests."""
    saved = {r: dict(r._entries) for r in (FUSIONS, AUDIO_TOKENIZERS, AUDIO_ENCODERS, HEADS)}
    yield
    for r, entries in saved.items():
        r._entries.clear()
        r._entries.update(entries)


@dataclasses.dataclass
class ScaleConfig:
    scale: float = 1.0


class MeanAudioFusion(Fusion):
    """Adds the mean audio frame to the text (a correct fusion; subclasses break it)."""

    consumes = ("frames",)

    def __init__(self, cfg, text_dim, audio_dim, intermediate_size, text_heads):
        super().__init__()
        self.proj = nn.Linear(audio_dim, text_dim)
        self.scale = cfg.scale

    def pooled(self, frames, frame_mask):
        m = frame_mask.unsqueeze(-1).to(frames.dtype)
        return (frames * m).sum(1) / m.sum(1)

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        return text + self.scale * self.proj(self.pooled(frames, frame_mask)).unsqueeze(1)


def register(registry, name, cls, config=ScaleConfig):
    registry.register(name, config=config)(cls)
    return name


def test_a_correct_plugin_fusion_passes():
    check_fusion(register(FUSIONS, "t_mean", MeanAudioFusion))


class LeaksPadding(MeanAudioFusion):
    """The mean runs over padded frames too."""

    def pooled(self, frames, frame_mask):
        return frames.mean(1)


class WrongSize(MeanAudioFusion):
    """Returns the audio size instead of the text size."""

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        return self.pooled(frames, frame_mask).unsqueeze(1).expand(-1, text.shape[1], -1)


class DetachedAudio(MeanAudioFusion):
    """The audio branch is detached: its projection never learns."""

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        return text + self.proj(self.pooled(frames, frame_mask)).unsqueeze(1).detach()


class ReadsTokens(MeanAudioFusion):
    """Says it needs no tokens (the task then passes None), then reads them."""

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        return super().forward(text, text_mask, frames, frame_mask, tokens) + tokens[..., :1]


@pytest.mark.parametrize(
    "cls, message",
    [
        (LeaksPadding, "padding .* leaks into real positions"),
        (WrongSize, r"forward's output must have shape \(2, 7, 32\), got \(2, 7, 16\)"),
        (DetachedAudio, "parameter 'proj.weight' gets no finite gradient"),
        (ReadsTokens, "does not consume .tokens. .* but forward fails with tokens=None"),
    ],
)
def test_broken_fusions_fail(cls, message):
    with pytest.raises(ContractError, match=message):
        check_fusion(register(FUSIONS, "t_broken", cls))


def test_unregistered_undocumented_and_unvalidated_components_fail():
    class Unregistered(MeanAudioFusion):
        """Never registered."""

    with pytest.raises(ContractError, match="is not registered in fusions"):
        check_fusion(Unregistered)

    class Undocumented(MeanAudioFusion):
        pass

    Undocumented.__doc__ = None
    with pytest.raises(ContractError, match="no docstring"):
        check_fusion(register(FUSIONS, "t_undoc", Undocumented))
    # ScaleConfig has no range check: a negative scale the plugin's test calls invalid is accepted
    name = register(FUSIONS, "t_scale", MeanAudioFusion)
    with pytest.raises(ContractError, match=r"accepts the invalid options \{'scale': -1.0\}"):
        check_fusion(name, invalid=[{"scale": -1.0}])
    with pytest.raises(ContractError, match="refuses"):
        check_fusion(name, options={"scale": "abc"})


def test_broken_tokenizer_fails():
    class AllFramesIncludingPadding(DPMaskTokenizer):
        """Softmax over every frame, padding included."""

        def frame_mask(self, ctc_logits, frame_lengths, char_ids, char_lengths):
            b, t = ctc_logits.shape[:2]
            return torch.ones(b, char_ids.shape[1], t, dtype=torch.bool)

    name = register(AUDIO_TOKENIZERS, "t_leaky", AllFramesIncludingPadding, AudioTokenizerConfig)
    with pytest.raises(ContractError, match="leaks into real characters"):
        check_audio_tokenizer(name)


def test_broken_encoder_fails():
    @dataclasses.dataclass
    class EncCfg:
        dim: int = 8

    class LengthsNotSubsampled(nn.Module):
        """Subsamples the frames by 2 but returns the input lengths."""

        def __init__(self, cfg, in_feats):
            super().__init__()
            self.dim = cfg.dim
            self.proj = nn.Linear(in_feats, cfg.dim)

        def forward(self, feats, lengths):
            return self.proj(feats[:, ::2]), lengths

    with pytest.raises(ContractError, match="frame_lengths must be long with 0 < length <= T'=60"):
        check_audio_encoder(register(AUDIO_ENCODERS, "t_enc", LengthsNotSubsampled, EncCfg))

    class TappedWithoutItsLastStep(nn.Module):
        """Two layers; encode_with_block forgets the second."""

        def __init__(self, cfg, in_feats):
            super().__init__()
            self.dim = cfg.dim
            self.first, self.second = nn.Linear(in_feats, cfg.dim), nn.Linear(cfg.dim, cfg.dim)

        def forward(self, feats, lengths):
            return self.second(self.first(feats)), lengths

        def encode_with_block(self, feats, lengths, block):
            inner = self.first(feats)
            return inner, lengths, inner

    with pytest.raises(ContractError, match="encode_with_block must return forward's frames and frame_lengths"):
        check_audio_encoder(register(AUDIO_ENCODERS, "t_tap", TappedWithoutItsLastStep, EncCfg))


def test_broken_head_fails():
    class SummedCRF(CRFHead):
        """CRF loss summed over the batch instead of averaged."""

        def loss(self, x, tags, mask):
            return -self.crf(self.emissions(x), tags, mask=mask, reduction="sum")

    with pytest.raises(ContractError, match="not the mean of each utterance's loss"):
        check_head(register(HEADS, "t_sum", SummedCRF, HEADS.get("crf").config))


def test_the_guides_smallest_fusion_passes(tmp_path):
    """docs/plugins.md's one-file FiLM fusion is real code that keeps the contract."""
    from pathlib import Path

    from snlu.plugins import LOADED, load_plugins

    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    code = guide.split("```python\n# film.py", 1)[1].split("```", 1)[0]
    (tmp_path / "film.py").write_text("# film.py" + code, encoding="utf-8")
    loaded = dict(LOADED)
    try:
        load_plugins(["film.py"], base_dir=tmp_path)
        check_fusion("film")
    finally:
        LOADED.clear()
        LOADED.update(loaded)
