"""The graph an export traces: what a user has in (16 kHz waveforms and their lengths, word-piece ids), the
model's scores out, with the task's own modules in between.

- NER tasks (``spoken_ner``, ``text_ner``, any ``NERTask``): ``emissions`` (B, P, tags), the text CRF's scores of
  each word piece; with ``decode="graph"`` the CRF's Viterbi runs inside (``tags`` (B, P) instead);
- CTC tasks (``asr``, ``e2e_ner``, any ``ASRTask``): ``logits`` (B, T', units) and ``frame_lengths`` (B,).

The graph calls the task's own ``predict`` (NER; its CRF decoding swapped for the emissions) or ``forward``
(CTC) on a batch it assembles as the task's collate does, so a plugin component is exported as it runs. The
frontend's features are computed inside (snlu/export/fbank.py) and its normalisation is the frontend's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from snlu.core.errors import SnluError
from snlu.export.fbank import TensorFbank, check_fbank_settings
from snlu.export.scans import scan_forced_align, scan_viterbi
from snlu.tasks.asr import ASRTask
from snlu.tasks.ner import NERTask
from snlu.tokenizers import align

DECODES = ("numpy", "graph")


@dataclasses.dataclass
class GraphSpec:
    """Names of the graph's inputs and outputs, and the named dynamic axes of each input."""

    kind: str  # "ner" | "ctc"
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, list[str]]  # input -> its axes, e.g. waveform: [batch, samples]


def graph_spec(task: nn.Module, decode: str = "numpy") -> GraphSpec:
    """The inputs a task's graph reads and the outputs it gives (an unsupported task: a one-line error)."""
    if isinstance(task, NERTask):
        inputs, axes = ["input_ids", "attention_mask"], {"input_ids": ["batch", "tokens"],
                                                         "attention_mask": ["batch", "tokens"]}
        if task.uses_audio:
            inputs += ["waveform", "wave_lengths"]
            axes |= {"waveform": ["batch", "samples"], "wave_lengths": ["batch"]}
        wiring = getattr(task, "wiring", None)  # (spoken_ner's: what its fusion consumes)
        if wiring is not None and "tokens" in wiring.fusion:
            inputs += ["char_ids", "char_lengths", "pool"]
            axes |= {"char_ids": ["batch", "chars"], "char_lengths": ["batch"], "pool": ["batch", "pieces", "chars"]}
        return GraphSpec("ner", inputs, ["tags" if decode == "graph" else "emissions"], axes)
    if isinstance(task, ASRTask):
        return GraphSpec("ctc", ["waveform", "wave_lengths"], ["logits", "frame_lengths"],
                         {"waveform": ["batch", "samples"], "wave_lengths": ["batch"]})
    name = task.cfg.task.name
    raise SnluError(f"task.name: task '{name}' ({type(task).__name__}) cannot be exported: the export knows NER "
                    f"tasks (CRF over word pieces) and CTC tasks (asr, e2e_ner)")


def featurizer(task: nn.Module) -> nn.Module:
    """The in-graph features of the task's frontend: the tensor-op Kaldi fbank, or what a plugin frontend's
    ``export_featurizer()`` gives ((B, S) waveforms, (B,) lengths -> (B, T, F) features, (B,) frames)."""
    frontend = task.frontend
    own = getattr(frontend, "export_featurizer", None)
    if callable(own):
        return own()
    settings = getattr(frontend, "feature_settings", dict)()
    try:
        check_fbank_settings(settings)
    except ValueError as e:
        name = task.cfg.frontend.name
        raise SnluError(f"frontend.name: frontend '{name}' cannot be exported: {e} (a plugin frontend can give "
                        f"its own graph with export_featurizer())") from None
    return TensorFbank(settings["num_mel_bins"], settings["frame_length_ms"], settings["frame_shift_ms"])


def crf_of(task: nn.Module) -> Any:
    """The text head's pytorch-crf layer; a head without emissions() and a CRF cannot be decoded here."""
    head = getattr(task, "text_head", None)
    crf = getattr(head, "crf", None)
    if not callable(getattr(head, "emissions", None)) or crf is None or not hasattr(crf, "transitions"):
        name = task.cfg.text_head.name if "text_head" in task.cfg else "?"
        raise SnluError(f"text_head.name: head '{name}' cannot be exported: the export needs a head with "
                        f"emissions() and a pytorch-crf CRF (crf.transitions)")
    return crf


class TaskGraph(nn.Module):
    """The traced module: inputs named by ``spec.inputs``, outputs by ``spec.outputs``."""

    def __init__(self, task: nn.Module, spec: GraphSpec, decode: str = "numpy"):
        super().__init__()
        self.task, self.spec, self.decode = task, spec, decode
        self.features = featurizer(task) if task.uses_audio else None
        self.crf = crf_of(task) if spec.kind == "ner" else None

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        x = dict(zip(self.spec.inputs, inputs))
        batch: dict[str, Any] = {}
        if self.features is not None:
            feats, frames = self.features(x["waveform"], x["wave_lengths"])  # (B, T, F), (B,)
            batch |= {"feats": feats, "feat_lengths": frames}
        if self.spec.kind == "ctc":
            logits, lengths = self.task(batch)  # (B, T', V), (B,)
            return logits.float(), lengths.long()
        ids, attention = x["input_ids"], x["attention_mask"]  # (B, N): [CLS] pieces [SEP], padded
        pieces = attention.sum(1) - 2  # (B,) word pieces without the specials
        pool = x.get("pool")
        if pool is None:  # only its width (the longest sentence's pieces) is read
            pool = ids.new_zeros(ids.shape[0], ids.shape[1] - 2, 0).float()
        batch |= {"input_ids": ids, "attention_mask": attention, "piece_lengths": pieces, "pool": pool}
        if "char_ids" in x:
            batch |= {"char_ids": x["char_ids"], "char_lengths": x["char_lengths"]}
        emissions = self.task.predict(batch)  # (B, P, tags): see emissions_instead_of_tags
        if self.decode == "graph":
            crf = self.crf
            return (scan_viterbi(emissions, pieces, crf.start_transitions, crf.end_transitions, crf.transitions),)
        return (emissions,)


@contextlib.contextmanager
def emissions_instead_of_tags(task: nn.Module) -> Iterator[None]:
    """While active, a NER task's ``predict`` returns the text CRF's emissions (B, P, tags) instead of decoding
    them (``NERTask.decode`` is where every NER task's prediction ends)."""
    if not isinstance(task, NERTask):
        yield
        return
    head = task.text_head
    # (a copy: the text states are a slice of BERT's, contiguous only for batch 1, which would fix the batch axis)
    task.decode = lambda batch, features, mask, *_, **__: head.emissions(  # an instance attribute
        features.clone(memory_format=torch.contiguous_format))
    try:
        yield
    finally:
        del task.decode


@contextlib.contextmanager
def exportable_alignment() -> Iterator[None]:
    """While active, every module's ``ctc_forced_align`` (the Python loop over frames) is the scan formulation,
    which exports with a dynamic frame axis and gives the same alignment."""
    original = align.ctc_forced_align
    patched = [m for m in list(sys.modules.values()) if getattr(m, "ctc_forced_align", None) is original]
    for module in patched:
        module.ctc_forced_align = scan_forced_align
    try:
        yield
    finally:
        for module in patched:
            module.ctc_forced_align = original
