"""What the pretrained self-supervised speech encoders share (``hf_ssl``, ``whisper_encoder``): the local model
folder, the layer choice, freezing, pooling to the frame rate the rest of the model reads, the projection to its
width, and the frozen features a feature cache stores.

    samples (B, S, 1) -> backbone (the subclass) -> hidden states 0..L, each (B, T, D) at the model's ~50 /s
      -> the selected states (B, T, K, D) -> pooled ``downsample`` frames at a time (B, T', K, D')
      -> one state, or their learned softmax-weighted sum (SUPERB) (B, T', D') -> Linear -> (B, T', d_model)

The CTC head, the ``dpmask`` alignment and the fusions read 25 frames/s (40 ms, what snlu's own encoder gives):
``downsample: 0`` pools the model's frames to that rate. Frame counts come from the model's own arithmetic.

With ``freeze: all`` everything up to the pooled states is fixed, so the dataset's feature cache can hold it
(:class:`FrozenFeatures`: float16, keyed by a hash of the weights and the layer choice); the model then reads
(B, T', K * D') from the cache instead of samples and trains only what lies above.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import Tensor, nn

from snlu.core.checks import in_range, one_of, positive
from snlu.core.errors import ConfigError
from snlu.core.frames import SAMPLE_RATE
from snlu.core.schema import on_load, recipe_own
from snlu.core.tensors import lengths_mask

log = logging.getLogger("snlu")
FREEZE = ("none", "feature_encoder", "all")
POOLS = ("mean", "concat")
TARGET_FRAME_SAMPLES = SAMPLE_RATE * 40 // 1000  # 25 frames/s: what the CTC head, tokenizers and fusions read
SAVED = "snlu_weights.json"  # marks a saved snlu model's section folder: config files here, weights beside it
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TRAINING_ONLY = ("dropout", "layerdrop", "mask_", "apply_spec_augment", "_name_or_path", "transformers_version",
                 "architectures", "dtype")  # config keys that do not change a frozen model's eval outputs


@dataclasses.dataclass
class SSLConfig:
    """Options every pretrained speech encoder has. ``path``: the local model folder (config.json, weights,
    preprocessor_config.json); ``layer``: ``last``, ``weighted`` (a learned softmax-weighted sum of all hidden
    states) or N (hidden state N; 0 is the input of the first Transformer layer). The training options (freezing,
    dropout, checkpointing, the optimiser group) stay the recipe's under ``init_from``; the rest come from the run."""

    path: str = dataclasses.field(default=MISSING, metadata=on_load("saved_files"))  # saved: audio_encoder/
    layer: str = "last"
    freeze: str = dataclasses.field(default="feature_encoder", metadata=recipe_own())  # none | feature_encoder
    #   (the convolutions) | all
    unfreeze_after_steps: int = dataclasses.field(default=0, metadata=recipe_own())  # with freeze: all: frozen
    #   this many training batches, then all but the feature encoder trains (fairseq's freeze_finetune_updates)
    downsample: int = 0  # frames pooled into one; 0: to 25 frames/s, the rate the rest of the model reads
    pool: str = "mean"  # mean of the frames | concat (stacked, mixed by the projection)
    d_model: int = 256  # the projection's width: what the CTC head, the tokenizers and the fusions read
    dropout: float = dataclasses.field(default=0.0, metadata=recipe_own())  # on the projection's output
    checkpointing: bool = dataclasses.field(default=False, metadata=recipe_own())  # activation checkpointing of
    #   the Transformer layers (less memory, ~30 % slower)
    backbone_group: str | None = dataclasses.field(default=None, metadata=recipe_own())  # the optimiser group of
    #   the pretrained model (null: the encoder's own)
    init_from: str | None = dataclasses.field(default=None, metadata=on_load("clear"))  # a run to copy weights from

    model_types: ClassVar[tuple[str, ...]] = ()  # the config.json model types the encoder loads
    elsewhere: ClassVar[str] = ""  # where the other speech models go, for the error message

    def __post_init__(self) -> None:
        check_folder(self.path, self.model_types, self.elsewhere)
        if self.layer not in ("last", "weighted") and not str(self.layer).isdigit():
            raise ValueError(f"layer: expected last, weighted or a hidden-state number, got '{self.layer}'")
        one_of(self, "freeze", FREEZE)
        one_of(self, "pool", POOLS)
        positive(self, "d_model")
        in_range(self, "dropout", 0.0, 1.0)
        for name in ("downsample", "unfreeze_after_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.unfreeze_after_steps and self.freeze != "all":
            raise ValueError(f"unfreeze_after_steps: only with freeze: all (freeze is '{self.freeze}')")



def trains_backbone(cfg: Any) -> bool:
    """Whether any of the pretrained model trains (a config dataclass or a recipe section)."""
    return cfg.freeze != "all" or cfg.unfreeze_after_steps > 0


def check_folder(path: str, model_types: tuple[str, ...], elsewhere: str) -> dict[str, Any]:
    """The folder's config.json; ValueError ('path: ...') unless it is a local folder of a supported model."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"path: not a local model folder: '{path}' (snlu never downloads; see docs/ssl.md)")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"path: no readable config.json in '{path}' ({type(e).__name__})") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in model_types:
        raise ValueError(f"path: '{path}' holds a '{kind}' model; this encoder loads {', '.join(model_types)}"
                         f"{elsewhere}")
    if not (folder / "preprocessor_config.json").is_file():
        raise ValueError(f"path: no preprocessor_config.json in '{path}' (the feature extractor's settings: save "
                         "them with the model's feature extractor, docs/ssl.md)")
    if not (folder / SAVED).is_file() and not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ValueError(f"path: no weights in '{path}' ({' or '.join(WEIGHT_FILES[::2])})")
    return config


def has_weights(path: str) -> bool:
    """False for a saved snlu model's section folder (its weights are in the model's model.safetensors)."""
    return not (Path(path) / SAVED).is_file()


def weights_digest(module: nn.Module) -> str:
    """A hash of every tensor of ``module`` (names, shapes, dtypes, bytes) and of its eval-relevant config."""
    h = hashlib.sha1()
    config = getattr(module, "config", None)
    if config is not None:
        kept = {k: v for k, v in config.to_dict().items() if not any(t in k for t in TRAINING_ONLY)}
        h.update(json.dumps(kept, sort_keys=True, default=str).encode())
    for name, t in module.state_dict().items():
        if "masked_spec_embed" in name:  # the masking vector: never used in eval
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def quiet_transformers() -> None:
    """No progress bars or load reports (the unused heads of a checkpoint are expected); never the hub."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class SSLEncoder(nn.Module):
    """Base of the pretrained speech encoders. A subclass loads ``self.model`` (``load``) and implements
    ``backbone`` (samples -> hidden states), ``model_frames`` and ``feature_encoder``."""

    kind: ClassVar[str] = ""  # the registered name (the feature cache's folder prefix)

    @classmethod
    def dim_of(cls, cfg: SSLConfig) -> int:
        """The output width, from the config alone: what a recipe check reads instead of loading the model."""
        return cfg.d_model

    def __init__(self, cfg: SSLConfig, in_feats: int):
        super().__init__()
        if in_feats != 1:
            raise ConfigError(f"audio_encoder.name: {self.kind} reads the waveform: set frontend.name=waveform (this "
                              f"frontend gives {in_feats} features per frame)")
        self.cfg = cfg
        self.model = self.load(cfg)
        states = self.num_states()
        if cfg.layer == "weighted":
            self.selected = list(range(states))
        else:
            self.selected = [states - 1 if cfg.layer == "last" else int(cfg.layer)]
            if self.selected[0] >= states:
                raise ConfigError(f"audio_encoder.layer: {cfg.layer} is past the model's hidden states 0..{states - 1}")
        self.factor = self.pool_factor(cfg)
        width = self.hidden_size() * (self.factor if cfg.pool == "concat" else 1)
        self.layer_weights = nn.Parameter(torch.zeros(states)) if cfg.layer == "weighted" else None
        self.proj = nn.Linear(width, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.dim = cfg.d_model
        self.cached_dim = len(self.selected) * width  # what the feature cache holds per frame
        if cfg.unfreeze_after_steps:
            self.register_buffer("trained_batches", torch.zeros((), dtype=torch.long))
        self.freeze(cfg)
        if cfg.checkpointing:  # (transformers 5.2x renamed it; older 5.x have only the gradient_ name)
            enable = getattr(self.model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ------------------------------------------------------------------ what a subclass provides

    def load(self, cfg: SSLConfig) -> nn.Module:
        raise NotImplementedError

    def num_states(self) -> int:
        """Hidden states the backbone returns: the input of the first layer and each layer's output."""
        raise NotImplementedError

    def hidden_size(self) -> int:
        raise NotImplementedError

    def frame_samples(self) -> int:
        """Samples per model frame (320 for 20 ms)."""
        raise NotImplementedError

    def feature_encoder(self) -> nn.Module | list[nn.Module]:
        """The convolutional front that ``freeze: feature_encoder`` keeps fixed."""
        raise NotImplementedError

    def model_frames(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) frames of the model, by its own arithmetic."""
        raise NotImplementedError

    def backbone(self, wave: Tensor, lengths: Tensor) -> list[Tensor]:
        """(B, S) samples, (B,) lengths -> what ``kept`` keeps of the hidden states, each (B, T, D)."""
        raise NotImplementedError

    def kept(self, out: Any) -> list[Tensor]:
        """Of a transformers output: the model's output alone for ``layer: last`` (with layerdrop, skipped layers
        have no state), else hidden states 0..L with the model's output (after any final LayerNorm) as the last."""
        if self.cfg.layer == "last":
            return [out.last_hidden_state]
        return [*out.hidden_states[:-1], out.last_hidden_state]

    @property
    def wants_hidden_states(self) -> bool:
        return self.cfg.layer != "last"

    def input_settings(self) -> dict[str, Any]:
        """What else the features depend on (the normalisation): part of the feature cache's key."""
        return {}

    # ------------------------------------------------------------------ construction helpers

    def pool_factor(self, cfg: SSLConfig) -> int:
        if cfg.downsample:
            return cfg.downsample
        factor, rest = divmod(TARGET_FRAME_SAMPLES, self.frame_samples())
        if rest or not factor:
            raise ConfigError(f"audio_encoder.downsample: the model's frames are {self.frame_samples()} samples, "
                              f"which does not divide the 40 ms the rest of the model reads: set it explicitly")
        return factor

    def force_no_layerdrop(self, config: Any, key: str = "layerdrop") -> None:
        """A layer other than the last needs every layer to run: skipped layers would shift the hidden states."""
        if self.cfg.layer != "last" and getattr(config, key, 0.0):
            log.info("audio_encoder: %s set from %s to 0 (layer: %s needs every hidden state)", key,
                     getattr(config, key), self.cfg.layer)
            setattr(config, key, 0.0)

    def freeze(self, cfg: SSLConfig) -> None:
        """``requires_grad`` off for what never trains; what ``unfreeze_after_steps`` will train stays on (the
        optimiser must hold it from the start) and runs without gradients until then."""
        parts = self.feature_encoder()
        for part in parts if isinstance(parts, list) else [parts]:
            if cfg.freeze != "none":
                part.requires_grad_(False)
                part._requires_grad = False  # transformers' flag: no gradient forced through a frozen front
        if cfg.freeze == "all" and not cfg.unfreeze_after_steps:
            self.model.requires_grad_(False)
        if self.frozen():
            self.model.eval()

    def frozen(self) -> bool:
        """The whole pretrained model is fixed now (``freeze: all``, and not yet unfrozen)."""
        if self.cfg.freeze != "all":
            return False
        return not self.cfg.unfreeze_after_steps or int(self.trained_batches) < self.cfg.unfreeze_after_steps

    def train(self, mode: bool = True) -> SSLEncoder:
        super().train(mode)
        if self.frozen():  # a frozen model computes what the cache holds: no dropout, no masking
            self.model.eval()
        return self

    # ------------------------------------------------------------------ optimiser groups

    @classmethod
    def optimizer_groups(cls, cfg: SSLConfig, group: str) -> list[str]:
        """The encoder's group, and ``backbone_group`` when set and the pretrained model trains."""
        return [group, cfg.backbone_group] if cfg.backbone_group and trains_backbone(cfg) else [group]

    def group_overrides(self) -> dict[str, list[nn.Parameter]]:
        """The pretrained model's parameters go to ``backbone_group`` when it is set."""
        group = self.cfg.backbone_group
        return {group: [p for p in self.model.parameters() if p.requires_grad]} if group else {}

    # ------------------------------------------------------------------ frames

    def num_frames(self, num_samples: int) -> int:
        """Output frames for ``num_samples`` samples."""
        frames = self.model_frames(torch.tensor([num_samples])).clamp_min(0)
        return int((frames + self.factor - 1) // self.factor)

    def min_samples(self) -> int:
        """The fewest samples that give one output frame (the model's receptive field)."""
        lo, hi = 1, SAMPLE_RATE
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.num_frames(mid) > 0 else (mid + 1, hi)
        return lo

    def pool(self, x: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, K, D) states, (B,) frames -> (B, T', K, D') pooled ``factor`` frames at a time, (B,) T' counts.
        Padding is zeroed first and a last, partial window averages its real frames only (batch = alone)."""
        b, t, k, d = x.shape
        f = self.factor
        x = x * lengths_mask(frames, t)[:, :, None, None].to(x.dtype)
        if f == 1:
            return x, frames
        x = F.pad(x, (0, 0, 0, 0, 0, (-t) % f))
        t2 = x.shape[1] // f
        x = x.view(b, t2, f, k, d)
        pooled = (frames + f - 1) // f
        if self.cfg.pool == "concat":  # (B, T', K, f * D), frame-major
            return x.permute(0, 1, 3, 2, 4).reshape(b, t2, k, f * d), pooled
        starts = torch.arange(t2, device=frames.device)[None, :] * f
        real = (frames[:, None] - starts).clamp(1, f).to(x.dtype)  # real frames in each window: (B, T')
        return x.sum(2) / real[:, :, None, None], pooled

    # ------------------------------------------------------------------ forward

    def states(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) samples, (B,) lengths -> the selected states pooled (B, T', K, D'), (B,) frame counts."""
        with torch.no_grad() if self.frozen() else contextlib.nullcontext():
            hidden = self.backbone(wave, lengths)
            x = torch.stack([hidden[i] for i in ([0] if self.cfg.layer == "last" else self.selected)], dim=2)
            return self.pool(x, self.model_frames(lengths).clamp(0, x.shape[1]))

    def combine(self, states: Tensor) -> Tensor:
        """(B, T', K, D') -> (B, T', D'): the one state, or the softmax-weighted sum."""
        if self.layer_weights is None:
            return states[:, :, 0]
        weights = self.layer_weights.softmax(0).to(states.dtype)
        return (states * weights[None, None, :, None]).sum(2)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, 1) samples (or (B, T', K * D') frozen states from the feature cache), (B,) -> (B, T', d_model),
        (B,) frame counts."""
        if feats.shape[-1] == 1:
            states, lengths = self.states(feats[..., 0], lengths)
            if self.training and self.cfg.unfreeze_after_steps:
                self.count_batch()
        elif feats.shape[-1] == self.cached_dim:
            b, t, _ = feats.shape
            states = feats.view(b, t, len(self.selected), -1)
        else:
            raise ConfigError(f"audio_encoder: {self.kind} got {feats.shape[-1]} features per frame: expected samples "
                              f"(frontend.name=waveform) or {self.cached_dim} cached states")
        x = self.dropout(self.proj(self.combine(states)))
        return x * lengths_mask(lengths, x.shape[1])[..., None].to(x.dtype), lengths

    def count_batch(self) -> None:
        self.trained_batches += 1
        if int(self.trained_batches) == self.cfg.unfreeze_after_steps:
            log.info("audio_encoder: unfrozen after %d training batches (the feature encoder stays frozen)",
                     self.cfg.unfreeze_after_steps)
            self.model.train(self.training)

    # ------------------------------------------------------------------ data side and saving

    def data_features(self, frontend: Any) -> tuple[FrozenFeatures | None, int]:
        """What the data processor needs: the features a dataset's feature cache may hold (the frozen states, only
        with ``freeze: all``; None: the samples are read each time), and the fewest samples per utterance."""
        frozen = self.cfg.freeze == "all" and not self.cfg.unfreeze_after_steps
        return (FrozenFeatures(self) if frozen else None), self.min_samples()

    def save_files(self, out: Path) -> None:
        """The model's config and its feature extractor's (the weights are in the model's model.safetensors)."""
        out.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(out))
        self.feature_extractor.save_pretrained(str(out))
        (out / SAVED).write_text(json.dumps({"weights": "../model.safetensors", "prefix": "audio_encoder.model."}))


class FrozenFeatures:
    """A frozen encoder's selected, pooled hidden states of one utterance (T', K * D'): what a feature cache
    stores. Computed one utterance at a time (batch = alone), in this process (on the GPU when there is one)."""

    build_workers = 1  # the model runs in the building process, with its threads (and GPU)
    min_frames = 1

    def __init__(self, encoder: SSLEncoder):
        self.encoder = encoder
        self.dim = encoder.cached_dim
        self._settings: dict[str, Any] | None = None

    def num_frames(self, num_samples: int) -> int:
        return self.encoder.num_frames(num_samples)

    def featurize(self, wave: Any) -> Tensor:
        """One 16 kHz waveform -> (T', K * D') float32 on the CPU."""
        enc = self.encoder
        device = torch.device("cuda") if torch.cuda.is_available() else enc.proj.weight.device
        if enc.proj.weight.device != device:
            enc.to(device)
        x = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1).to(device)
        with torch.no_grad():
            states, _ = enc.states(x, torch.tensor([x.shape[1]], device=device))
        return states[0].flatten(1).float().cpu()

    def feature_settings(self) -> dict[str, Any]:
        """The cache's key: the weights (hashed once, on first use: after ``init_from``), layers and pooling."""
        if self._settings is None:
            enc = self.encoder
            self._settings = {"frontend": enc.kind, "weights": weights_digest(enc.model), "layers": enc.selected,
                              "downsample": enc.factor, "pool": enc.cfg.pool, **enc.input_settings()}
        return self._settings

    def __getstate__(self) -> dict[str, Any]:  # a spawned loader worker reads the cache: never copy the model
        self.feature_settings()
        return {**self.__dict__, "encoder": None}
