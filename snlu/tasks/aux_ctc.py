"""The auxiliary (intermediate) CTC of ``ctc_head.aux``: a second CTC head on the output of an intermediate encoder
block, over units of its own (pinyin syllables, say) of the transcript, trained with the main CTC (``asr``,
``e2e_ner``, ``spoken_ner``) and never used to predict. What the tasks share: its units (built from the training
transcripts, saved beside the weights as ``aux_<file>``: ``aux_pinyin.json``), its recipe checks, its loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import Tensor

from snlu.core.errors import ConfigError
from snlu.data.units import Units, build_units, load_units, units_file
from snlu.data.utterance import Utterance
from snlu.registry import AUDIO_ENCODERS


def aux_section(cfg: DictConfig) -> DictConfig | None:
    """The recipe's ``ctc_head.aux`` (None when unset, or for a task without a CTC head)."""
    head = cfg.get("ctc_head")
    return head.get("aux") if head is not None else None


def aux_file(kind: str) -> str:
    """The file of a model folder holding the auxiliary units of ``kind``: ``aux_pinyin.json``..."""
    return f"aux_{units_file(kind)}"


def check_aux(cfg: DictConfig) -> None:
    """ConfigError (naming ``ctc_head.aux...``) unless the encoder can give block ``block``'s output."""
    aux = aux_section(cfg)
    if aux is None:
        return
    encoder = AUDIO_ENCODERS.get(str(cfg.audio_encoder.name)).cls
    if not hasattr(encoder, "encode_with_block"):
        raise ConfigError(f"ctc_head.aux: audio encoder '{cfg.audio_encoder.name}' gives no intermediate block "
                          f"outputs (it has no encode_with_block)")
    blocks = cfg.audio_encoder.get("n_blocks")
    if blocks is not None and aux.block > blocks:
        raise ConfigError(f"ctc_head.aux.block: {aux.block} is beyond the encoder's {blocks} blocks "
                          f"(audio_encoder.n_blocks)")


def build_aux_units(cfg: DictConfig, train: list[Utterance]) -> Units | None:
    """The auxiliary CTC's units, from the training transcripts (None without ``ctc_head.aux``)."""
    aux = aux_section(cfg)
    return None if aux is None else build_units(aux, (u.sentence for u in train))


def aux_assets(cfg: DictConfig, train: list[Utterance]) -> dict[str, Any]:
    """``{"aux_units": ...}`` for a task's constructor, or nothing without ``ctc_head.aux``."""
    units = build_aux_units(cfg, train)
    return {} if units is None else {"aux_units": units}


def save_aux_units(units: Units | None, out: Path) -> None:
    if units is not None:
        units.save(out / aux_file(units.kind))


def load_aux_units(folder: Path, cfg: DictConfig) -> Units | None:
    """The auxiliary units saved in ``folder`` (None when its config has no ``ctc_head.aux``)."""
    aux = aux_section(cfg)
    return None if aux is None else load_units(folder / aux_file(str(aux.units)), str(aux.units))


def aux_loss(task: Any, inner: Tensor, lengths: Tensor, batch: dict[str, Any]) -> Tensor:
    """The auxiliary CTC loss of block outputs ``inner`` (B, T', d) against the batch's ``aux_ids``."""
    head = task.ctc_head.aux
    return head.loss(head(inner), lengths, batch["aux_ids"], batch["aux_lengths"])
