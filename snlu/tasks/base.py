"""What the trainer talks to: a task is the model (built from the recipe's component sections), its data
processor and its I/O, three parts in three places:

- the model, this class (an ``nn.Module``): ``training_step`` (loss and its terms), ``predict``, ``evaluate``,
  which of its parts to compile (``to_compile``), and its parameters grouped for the optimiser (``param_groups``);
- the data processor, ``task.processor`` (snlu/tasks/processor.py): ``prepare``, ``collate``, ``length``; no
  weights, so it is what data-loader workers get;
- task I/O (snlu/tasks/io.py): ``save``, ``load``, weight checks, ``audio_encoder.init_from``.

The trainer knows nothing about fusions or tokenizers; tasks know nothing about the loop.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.errors import ConfigError, SnluError
from snlu.data.units import Units
from snlu.data.utterance import Utterance
from snlu.data.vocab import CharVocab
from snlu.registry import Registry
from snlu.tasks import io
from snlu.tasks.processor import Processor

log = logging.getLogger("snlu")
WEIGHTS = io.WEIGHTS


class Task(nn.Module):
    """Base of every task. Subclasses set ``components`` (recipe section -> registry), build them in
    ``__init__`` as attributes named after their sections, set ``self.processor``, and implement the hooks."""

    components: ClassVar[dict[str, Registry]] = {}
    main_metric: ClassVar[str] = "f1"
    higher_is_better: ClassVar[bool] = True
    # (metric, higher is better) that picks the best epoch when the main metric ties; None: the first stays
    tie_metric: ClassVar[tuple[str, bool] | None] = None
    uses_audio: ClassVar[bool] = True
    uses_text: ClassVar[bool] = True  # False: the transcript is only a target (ASR), prediction needs audio alone

    def __init__(self, cfg: DictConfig, vocab: Units, load_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.processor: Processor = Processor(vocab, self.uses_audio)  # subclasses set their own

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
        """Once before training: global CMVN from ``frontend.cmvn`` or the training set, then
        ``audio_encoder.init_from``, then check (or build) the dataset's feature cache for what the processor
        caches (a frozen encoder's outputs are computed with the weights init_from copied)."""
        audio = getattr(self.processor, "audio", None)
        frontend = getattr(self, "frontend", None)
        cache = train[0].features if train else None
        if audio is not None and frontend is not None and getattr(frontend.cfg, "norm", None) == "global":
            if getattr(frontend.cfg, "cmvn", None):
                frontend.load_cmvn(Path(frontend.cfg.cmvn))
                log.info("global CMVN: read from %s", frontend.cfg.cmvn)
            else:
                from tqdm import tqdm

                frontend.fit_cmvn(audio.features(u)[0]
                                  for u in tqdm(train, desc="global CMVN", leave=False, mininterval=1.0))
        init = self.cfg.get("audio_encoder", {}).get("init_from")
        if init:
            io.init_audio_from(self, Path(init))
        if audio is not None and cache is not None and audio.cached is not None:
            cache.ensure(audio.cached)  # every split of the dataset, here in the main process, before any worker
        elif audio is not None and cache is not None:
            log.info("data.feature_cache: not used: the audio encoder reads the samples (only a frozen one's outputs "
                     "are cached)")

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

    def to_compile(self) -> list[nn.Module]:
        """The parts ``train.compile`` compiles: the dense encoders (CRF, CTC and alignment stay eager)."""
        return []

    # ------------------------------------------------------------------ optimiser groups

    @classmethod
    def check_recipe(cls, cfg: DictConfig) -> list[str]:
        """What a validated recipe can be checked for before any data is read: every optimiser group the
        task will have needs a learning rate, and ``optim.groups`` names the task's sections. Raises
        ConfigError naming the key; returns warnings (subclasses add theirs)."""
        mapping = cfg.optim.get("groups") or {}
        for section in mapping:
            if section not in cls.components:
                close = difflib.get_close_matches(str(section), list(cls.components), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"optim.groups.{section}: not a section of task '{cfg.task.name}'{hint} "
                                  f"(sections: {', '.join(cls.components)})")
        groups = cls.expected_groups(cfg)
        for group, sections in groups.items():
            if group not in cfg.optim.lrs:
                raise ConfigError(f"optim.lrs.{group}: missing learning rate for parameter group '{group}' (of "
                                  f"{', '.join(sections)}; task '{cfg.task.name}' has groups: {', '.join(groups)}; "
                                  f"optim.groups maps sections to groups)")
        return []

    @classmethod
    def expected_groups(cls, cfg: DictConfig) -> dict[str, list[str]]:
        """Group -> sections whose parameters go there, from the recipe alone: a section's group is its name,
        or what ``optim.groups`` maps it to; a component class may say where its parameters go from its config
        (``optimizer_groups(cfg, group)``: none for a frontend without weights, the CRF classifier elsewhere)."""
        mapping = cfg.optim.get("groups") or {}
        out: dict[str, list[str]] = {}
        for section in ordered_sections(cls.components, mapping):
            if section not in cfg:
                continue
            own = mapping.get(section, section)
            component = cls.components[section].get(str(cfg[section].name)).cls
            hook = getattr(component, "optimizer_groups", None)
            for group in hook(cfg[section], own) if hook else [own]:
                out.setdefault(group, []).append(section)
        return out

    def param_groups(self, mapping: Mapping[str, str] | None = None) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimiser group: each component section's (its name, or what ``mapping``
        maps it to); a component may send some of its parameters elsewhere (``group_overrides()``)."""
        mapping = dict(mapping or {})
        out: dict[str, list[nn.Parameter]] = {}
        for section in ordered_sections(self.components, mapping):
            module = getattr(self, section, None)
            if not isinstance(module, nn.Module):
                continue
            moved = getattr(module, "group_overrides", dict)()
            elsewhere = {id(p) for ps in moved.values() for p in ps}
            for name, ps in moved.items():
                out.setdefault(name, []).extend(p for p in ps if p.requires_grad)
            own = [p for p in module.parameters() if p.requires_grad and id(p) not in elsewhere]
            out.setdefault(mapping.get(section, section), []).extend(own)
        covered = {id(p) for ps in out.values() for p in ps}
        stray = [n for n, p in self.named_parameters() if p.requires_grad and id(p) not in covered]
        if stray:
            raise SnluError(f"parameters outside every optimizer group: {', '.join(stray[:5])}")
        return {g: ps for g, ps in out.items() if ps}

    # ------------------------------------------------------------------ saving (snlu/tasks/io.py)

    def save(self, out: Path) -> None:
        """Write everything needed to reload without the recipe (atomically): :func:`snlu.tasks.io.save`."""
        io.save(self, out)

    def save_assets(self, out: Path) -> None:
        """Task-specific files beside the weights (labels, CMVN, markers)."""
        frontend = getattr(self, "frontend", None)
        if frontend is not None:
            frontend.save_cmvn(out / "cmvn.json")

    @classmethod
    def load_assets(cls, folder: Path, cfg: DictConfig) -> dict[str, Any]:
        """Constructor arguments read back from the files ``save_assets`` wrote."""
        return {}

    @staticmethod
    def load(folder: str | Path) -> Task:
        """Rebuild a saved task (a run folder or its ``best/``): :func:`snlu.tasks.io.load`."""
        return io.load(folder)


def ordered_sections(components: Mapping[str, Any], mapping: Mapping[str, str]) -> list[str]:
    """The task's sections, those ``optim.groups`` maps first, in its order (the optimiser's group order)."""
    return [s for s in mapping if s in components] + [s for s in components if s not in mapping]
