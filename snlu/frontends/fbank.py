"""Kaldi filterbank features, per-utterance or global CMVN, and SpecAugment in training only.

Feature extraction (``featurize``) runs per utterance in the data-loader workers (or once, into the
feature cache: snlu/data/features.py, keyed by ``feature_settings``); the module's ``forward`` normalises
and augments a padded batch on the model's device, so SpecAugment draws new masks every step and never
touches dev/test. Global CMVN comes from the training set, or from a file (``cmvn``: the ``cmvn.json``
that ``snlu-prepare`` writes, or a model folder's).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import Tensor, nn

from snlu.core.checks import in_range, one_of, positive
from snlu.core.errors import ConfigError
from snlu.core.frames import FRAME_LENGTH_MS, FRAME_SHIFT_MS, SAMPLE_RATE, fbank_frames
from snlu.core.schema import on_load, recipe_own
from snlu.core.tensors import lengths_mask
from snlu.registry import AUDIO_FRONTENDS

log = logging.getLogger("snlu")
NORMS = ("utterance", "utterance_bins", "global", "none")


@dataclasses.dataclass
class SpecAugmentConfig:
    """Frequency and time masks (2 x up to 30 % of bins, 2 x up to 5 % of frames <= 100)."""

    enabled: bool = True
    freq_masks: int = 2
    freq_width: float = 0.3
    time_masks: int = 2
    time_width: float = 0.05
    time_max: int = 100

    def __post_init__(self) -> None:
        in_range(self, "freq_width", 0.0, 1.0)
        in_range(self, "time_width", 0.0, 1.0)


@dataclasses.dataclass
class FbankConfig:
    """Kaldi fbank options and the normalisation mode."""

    num_mel_bins: int = 40
    frame_length_ms: float = FRAME_LENGTH_MS
    frame_shift_ms: float = FRAME_SHIFT_MS
    dither: float = dataclasses.field(default=0.0, metadata=recipe_own())
    norm: str = "utterance"  # utterance: one mean/std over the whole T x F matrix (reference) | utterance_bins:
    #   per mel bin over the utterance's frames | global: per-bin CMVN from the training set | none
    # with norm: global, read the statistics from this cmvn.json instead of computing them (a saved model has them)
    cmvn: str | None = dataclasses.field(default=None, metadata=on_load("clear"))
    specaug: SpecAugmentConfig = dataclasses.field(default_factory=SpecAugmentConfig, metadata=recipe_own())

    def __post_init__(self) -> None:
        positive(self, "num_mel_bins", "frame_length_ms", "frame_shift_ms")
        one_of(self, "norm", NORMS)
        if self.cmvn is not None:
            if self.norm != "global":
                raise ValueError(f"cmvn: statistics are used only with norm: global (norm is '{self.norm}')")
            if not Path(self.cmvn).is_file():
                raise ValueError(f"cmvn: file not found: {self.cmvn}")


@AUDIO_FRONTENDS.register("fbank", config=FbankConfig)
class Fbank(nn.Module):
    """Kaldi fbank (torchaudio) + utterance/global CMVN + SpecAugment during training."""

    def __init__(self, cfg: FbankConfig):
        super().__init__()
        self.cfg = cfg
        self.dim = cfg.num_mel_bins
        self.register_buffer("cmvn_mean", torch.zeros(self.dim))
        self.register_buffer("cmvn_std", torch.ones(self.dim))

    @classmethod
    def optimizer_groups(cls, cfg: FbankConfig, group: str) -> list[str]:
        """No trainable parameters (the CMVN statistics are buffers): in no optimiser group."""
        return []

    def featurize(self, wave: np.ndarray | Tensor) -> Tensor:
        """One 16 kHz float waveform in [-1, 1] -> (T, num_mel_bins) log-mel filterbank."""
        wave = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1) * 32768.0  # Kaldi scale
        return torchaudio.compliance.kaldi.fbank(
            wave,
            num_mel_bins=self.cfg.num_mel_bins,
            frame_length=self.cfg.frame_length_ms,
            frame_shift=self.cfg.frame_shift_ms,
            dither=self.cfg.dither,
            energy_floor=0.0,
            sample_frequency=SAMPLE_RATE,
        )

    def feature_settings(self) -> dict[str, Any]:
        """Everything ``featurize``'s output depends on (the feature cache's key, recorded in cmvn.json)."""
        c = self.cfg
        return {"frontend": "fbank", "sample_rate": SAMPLE_RATE, "num_mel_bins": c.num_mel_bins,
                "frame_length_ms": c.frame_length_ms, "frame_shift_ms": c.frame_shift_ms, "dither": c.dither,
                "energy_floor": 0.0, "scale": 32768.0}

    def num_frames(self, num_samples: int) -> int:
        """Frames ``featurize`` gives for ``num_samples`` (Kaldi snip_edges=True)."""
        return fbank_frames(num_samples, self.cfg.frame_length_ms, self.cfg.frame_shift_ms)

    def fit_cmvn(self, features: Iterable[Tensor]) -> dict[str, list[float]]:
        """Global mean/std over all frames of ``features`` (the training set); stored as buffers."""
        total, sq, n = torch.zeros(self.dim, dtype=torch.float64), torch.zeros(self.dim, dtype=torch.float64), 0
        for f in features:
            f = f.double()
            total += f.sum(0)
            sq += (f * f).sum(0)
            n += f.shape[0]
        return self.cmvn_from_sums(total, sq, n)

    def cmvn_from_sums(self, total: Any, sq: Any, n: int) -> dict[str, list[float]]:
        """Global mean/std from the per-bin sum and squared sum of ``n`` frames; stored as buffers."""
        if n == 0:
            raise ValueError("fit_cmvn: no frames")
        mean = torch.as_tensor(total, dtype=torch.float64) / n
        std = (torch.as_tensor(sq, dtype=torch.float64) / n - mean * mean).clamp_min(1e-10).sqrt()
        self.cmvn_mean.copy_(mean.float())
        self.cmvn_std.copy_(std.float())
        return self.cmvn_stats()

    def cmvn_stats(self) -> dict[str, list[float]]:
        return {"mean": self.cmvn_mean.tolist(), "std": self.cmvn_std.tolist()}

    def save_cmvn(self, path: Path, with_settings: bool = False) -> None:
        """``{"mean", "std"}`` (a model folder's cmvn.json); ``with_settings`` adds the features' settings."""
        stats: dict[str, Any] = self.cmvn_stats()
        if with_settings:
            stats["settings"] = self.feature_settings()
        path.write_text(json.dumps(stats))

    def load_cmvn(self, path: Path, key: str = "frontend.cmvn") -> None:
        """Global mean/std from a cmvn.json; one line naming ``key`` and the file when it does not fit."""
        try:
            stats = json.loads(Path(path).read_text(encoding="utf-8"))
            mean, std = (torch.tensor(stats[k], dtype=torch.float64) for k in ("mean", "std"))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{key}: {path}: not a cmvn.json with 'mean' and 'std' lists ({e})") from None
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ConfigError(f"{key}: {path}: statistics of dimension {list(mean.shape)}/{list(std.shape)}, "
                              f"the frontend has num_mel_bins={self.dim}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ConfigError(f"{key}: {path}: statistics must be finite with std > 0")
        mine = self.feature_settings()
        differ = {k: (v, mine.get(k)) for k, v in (stats.get("settings") or {}).items() if not _same(v, mine.get(k))}
        if differ:
            log.warning("%s: %s was computed with other frontend settings: %s", key, path,
                        ", ".join(f"{k} {a} (frontend: {b})" for k, (a, b) in differ.items()))
        self.cmvn_mean.copy_(mean.float())
        self.cmvn_std.copy_(std.float())

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, F) padded features -> normalised (and, in training, masked) features."""
        mask = lengths_mask(lengths, feats.shape[1]).unsqueeze(-1)
        if self.cfg.norm == "utterance":
            feats = utterance_norm(feats, mask, lengths)
        elif self.cfg.norm == "utterance_bins":
            n = lengths.clamp_min(1).to(feats.dtype)[:, None, None]
            mean = (feats * mask).sum(1, keepdim=True) / n
            var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / n
            feats = (feats - mean) / (var + 1e-5).sqrt()
        elif self.cfg.norm == "global":
            feats = (feats - self.cmvn_mean) / self.cmvn_std
        feats = feats * mask  # padding stays exactly zero
        if self.training and self.cfg.specaug.enabled:
            feats = spec_augment(feats, lengths, self.cfg.specaug)
        return feats


def utterance_norm(feats: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
    """Each utterance minus the mean, over the standard deviation, of all its T x F values (the reference's
    ``torch.std_mean(feature)``: one scalar pair per utterance, unbiased std; padding excluded)."""
    f = feats.shape[-1]
    n = (lengths.clamp_min(1) * f).to(feats.dtype)[:, None, None]  # values per utterance
    mean = (feats * mask).sum((1, 2), keepdim=True) / n
    var = (((feats - mean) * mask) ** 2).sum((1, 2), keepdim=True) / (n - 1).clamp_min(1)
    return (feats - mean) / var.sqrt().clamp_min(1e-5)  # (a constant utterance: no division by zero)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b)
    return a == b


def _random_masks(size: int, n: int, max_width: Tensor, extent: Tensor, gen_device: torch.device) -> Tensor:
    """``n`` random [start, start + width) masks per row, width < max_width, inside ``extent``: (B, size)."""
    b = max_width.shape[0]
    pos = torch.arange(size, device=gen_device)[None, :]
    masked = torch.zeros(b, size, dtype=torch.bool, device=gen_device)
    for _ in range(n):
        width = (torch.rand(b, device=gen_device) * (max_width + 1)).floor().clamp(max=extent)
        start = (torch.rand(b, device=gen_device) * (extent - width + 1)).floor()
        masked |= (pos >= start[:, None]) & (pos < (start + width)[:, None])
    return masked


def spec_augment(feats: Tensor, lengths: Tensor, cfg: SpecAugmentConfig) -> Tensor:
    """Zero ``freq_masks`` bands of bins and ``time_masks`` spans of frames, drawn per utterance."""
    b, t, f = feats.shape
    dev = feats.device
    lengths = lengths.to(dev).float()
    fmax = torch.full((b,), float(int(cfg.freq_width * f)), device=dev)
    fmask = _random_masks(f, cfg.freq_masks, fmax, torch.full((b,), float(f), device=dev), dev)
    tmax = (lengths * cfg.time_width).floor().clamp(max=cfg.time_max)
    tmask = _random_masks(t, cfg.time_masks, tmax, lengths, dev)
    keep = ~(fmask[:, None, :] | tmask[:, :, None])
    return feats * keep
