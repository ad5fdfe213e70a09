"""What the trainer talks to: a task builds its components from the recipe, prepares and batches
utterances, returns losses and predictions, scores them, and saves/loads itself.

The trainer knows nothing about fusions or tokenizers; tasks know nothing about the loop.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model
from torch import Tensor, nn

from snlu.core.errors import ConfigError, DataError, SnluError
from snlu.data.audio import read_wav
from snlu.data.cnerta import Utterance
from snlu.data.units import Units, load_units, units_file, units_kind
from snlu.data.vocab import CharVocab
from snlu.registry import Registry

log = logging.getLogger("snlu")
WEIGHTS = "model.safetensors"
MIN_FRAMES = 7  # the Conv2d 4x subsampling needs 7 frames (~85 ms) for one output frame


class Task(nn.Module):
    """Base of every task. Subclasses set ``components`` (recipe section -> registry) and ``groups``
    (recipe section -> optimizer parameter group), and implement the hooks below."""

    components: ClassVar[dict[str, Registry]] = {}
    groups: ClassVar[dict[str, str]] = {}
    main_metric: ClassVar[str] = "f1"
    higher_is_better: ClassVar[bool] = True
    uses_audio: ClassVar[bool] = True
    uses_text: ClassVar[bool] = True  # False: the transcript is only a target (ASR), prediction needs audio alone

    def __init__(self, cfg: DictConfig, vocab: Units, load_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_data(cls, cfg: DictConfig, train: list[Utterance]) -> Task:
        """A fresh model for ``cfg``: vocabulary (and labels) from the training split."""
        task = cls(cfg, CharVocab.build(u.sentence for u in train), **cls.assets_from_data(train))
        task.fit(train)
        return task

    @classmethod
    def assets_from_data(cls, train: list[Utterance]) -> dict[str, Any]:
        """Extra constructor arguments derived from the training data (e.g. the label set)."""
        return {}

    def fit(self, train: list[Utterance]) -> None:
        """Once before training: check (or build) the dataset's feature cache for this frontend, then global
        CMVN from ``frontend.cmvn`` or the training set."""
        frontend = getattr(self, "frontend", None)
        cache = train[0].features if train else None
        if frontend is not None and cache is not None:
            cache.ensure(frontend)  # every split of the dataset, here in the main process, before any worker
        if frontend is not None and frontend.cfg.norm == "global":
            if getattr(frontend.cfg, "cmvn", None):
                frontend.load_cmvn(Path(frontend.cfg.cmvn))
                log.info("global CMVN: read from %s", frontend.cfg.cmvn)
            else:
                from tqdm import tqdm

                frontend.fit_cmvn(self.audio_features(u)[0]
                                  for u in tqdm(train, desc="global CMVN", leave=False, mininterval=1.0))
        init = self.cfg.get("audio_encoder", {}).get("init_from")
        if init:
            self.init_audio_from(Path(init))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimizer group, from each component section's group."""
        out: dict[str, list[nn.Parameter]] = {}
        for section, group in self.groups.items():
            module = getattr(self, section, None)
            if module is None:
                continue
            moved = getattr(module, "group_overrides", dict)()  # a component may send some parameters elsewhere
            elsewhere = {id(p) for ps in moved.values() for p in ps}
            for name, ps in moved.items():
                out.setdefault(name, []).extend(p for p in ps if p.requires_grad)
            own = [p for p in module.parameters() if p.requires_grad and id(p) not in elsewhere]
            out.setdefault(group, []).extend(own)
        covered = {id(p) for ps in out.values() for p in ps}
        stray = [n for n, p in self.named_parameters() if p.requires_grad and id(p) not in covered]
        if stray:
            raise SnluError(f"parameters outside every optimizer group: {', '.join(stray[:5])}")
        return {g: ps for g, ps in out.items() if ps}

    # ------------------------------------------------------------------ data

    def audio_features(self, utt: Utterance) -> tuple[Tensor, int]:
        """(T, F) features of the utterance and its number of samples: read from the dataset's feature cache
        when it has one (``utt.features``), else computed from the in-memory wave or the audio file."""
        if utt.features is not None and utt.wave is None:
            return utt.features.load(utt, self.frontend)
        wave = utt.wave if utt.wave is not None else read_wav(utt.audio)
        if self.frontend.num_frames(len(wave)) == 0:  # shorter than one window: no frames
            return torch.zeros(0, self.frontend.dim), len(wave)
        return self.frontend.featurize(wave), len(wave)

    def prepare_audio(self, utt: Utterance) -> Tensor:
        feats, samples = self.audio_features(utt)
        if feats.shape[0] < MIN_FRAMES:
            raise DataError(utt.where, f"audio {utt.audio or '(array)'} has {samples} samples: too short for the "
                            f"encoder (truncated file?)", field="audio")
        return feats  # (T, F)

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        """One utterance -> tensors (runs in data-loader workers)."""
        raise NotImplementedError

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def length(self, utt: Utterance) -> float:
        """Sort key for length-bucketed batching."""
        return utt.duration if self.uses_audio else len(utt.sentence)

    # ------------------------------------------------------------------ model

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """Total loss and the value of each term (for logging)."""
        raise NotImplementedError

    def predict(self, batch: dict[str, Any]) -> list[Any]:
        """One prediction per utterance of the batch, in batch order."""
        raise NotImplementedError

    def evaluate(self, utts: list[Utterance], preds: list[Any]) -> dict[str, Any]:
        """Metrics of ``preds`` against the gold of ``utts``; must contain ``main_metric``."""
        raise NotImplementedError

    def format_prediction(self, utt: Utterance, pred: Any) -> dict[str, Any]:
        """The output JSON line for one utterance (CNERTA format with predictions filled in)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ saving

    def save(self, out: Path) -> None:
        """Write everything needed to reload without the recipe; atomic (a temp folder, then rename)."""
        out = Path(out)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_model(self, str(tmp / WEIGHTS))
        OmegaConf.save(self.cfg, tmp / "config.yaml")
        self.vocab.save(tmp / self.vocab.file)
        self.save_assets(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = out.with_name(out.name + ".old")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)

    def save_assets(self, out: Path) -> None:
        """Task-specific files beside the weights (labels, CMVN, tokenizer)."""
        frontend = getattr(self, "frontend", None)
        if frontend is not None:
            frontend.save_cmvn(out / "cmvn.json")

    @classmethod
    def load_assets(cls, folder: Path, cfg: DictConfig) -> dict[str, Any]:
        return {}

    @staticmethod
    def load(folder: str | Path) -> Task:
        """Rebuild a saved task (a run folder or its ``best/``) from its config and safetensors weights."""
        from snlu.plugins import load_plugins
        from snlu.registry import TASKS

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
            if "text_encoder" in cfg:
                cfg.text_encoder.pretrained = str(folder / "text_encoder")
            if "audio_encoder" in cfg:
                cfg.audio_encoder.init_from = None
            if "cmvn" in cfg.get("frontend", {}):  # the statistics are in the weights (buffers)
                cfg.frontend.cmvn = None
            kind = units_kind(cfg.task)
            if kind not in ("char", "sentencepiece"):
                raise SnluError(f"task.units: unknown units '{kind}'")
        except SnluError as e:
            raise SnluError(f"{folder / 'config.yaml'}: {e}") from None
        except Exception as e:  # yaml and OmegaConf errors: unreadable or not a model config
            raise SnluError(f"{folder / 'config.yaml'}: not a valid model config: {_first_line(e)}") from None
        vocab_file = folder / _need(folder, units_file(kind))
        try:
            vocab = load_units(vocab_file, kind)
        except (OSError, ValueError, TypeError, AttributeError, RuntimeError) as e:
            raise SnluError(f"{vocab_file}: not a vocabulary: {_first_line(e)}") from None
        try:
            task = cls(cfg, vocab, load_weights=False, **cls.load_assets(folder, cfg))
        except SnluError:
            raise
        except Exception as e:  # a missing or broken labels.json, text_encoder/ files, config values
            raise SnluError(f"{folder}: cannot rebuild the model: {_first_line(e)}") from None
        check_weights(folder, task)
        try:
            missing, unexpected = load_model(task, str(folder / WEIGHTS), strict=False)
        except (RuntimeError, SafetensorError, OSError) as e:
            raise SnluError(f"{folder / WEIGHTS}: weights do not match the model: {_first_line(e)}") from None
        if missing or unexpected:
            raise SnluError(f"{folder / WEIGHTS}: weights do not match the model "
                            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
        return task

    def init_audio_from(self, path: Path) -> None:
        """Copy a pretrained (ASR) run's frontend, audio encoder and CTC rows of shared characters (only the
        frontend and encoder when either side has SentencePiece units: pieces of two models do not match)."""
        folder = path / "best" if (path / "best" / WEIGHTS).is_file() else path
        if not (folder / WEIGHTS).is_file():
            raise ConfigError(f"audio_encoder.init_from: no {WEIGHTS} in {path} or {path}/best")
        state = load_file(str(folder / WEIGHTS))
        own = self.state_dict()
        copied = {k: v for k, v in state.items()
                  if k.startswith(("audio_encoder.", "frontend.")) and k in own and own[k].shape == v.shape}
        if not any(k.startswith("audio_encoder.") for k in copied):
            raise ConfigError(f"audio_encoder.init_from: {folder} has no matching audio_encoder weights")
        self.load_state_dict(copied, strict=False)
        log.info("audio_encoder.init_from: copied %d tensors from %s", len(copied), folder)
        key = "ctc_head.embedding"
        if key in state and key in own:
            self._copy_ctc_rows(folder, state[key])

    def _copy_ctc_rows(self, folder: Path, source: Tensor) -> None:
        """The CTC embedding rows of the characters both vocabularies have; nothing (and a log line saying so)
        unless both sides have character units."""
        theirs = "sentencepiece" if (folder / units_file("sentencepiece")).is_file() else "char"
        mine = getattr(self.vocab, "kind", "char")
        src = None
        if mine == theirs == "char":
            try:
                src = CharVocab.load(folder / units_file("char"))
            except (OSError, ValueError, TypeError, AttributeError) as e:
                log.warning("audio_encoder.init_from: %s unreadable (%s)", folder / units_file("char"), _first_line(e))
        if src is None or len(src) != source.shape[0]:
            log.info("audio_encoder.init_from: CTC units are %s here, %s in %s: copied only the frontend and the "
                     "encoder, the CTC head starts afresh", mine, theirs, folder)
            return
        rows = [(i, src.stoi[c]) for c, i in self.vocab.stoi.items() if c in src.stoi]
        with torch.no_grad():
            emb = self.ctc_head.embedding
            emb[[i for i, _ in rows]] = source[[j for _, j in rows]].to(emb.dtype)
        log.info("audio_encoder.init_from: copied the CTC rows of %d shared characters", len(rows))


def _need(folder: Path, name: str) -> str:
    """``name`` when ``folder`` has that file, else the one-line error of a folder that is not a saved model."""
    if not (folder / name).is_file():
        raise SnluError(f"{folder / name}: not found ({folder} is not a saved model: a run's best/ folder)")
    return name


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def check_weights(folder: Path, task: Task) -> None:
    """Compare the shapes in ``folder/model.safetensors`` (its header only) with the rebuilt model's; a
    mismatch in the vocabulary or label dimension names the vocabulary file (vocab.json, units.model) or
    labels.json."""
    path = folder / WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise SnluError(f"{path}: unreadable weights file: {_first_line(e)}") from None
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

