"""What the trainer talks to: a task is the model (built from the recipe's component sections), its data
processor and its I/O, three parts in three places:

- the model, this class (an ``nn.Module``): ``training_step`` (loss and its terms), ``predict`` (with its decoding
  options as arguments: ``decode_options``), ``evaluate``, which of its parts to compile (``to_compile``), and its
  parameters grouped for the optimiser (``param_groups``);
- the data processor, ``task.processor`` (snlu/data/processor.py): ``prepare``, ``collate``, ``length``; no
  weights, so it is what data-loader workers get;
- task I/O (snlu/tasks/io.py): ``save``, ``load``, weight checks, ``audio_encoder.init_from``.

``prepare`` runs once on the training split before training; the audio tasks' part of it (feature cache, global
CMVN, ``init_from``) and of ``save_assets`` (``cmvn.json``) is theirs: ``AudioTask`` (snlu/tasks/audio.py).

The trainer knows nothing about fusions or tokenizers; tasks know nothing about the loop.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.errors import ConfigError, SnluError
from snlu.data.processor import Processor
from snlu.data.units import Units
from snlu.data.utterance import Utterance
from snlu.data.vocab import CharVocab
from snlu.registry import TASKS, Registry
from snlu.tasks import io
from snlu.tasks.aux_ctc import aux_assets, save_aux_units


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
    # The keyword arguments of ``predict`` (how a trained model decodes, not what it learnt) and their defaults;
    # a recipe's ``task`` section may set them for its run's dev/test evaluation (``task.beam_size``).
    decode_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: DictConfig, vocab: Units, load_weights: bool = True, aux_units: Units | None = None):
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.aux_units = aux_units  # the auxiliary CTC's units (ctc_head.aux), None without one
        self.processor: Processor = Processor(vocab, self.uses_audio)  # subclasses set their own

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_data(cls, cfg: DictConfig, train: list[Utterance]) -> Task:
        """A fresh model for ``cfg``: vocabulary (and labels, the auxiliary CTC's units) from the training split."""
        task = cls(cfg, CharVocab.build(u.sentence for u in train), **cls.assets_from_data(train),
                   **aux_assets(cfg, train))
        task.prepare(train)
        return task

    @classmethod
    def assets_from_data(cls, train: list[Utterance]) -> dict[str, Any]:
        """Extra constructor arguments derived from the training data (e.g. the label set)."""
        return {}

    def prepare(self, train: list[Utterance]) -> None:
        """Once, before training, on the training split: what the task derives from it beyond its constructor
        arguments (the audio tasks: feature cache, global CMVN, ``audio_encoder.init_from``; snlu/tasks/audio.py)."""

    # ------------------------------------------------------------------ model

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """Total loss and the value of each term (for logging)."""
        raise NotImplementedError

    def predict(self, batch: dict[str, Any], **decode: Any) -> list[Any]:
        """One prediction per utterance of the batch, in batch order; ``decode``: the ``decode_options``."""
        raise NotImplementedError

    def decode_settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments for ``predict``: each of ``decode_options`` as the recipe's ``task`` section sets
        it (its default where the section has no such key: a model saved before the option), then ``overrides``.
        An unknown option or a value of the wrong type is an SnluError naming it and the task."""
        out = {k: self.cfg.task.get(k, v) for k, v in self.decode_options.items()}
        for key, value in (overrides or {}).items():
            if key not in out:
                raise SnluError(f"decoding option '{key}': task '{self.cfg.task.name}' has no such option (its "
                                f"options: {', '.join(self.decode_options) or 'none'})")
            kind = type(self.decode_options[key])
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
                raise SnluError(f"decoding option '{key}': expected {kind.__name__}, got {value!r}")
            out[key] = value
        self.check_decode(out)
        return out

    def check_decode(self, options: dict[str, Any]) -> None:
        """Raise SnluError for decoding option values the task cannot decode with (subclasses add theirs)."""

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
    def component_classes(cls, cfg: DictConfig) -> dict[str, type]:
        """The class each of the task's sections in ``cfg`` names: the one lookup a check or a build makes."""
        return {s: r.get(str(cfg[s].name), key=f"{s}.name").cls for s, r in cls.components.items() if s in cfg}

    @classmethod
    def check_recipe(cls, cfg: DictConfig, classes: Mapping[str, type] | None = None) -> list[str]:
        """What a validated recipe can be checked for before any data is read: every optimiser group the
        task will have needs a learning rate, and ``optim.groups`` names the task's sections. Raises
        ConfigError naming the key; returns warnings (subclasses add theirs). ``classes``: the
        ``component_classes`` of ``cfg``, when the caller has them."""
        mapping = cfg.optim.get("groups") or {}
        for section in mapping:
            if section not in cls.components:
                close = difflib.get_close_matches(str(section), list(cls.components), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"optim.groups.{section}: not a section of task '{cfg.task.name}'{hint} "
                                  f"(sections: {', '.join(cls.components)})")
        groups = cls.expected_groups(cfg, classes)
        for group, sections in groups.items():
            if group not in cfg.optim.lrs:
                raise ConfigError(f"optim.lrs.{group}: missing learning rate for parameter group '{group}' (of "
                                  f"{', '.join(sections)}; task '{cfg.task.name}' has groups: {', '.join(groups)}; "
                                  f"optim.groups maps sections to groups)")
        return []

    @classmethod
    def expected_groups(cls, cfg: DictConfig, classes: Mapping[str, type] | None = None) -> dict[str, list[str]]:
        """Group -> sections whose parameters go there, from the recipe alone: a section's group is its name,
        or what ``optim.groups`` maps it to; a component class may say where its parameters go from its config
        (``optimizer_groups(cfg, group)``: none for a frontend without weights, the CRF classifier elsewhere)."""
        mapping = cfg.optim.get("groups") or {}
        classes = classes if classes is not None else cls.component_classes(cfg)
        out: dict[str, list[str]] = {}
        for section in ordered_sections(cls.components, mapping):
            if section not in cfg:
                continue
            own = mapping.get(section, section)
            hook = getattr(classes[section], "optimizer_groups", None)
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
        """Task-specific files beside the weights (labels, CMVN, markers, the auxiliary CTC's units): subclasses
        add theirs."""
        save_aux_units(self.aux_units, out)

    @classmethod
    def load_assets(cls, folder: Path, cfg: DictConfig) -> dict[str, Any]:
        """Constructor arguments read back from the files ``save_assets`` wrote."""
        return {}

    @staticmethod
    def load(folder: str | Path) -> Task:
        """Rebuild a saved task (a run folder or its ``best/``): :func:`snlu.tasks.io.load`."""
        return io.load(folder)


TASKS.require(Task)

def ordered_sections(components: Mapping[str, Any], mapping: Mapping[str, str]) -> list[str]:
    """The task's sections, those ``optim.groups`` maps first, in its order (the optimiser's group order)."""
    return [s for s in mapping if s in components] + [s for s in components if s not in mapping]
