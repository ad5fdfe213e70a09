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
from omegaconf import DictConfig, ListConfig, OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model
from torch import Tensor, nn

from snlu.core.errors import ConfigError, SnluError
from snlu.core.schema import ON_LOAD
from snlu.data.units import load_units, units_file, units_kind
from snlu.plugins import load_plugins
from snlu.registry import TASKS
from snlu.tasks.aux_ctc import aux_file, load_aux_units

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

INIT = "audio_encoder.init_from"
SPEECH = ("frontend", "audio_encoder")  # the sections (and state-dict prefixes) init_from takes from the run
# unit kinds whose CTC rows mean the same in two models (pieces of two models do not), and what a log calls them
ROW_UNITS = {"char": "characters", "pinyin": "syllables"}


def pretrained_folder(path: str | Path) -> Path:
    """The model folder of ``init_from``: the run's best/, or the folder itself; ConfigError without weights."""
    path = Path(path)
    folder = path / "best" if (path / "best" / WEIGHTS).is_file() else path
    if not (folder / WEIGHTS).is_file():
        raise ConfigError(f"{INIT}: no {WEIGHTS} in {path} or {path}/best")
    return folder


def pretrained_config(folder: Path) -> DictConfig:
    """The recipe a pretrained model folder was trained with (its config.yaml)."""
    try:
        return OmegaConf.load(folder / "config.yaml")
    except FileNotFoundError:
        raise ConfigError(f"{INIT}: {folder}/config.yaml not found (the weights' recipe)") from None
    except Exception as e:  # yaml and OmegaConf errors
        raise ConfigError(f"{INIT}: {folder}/config.yaml: unreadable: {first_line(e)}") from None


def adopt_pretrained(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the frontend and audio encoder of the run ``audio_encoder.init_from`` names: every option of
    the pretrained run's sections, except the recipe's own (``recipe_own`` fields: dropout, SpecAugment, dither;
    ``on_load("clear")`` ones: ``init_from``, ``cmvn``). One log line for each option the recipe set otherwise.
    Called at recipe load, so ``--print-config`` shows the encoder that is built."""
    from snlu.core.schema import RECIPE_OWN, check_component
    from snlu.registry import AUDIO_ENCODERS, AUDIO_FRONTENDS

    folder = pretrained_folder(cfg.audio_encoder.init_from)
    saved = pretrained_config(folder)
    load_plugins(saved.get("plugins"))
    for section, registry in (("frontend", AUDIO_FRONTENDS), ("audio_encoder", AUDIO_ENCODERS)):
        if not isinstance(saved.get(section), DictConfig):
            raise ConfigError(f"{INIT}: {folder}/config.yaml has no {section} section (not a speech model)")
        try:
            theirs = check_component(registry, saved[section], section)
        except SnluError as e:
            raise ConfigError(f"{INIT}: {folder}/config.yaml: {e}") from None
        mine = cfg[section]
        fields = dataclasses.fields(registry.get(str(theirs.name)).config)
        own = {f.name for f in fields if f.metadata.get(RECIPE_OWN) or f.metadata.get(ON_LOAD) == "clear"}
        for f in fields:
            if f.name in own and f.name in mine:
                theirs[f.name] = mine[f.name]
        for key in ["name", *(f.name for f in fields if f.name not in own)]:
            if key in mine and _plain(mine[key]) != _plain(theirs[key]):
                log.info("%s: %s.%s = %s from %s/config.yaml (the recipe had %s)", INIT, section, key,
                         _plain(theirs[key]), folder, _plain(mine[key]))
        cfg[section] = theirs
    return cfg


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def init_audio_from(task: nn.Module, path: Path) -> None:
    """Copy a pretrained run's frontend and audio encoder into ``task``, every tensor (a missing or unexpected one,
    or another shape, is a one-line ConfigError); then the CTC rows of the units both models have (characters,
    pinyin syllables; not SentencePiece pieces: two models' pieces do not match), and likewise the auxiliary CTC's
    (``ctc_head.aux``) when both have one with the same units. Tensors only a training option creates (an encoder's
    ``training_only_tensors``: a pretrained model's mask embedding) may be in the run and not here."""
    folder = pretrained_folder(path)
    state = load_file(str(folder / WEIGHTS))
    own = task.state_dict()
    mine = {k for k in own if k.startswith(tuple(f"{s}." for s in SPEECH))}
    theirs = {k for k in state if k.startswith(tuple(f"{s}." for s in SPEECH))}
    spare = tuple(getattr(getattr(task, "audio_encoder", None), "training_only_tensors", ()))
    missing, unexpected = sorted(mine - theirs), sorted(k for k in theirs - mine if not k.endswith(spare or ("\0",)))
    shapes = sorted(k for k in mine & theirs if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        problems = [f"{what} {keys[:3]}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                    for what, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
                    if keys]
        raise ConfigError(f"{INIT}: {folder / WEIGHTS} does not fit this model's frontend and audio encoder: "
                          f"{'; '.join(problems)} (its config.yaml says another encoder than its weights hold?)")
    task.load_state_dict({k: state[k] for k in mine}, strict=False)
    log.info("%s: copied all %d frontend and audio_encoder tensors from %s", INIT, len(mine), folder)
    saved = pretrained_config(folder)
    if "ctc_head.embedding" in state and "ctc_head.embedding" in own:
        _copy_rows(task, "ctc_head.embedding", task.vocab, state, folder, units_kind(saved.task),
                   folder / units_file(units_kind(saved.task)), "CTC")
    aux = saved.get("ctc_head", {}).get("aux")
    if aux is not None and "ctc_head.aux.embedding" in state and getattr(task, "aux_units", None) is not None:
        _copy_rows(task, "ctc_head.aux.embedding", task.aux_units, state, folder, str(aux.units),
                   folder / aux_file(str(aux.units)), "auxiliary CTC")


def _copy_rows(task: Any, key: str, units: Any, state: dict[str, Tensor], folder: Path, kind: str, file: Path,
               what: str) -> None:
    """The embedding rows (``key``) of the units both models have; nothing, and a log line saying so, unless both
    have units of one row-copyable kind (and the same tones, for pinyin)."""
    mine, src = getattr(units, "kind", "char"), None
    if mine == kind and kind in ROW_UNITS:
        try:
            src = load_units(file, kind)
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
            log.warning("%s: %s unreadable (%s)", INIT, file, first_line(e))
    if src is not None and getattr(src, "tones", None) != getattr(units, "tones", None):
        src = None
    if src is None or len(src) != state[key].shape[0]:
        theirs = f"{kind}{'' if getattr(src, 'tones', True) else ' (toneless)'}"
        log.info("%s: %s units are %s here, %s in %s: copied only the frontend and the encoder, the %s head "
                 "starts afresh", INIT, what, mine, theirs, folder, what)
        return
    rows = [(i, src.stoi[c]) for c, i in units.stoi.items() if c in src.stoi]
    with torch.no_grad():
        emb = dict(task.named_parameters())[key]
        emb[[i for i, _ in rows]] = state[key][[j for _, j in rows]].to(emb.dtype)
    log.info("%s: copied the %s rows of %d shared %s", INIT, what, len(rows), ROW_UNITS[kind])
