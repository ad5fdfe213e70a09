"""Recipes: YAML files with inheritance, ``key=value`` overrides, validated before anything is built.

A recipe has a few fixed sections (``plugins``, ``seed``, ``task``, ``data``, ``train``, ``optim``,
``scheduler``) and one section per component the task declares (``fusion: {name: raw, num_heads: 8}``). Each
component section is checked against the config dataclass its registered class declares (snlu.core.schema),
so an unknown key, a wrong type, a value out of range or an unknown name fails with the full key path before
any model or data is touched; then the task class checks what it can without data (``Task.check_recipe``:
learning rates of its optimiser groups, what its components consume).

This is the top of the recipe side: it loads plugins and reads the registries, and nothing below imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snlu.core.checks import positive
from snlu.core.errors import ConfigError
from snlu.core.schema import check_component, check_section, first_line
from snlu.plugins import list_option, load_plugins
from snlu.registry import AUGMENTATIONS, DATASETS, OPTIMIZERS, SCHEDULERS, TASKS, Registry
from snlu.tasks.io import adopt_pretrained

log = logging.getLogger("snlu")
FIXED_SECTIONS = ("plugins", "seed", "task", "data", "augment", "train", "optim", "scheduler")
PACKAGED = Path(__file__).parent / "recipes"  # the repository's recipes/, shipped as package data (a link here)
DEFAULT_NAMES = {"optim": "adamw", "scheduler": "epoch_decay"}  # sections whose name may be left out


@dataclasses.dataclass
class TrainConfig:
    """How the trainer runs: epochs, batches, device, logging, checkpoints and fault limits."""

    epochs: int = 20
    batch_size: int = 16
    eval_batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 1
    bucket_size: int = 64  # batches are drawn from length-sorted chunks of this many batches' worth
    batch_frames: int = 0  # > 0: batches hold as many utterances as fit in this many padded 10 ms frames
    #   (batch size x longest utterance; characters for text-only tasks) instead of batch_size utterances
    accum_steps: int = 1  # gradient accumulation: one optimizer step per this many batches
    max_steps: int = 0  # > 0: stop training after this many batches over the run (the epoch then ends as usual)
    amp: str = "auto"  # mixed precision: auto (bf16 on CUDA where supported, else fp16; off on CPU) | off | bf16 | fp16
    compile: bool = False  # torch.compile the text and audio encoders (CUDA; slower to start, on CPU rarely faster)
    log_every: int = 10
    checkpoint_every: int = 500  # steps between checkpoints in checkpoints/ (0: only at each epoch end)
    keep_checkpoints: int = 1  # the last K checkpoints are kept (each replaced atomically by the next)
    max_bad_steps: int = 10  # this many non-finite losses/gradients in a row stop the run
    max_oom_skips: int = 20  # CUDA out-of-memory batches skipped (over the run) before giving up
    deterministic: bool = False  # CUDA: deterministic algorithms and cuDNN (slower; CPU runs are already)
    wandb: bool = False  # also log to Weights & Biases (when installed; TensorBoard files are always written)
    wandb_project: str = "snlu"

    def __post_init__(self) -> None:
        positive(self, "epochs", "batch_size", "eval_batch_size", "log_every", "bucket_size", "keep_checkpoints",
                 "max_bad_steps", "accum_steps")
        for name in ("num_workers", "checkpoint_every", "max_oom_skips", "batch_frames", "max_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got '{self.device}'")
        if self.amp in ("False", "false"):  # YAML 1.1 reads an unquoted `off` (recipe or key=value) as false
            self.amp = "off"
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp: expected auto, off, bf16 or fp16, got '{self.amp}'")


# ----------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file (safe loader) into a mapping, with file-named errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read recipe: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', None) or first_line(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def packaged_recipe(name: str | Path) -> Path | None:
    """The recipe shipped with snlu under ``name`` (``fusion_raw_all``, ``fusion_raw_all.yaml``,
    ``base/m3t.yaml``), None if there is none."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    for candidate in (PACKAGED / name, PACKAGED / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def find_recipe(name: str | Path, near: Path | None = None) -> Path:
    """A recipe file: ``name`` as a path (relative to ``near``, the folder of the recipe whose ``defaults`` name
    it, else to the working folder) when that file exists (a local file wins), else the packaged recipe of
    that name (logged), else ``name`` as given (reading it then says it is not found)."""
    local = (near / name) if near is not None else Path(name)
    packaged = packaged_recipe(name)
    if local.is_file():
        if near is not None and packaged is not None and local.resolve() != packaged.resolve():
            log.info("recipe %s: %s (beside the recipe; the packaged one of that name is not used)", name,
                     local.resolve())
        return local
    if packaged is not None:
        log.info("recipe %s: the packaged %s", name, packaged)
        return packaged
    return local


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """Read a recipe and the base recipes its ``defaults`` list names (relative to the file; a name no file
    beside it has is a packaged recipe's: ``defaults: [fusion_raw_all.yaml]`` works from any folder)."""
    path = (path if _seen else find_recipe(path)).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: recipe inherits from itself ({' -> '.join(p.name for p in _seen)})")
    data = read_yaml(path)
    bases = data.pop("defaults", []) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: defaults: expected a list of recipe paths")
    merged = OmegaConf.create()
    for base in bases:
        merged = merge_layer(merged, load_raw(find_recipe(base, path.parent), (*_seen, path)))
    try:
        return merge_layer(merged, OmegaConf.create(data))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path}: {first_line(e)}") from None


def merge_layer(base: DictConfig, layer: DictConfig) -> DictConfig:
    """Merge ``layer`` over ``base``; a section whose component ``name`` changes starts afresh,
    so ``fusion: {name: concat}`` over a ``raw`` section does not inherit raw's options."""
    base = base.copy()
    for key in layer:
        old, new = base.get(key), layer[key]
        both = isinstance(old, DictConfig) and isinstance(new, DictConfig)
        if both and new.get("name") not in (None, old.get("name")):
            base.pop(key)  # a different component: its section is the new layer's alone
    return OmegaConf.merge(base, layer)


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Merge command-line ``key=value`` overrides (OmegaConf dotlist syntax)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value")
    try:
        return merge_layer(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as e:
        raise ConfigError(f"overrides: {first_line(e)}") from None


# ----------------------------------------------------------------------------- validation


def validate(raw: DictConfig) -> DictConfig:
    """Validate a whole recipe (plugins already loaded); return the resolved config."""
    try:
        raw = OmegaConf.create(OmegaConf.to_container(raw, resolve=True))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', '') or 'recipe'}: {first_line(e)}") from None
    if "task" not in raw:
        raise ConfigError(f"task: missing required section (one of: {', '.join(TASKS.names())})")
    task = check_component(TASKS, raw.task, "task")
    sections: dict[str, Registry] = {"data": DATASETS, **TASKS.get(task.name).cls.components}
    valid = list(dict.fromkeys([*FIXED_SECTIONS, *sections]))
    for key in raw:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{key}: unknown section for task '{task.name}'{hint} (valid: {', '.join(valid)})")
    out = OmegaConf.create(
        {
            "plugins": list_option(raw.get("plugins"), "plugins"),
            "seed": _seed(raw.get("seed", 42)),
            "task": task,
        }
    )
    for key, registry in sections.items():
        if key not in raw:
            raise ConfigError(f"{key}: missing required section for task '{task.name}' "
                              f"(one of: {', '.join(registry.names())})")
        out[key] = check_component(registry, raw[key], key)
    out.augment = check_augment(raw.get("augment"), task.name, TASKS.get(task.name).cls.uses_audio)
    out.train = check_section(TrainConfig, raw.get("train"), "train")
    for key, registry in (("optim", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        out[key] = check_component(registry, _named(raw.get(key), key), key)
    if "audio_encoder" in sections and out.audio_encoder.get("init_from"):
        out = adopt_pretrained(out)  # the pretrained run's frontend and encoder: checked below like the recipe's
    for warning in TASKS.get(task.name).cls.check_recipe(out):  # what the task can check without data
        log.warning("%s", warning)
    return out


def check_augment(values: Any, task: str, uses_audio: bool) -> list[Any]:
    """The ``augment`` list: each item a waveform augmentation of the training split (``augment[i]`` in errors)."""
    if values is None:
        return []
    if not isinstance(values, (list, ListConfig)):
        raise ConfigError(f"augment: expected a list of augmentations ([{{name: speed}}, ...]), got "
                          f"{type(values).__name__}")
    if values and not uses_audio:
        raise ConfigError(f"augment: task '{task}' reads no audio: nothing to augment")
    return [check_component(AUGMENTATIONS, item, f"augment[{i}]") for i, item in enumerate(values)]


def _named(values: Any, key: str) -> Any:
    """A section that may leave its component ``name`` out (``optim: {lrs: ...}`` is AdamW)."""
    if values is None:
        values = {}
    if isinstance(values, (dict, DictConfig)) and values.get("name") is None:
        if key == "optim" and "lr_decay" in values:
            raise ConfigError("optim.lr_decay: moved to its own section: scheduler: {name: epoch_decay, decay: "
                              f"{values['lr_decay']}}}")
        values = {**OmegaConf.to_container(OmegaConf.create(values)), "name": DEFAULT_NAMES[key]}
    return values


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {value!r}")
    return value


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """Read, override, load plugins, validate: the one entry point for recipes."""
    path = find_recipe(path)
    raw = apply_overrides(load_raw(path), list(overrides or []))
    load_plugins(raw.get("plugins"), base_dir=path.resolve().parent)
    return validate(raw)


