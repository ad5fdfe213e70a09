"""Task I/O: a trained task as a folder (``best/``), read back without the recipe; weights copied from another run.

A model folder holds ``model.safetensors`` (weights and buffers), ``config.yaml`` (the recipe it was trained
with), the units (``vocab.json`` or ``units.model``), the task's assets (``labels.json``, ``cmvn.json``,
``markers.json``) and the files a component writes of its own (``text_encoder/``: the BERT config and
tokenizer). Loading reads YAML and safetensors only: nothing is unpickled.

A component's config says, field by field, what a saved model's config holds for it
(``snlu.core.schema.on_load``): no task edits another section's config.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model
from torch import Tensor, nn

from snlu.core.errors import ConfigError, SnluError
from snlu.core.schema import ON_LOAD
from snlu.data.units import load_units, units_file, units_kind
from snlu.data.vocab import CharVocab
from snlu.plugins import load_plugins
from snlu.registry import TASKS
from snlu.tasks.aux_ctc import load_aux_units

log = logging.getLogger("snlu")
WEIGHTS = "model.safetensors"


# ----------------------------------------------------------------------------- saving


def save(task: Any, out: Path) -> None:
    """Write everything needed to reload ``task`` without the recipe; atomic (a temp folder, then rename)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(task, str(tmp / WEIGHTS))
    OmegaConf.save(task.cfg, tmp / "config.yaml")
    task.vocab.save(tmp / task.vocab.file)
    task.save_assets(tmp)
    for section in task.components:  # a component's own files, in a folder named after its section
        module = getattr(task, section, None)
        if callable(getattr(module, "save_files", None)):
            module.save_files(tmp / section)
    for f in tmp.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = out.with_name(out.name + ".old")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- loading


def saved_config(cfg: DictConfig, components: dict[str, Any], folder: Path) -> DictConfig:
    """``cfg`` as the saved model rebuilds it: each component field declared ``on_load`` set accordingly
    (``clear``: null; ``saved_files``: the folder's subfolder of that section)."""
    for section, registry in components.items():
        if section not in cfg or "name" not in cfg[section]:
            continue
        for f in dataclasses.fields(registry.get(str(cfg[section].name), key=f"{section}.name").config):
            action = f.metadata.get(ON_LOAD)
            if action == "clear":
                cfg[section][f.name] = None
            elif action == "saved_files":
                cfg[section][f.name] = str(folder / section)
    return cfg


def load(folder: str | Path) -> Any:
    """Rebuild a saved task (a run folder or its ``best/``) from its config and safetensors weights."""
    folder = Path(folder)
    if (folder / "best" / WEIGHTS).is_file():
        folder = folder / "best"
    for need in (WEIGHTS, "config.yaml"):
        _need(folder, need)
    # Every problem below is one line naming the file: a model folder is input like any other.
    try:  # OmegaConf's YAML loader is a safe loader: no python/* tags; names go through the registries
        cfg = OmegaConf.load(folder / "config.yaml")
        load_plugins(cfg.get("plugins"))
        cls = TASKS.get(str(cfg.task.name), key="task.name").cls
        cfg = saved_config(cfg, cls.components, folder)
        kind = units_kind(cfg.task)
        units_file(kind)  # an unknown kind: a one-line error naming task.units
    except SnluError as e:
        raise SnluError(f"{folder / 'config.yaml'}: {e}") from None
    except Exception as e:  # yaml and OmegaConf errors: unreadable or not a model config
        raise SnluError(f"{folder / 'config.yaml'}: not a valid model config: {first_line(e)}") from None
    vocab_file = folder / _need(folder, units_file(kind))
    try:
        vocab = load_units(vocab_file, kind)
    except (OSError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise SnluError(f"{vocab_file}: not a vocabulary: {first_line(e)}") from None
    try:
        assets = cls.load_assets(folder, cfg)
        aux = load_aux_units(folder, cfg)
        task = cls(cfg, vocab, load_weights=False, **assets, **({"aux_units": aux} if aux is not None else {}))
    except SnluError:
        raise
    except Exception as e:  # a missing or broken labels.json, text_encoder/ files, config values
        raise SnluError(f"{folder}: cannot rebuild the model: {first_line(e)}") from None
    check_weights(folder, task)
    try:
        missing, unexpected = load_model(task, str(folder / WEIGHTS), strict=False)
    except (RuntimeError, SafetensorError, OSError) as e:
        raise SnluError(f"{folder / WEIGHTS}: weights do not match the model: {first_line(e)}") from None
    if missing or unexpected:
        raise SnluError(f"{folder / WEIGHTS}: weights do not match the model "
                        f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return task


def _need(folder: Path, name: str) -> str:
    """``name`` when ``folder`` has that file, else the one-line error of a folder that is not a saved model."""
    if not (folder / name).is_file():
        raise SnluError(f"{folder / name}: not found ({folder} is not a saved model: a run's best/ folder)")
    return name


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` of an exception from a library."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def check_weights(folder: Path, task: Any) -> None:
    """Compare the shapes in ``folder/model.safetensors`` (its header only) with the rebuilt model's; a
    mismatch in the vocabulary or label dimension names the vocabulary file (vocab.json, units.model) or
    labels.json."""
    path = folder / WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise SnluError(f"{path}: unreadable weights file: {first_line(e)}") from None
    own = task.state_dict()
    sizes = [(task.vocab.file, len(task.vocab))]
    if getattr(task, "labels", None) is not None:
        sizes.append(("labels.json", len(task.labels)))
    for key, shape in shapes.items():
        mine = list(own[key].shape) if key in own else shape
        if mine == shape:
            continue
        for name, size in sizes:
            if len(mine) == len(shape) and any(m == size != s for m, s in zip(mine, shape)):
                raise SnluError(f"{folder / name}: {size} entries do not match the weights in {path} "
                                f"({key} is {shape} there, {mine} with this file)")
        raise SnluError(f"{path}: weights do not match the model of {folder / 'config.yaml'} "
                        f"({key} is {shape} there, {mine} in the model)")


# ----------------------------------------------------------------------------- weights from another run


def init_audio_from(task: nn.Module, path: Path) -> None:
    """Copy a pretrained (ASR) run's frontend, audio encoder and CTC rows of shared characters into ``task``
    (only the frontend and encoder when either side has SentencePiece units: pieces of two models do not match)."""
    folder = path / "best" if (path / "best" / WEIGHTS).is_file() else path
    if not (folder / WEIGHTS).is_file():
        raise ConfigError(f"audio_encoder.init_from: no {WEIGHTS} in {path} or {path}/best")
    state = load_file(str(folder / WEIGHTS))
    own = task.state_dict()
    copied = {k: v for k, v in state.items()
              if k.startswith(("audio_encoder.", "frontend.")) and k in own and own[k].shape == v.shape}
    if not any(k.startswith("audio_encoder.") for k in copied):
        raise ConfigError(f"audio_encoder.init_from: {folder} has no matching audio_encoder weights")
    task.load_state_dict(copied, strict=False)
    log.info("audio_encoder.init_from: copied %d tensors from %s", len(copied), folder)
    key = "ctc_head.embedding"
    if key in state and key in own:
        _copy_ctc_rows(task, folder, state[key])


def _copy_ctc_rows(task: Any, folder: Path, source: Tensor) -> None:
    """The CTC embedding rows of the characters both vocabularies have; nothing (and a log line saying so)
    unless both sides have character units."""
    theirs = "sentencepiece" if (folder / units_file("sentencepiece")).is_file() else "char"
    mine = getattr(task.vocab, "kind", "char")
    src = None
    if mine == theirs == "char":
        try:
            src = CharVocab.load(folder / units_file("char"))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("audio_encoder.init_from: %s unreadable (%s)", folder / units_file("char"), first_line(e))
    if src is None or len(src) != source.shape[0]:
        log.info("audio_encoder.init_from: CTC units are %s here, %s in %s: copied only the frontend and the "
                 "encoder, the CTC head starts afresh", mine, theirs, folder)
        return
    rows = [(i, src.stoi[c]) for c, i in task.vocab.stoi.items() if c in src.stoi]
    with torch.no_grad():
        emb = task.ctc_head.embedding
        emb[[i for i, _ in rows]] = source[[j for _, j in rows]].to(emb.dtype)
    log.info("audio_encoder.init_from: copied the CTC rows of %d shared characters", len(rows))
