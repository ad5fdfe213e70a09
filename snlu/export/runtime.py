"""Running an exported folder (snlu-export's) without torch: onnxruntime for the graph, numpy beside it for the
inputs (audio, the tokenizer's word pieces) and the decoding (CRF Viterbi, CTC), the ``tokenizers`` library
for the text.

    model = snlu.load("runs/RUN/export-onnx")      # same API as an eager model
    model.predict("BAC009S0764W0121.wav", "甚至出现交易几乎停滞的情况")

Batches are length-sorted as the eager prediction routine sorts them, padded to the graph's smallest axis
sizes where needed (``axes`` in the manifest), and each utterance's result is its own: padding never changes it.
A ``pt2`` folder (torch.export's program) runs the same way through torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snlu.core.errors import DataError, SnluError
from snlu.core.frames import fbank_frames
from snlu.data.audio import read_wav
from snlu.data.inputs import make_utterance
from snlu.data.labels import LabelSet, char_to_piece_matrix, pieces_to_char_spans
from snlu.data.markers import format_prediction as format_e2e
from snlu.data.markers import strip_markers
from snlu.data.units import load_units
from snlu.data.utterance import Utterance
from snlu.export.decode import Viterbi, ctc_decode
from snlu.export.manifest import read_manifest
from snlu.metrics.cer import cer
from snlu.metrics.ner import score_entities
from snlu.metrics.text_ner import score_predictions

log = logging.getLogger("snlu")
DEVICES = ("auto", "cpu", "cuda")


# ----------------------------------------------------------------------------- the graph


class OnnxGraph:
    """An onnxruntime session on the folder's ``model.onnx``."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise SnluError("device cuda: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its graph-optimisation notes are not the user's business
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime's own error types
            raise SnluError(f"{path}: onnxruntime cannot load the graph: {str(e).splitlines()[0]}") from None
        self.device = "cuda" if cuda else "cpu"

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


class Pt2Graph:
    """torch.export's saved program (``model.pt2``), run through torch."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None):
        import torch

        if device == "cuda":
            raise SnluError("device cuda: a pt2 export runs on the CPU here (export to onnx for other devices)")
        if threads:
            torch.set_num_threads(threads)
        # (check_guards=False: the axes' ranges are still checked; the guards left out include one that a CPU
        # convolution's memory-format choice records, batch > 1, though batch 1 gives the same results: the
        # export's own check runs batch 1)
        self.module = torch.export.load(str(path)).module(check_guards=False)
        self.torch, self.device = torch, "cpu"

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.torch.no_grad():
            outputs = self.module(*(self.torch.from_numpy(v) for v in feeds.values()))
        return [o.numpy() for o in outputs]


GRAPHS = {"onnx": OnnxGraph, "pt2": Pt2Graph}


# ----------------------------------------------------------------------------- the task around the graph


class ExportedTask:
    """What prediction needs around the graph: preparing utterances into its inputs, decoding its outputs,
    scoring and writing predictions (the eager task's ``evaluate`` and ``format_prediction``)."""

    def __init__(self, folder: str | Path, graph: Any = None, beam_size: int | None = None,
                 marker_bonus: float | None = None):
        self.folder = Path(folder)
        self.manifest = m = read_manifest(self.folder)
        self.name, self.decoder = m["task"], m["decoder"]
        self.uses_audio, self.uses_text = bool(m["uses_audio"]), bool(m["uses_text"])
        self.inputs = [i["name"] for i in m["inputs"]]
        self.axes = m.get("axes", {})  # (not yet while the export traces)
        self.graph = graph
        self.tokenizer = self._tokenizer() if self.uses_text else None
        units = m.get("units")
        self.vocab = load_units(self._file(units["file"]), units["kind"]) if units else None
        if self.decoder == "crf":
            self.labels = LabelSet.from_dict(self._json(m["labels"]))
            crf = self._json(m["crf"])
            self.viterbi = Viterbi(crf["start"], crf["end"], crf["transitions"])
        ctc = m.get("ctc", {})
        self.beam_size = int(beam_size if beam_size is not None else ctc.get("beam_size", 1))
        self.marker_bonus = float(marker_bonus if marker_bonus is not None else ctc.get("marker_bonus", 0.0))
        self._check_decoding(beam_size, marker_bonus)
        if self.decoder == "ctc_markers":
            self.markers = {t: (o, c) for t, (o, c) in self._json(m["markers"]).items()}
            self.marker_ids = [self.vocab.stoi[s] for pair in self.markers.values() for s in pair]

    # -------------------------------------------------------------- files

    def _file(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise SnluError(f"{path}: not found (the exported folder is incomplete: export it again)")
        return path

    def _json(self, name: str) -> Any:
        path = self._file(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise SnluError(f"{path}: not valid JSON ({e})") from None

    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        text = self.manifest["text"]
        path = self._file(text["tokenizer"])
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library's own errors
            raise SnluError(f"{path}: not a tokenizer.json ({str(e).splitlines()[0]})") from None
        tok.no_padding()
        tok.enable_truncation(int(text["max_pieces"]))  # as the eager processor's truncation=True, max_length
        self.pad_id, self.max_pieces = int(text["pad_id"]), int(text["max_pieces"])
        return tok

    def _check_decoding(self, beam_size: int | None, marker_bonus: float | None) -> None:
        if beam_size is not None and self.decoder == "crf":
            raise SnluError(f"--beam-size: task '{self.name}' does not decode with CTC (asr and e2e_ner do)")
        if self.beam_size < 1:
            raise SnluError(f"--beam-size must be >= 1, got {self.beam_size}")
        if marker_bonus is not None and self.decoder != "ctc_markers":
            raise SnluError(f"--marker-bonus: task '{self.name}' has no entity markers (e2e_ner has)")

    # -------------------------------------------------------------- preparing

    def length(self, utt: Utterance) -> float:
        """Sort key of the batches: seconds of audio, else characters (the eager processor's)."""
        return utt.duration if self.uses_audio else len(utt.sentence)

    def prepare_text(self, utt: Utterance) -> dict[str, Any]:
        """The transcript's arrays: word-piece ids, their character offsets, and the character ids when the graph
        reads them (as the eager processor's ``prepare_text``)."""
        enc = self.tokenizer.encode(utt.sentence)
        offsets = [tuple(o) for o in enc.offsets[1:-1]]  # word pieces between [CLS] and [SEP]
        if not offsets:
            raise DataError(utt.where, "the tokenizer produced no word pieces", field="sentence")
        if len(offsets) == self.max_pieces - 2 and offsets[-1][1] < len(utt.sentence.rstrip()):
            log.warning("%s: field 'sentence': %d characters exceed BERT's %d word pieces: only characters "
                        "[0, %d) are tagged, entities after them count as missed", utt.where,
                        len(utt.sentence), self.max_pieces, offsets[-1][1])
        item: dict[str, Any] = {"input_ids": np.asarray(enc.ids, dtype=np.int64), "offsets": offsets}
        if "char_ids" in self.inputs:
            item["char_ids"] = np.asarray(self.vocab.encode(utt.sentence), dtype=np.int64)
        return item

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        """One utterance -> its arrays (the eager processors' checks and messages)."""
        item: dict[str, Any] = {"utt": utt} | (self.prepare_text(utt) if self.uses_text else {})
        if self.uses_audio:
            wave = utt.wave if utt.wave is not None else read_wav(utt.audio)
            fe = self.manifest["frontend"]
            if fbank_frames(len(wave), fe["frame_length_ms"], fe["frame_shift_ms"]) < fe["min_frames"]:
                raise DataError(utt.where, f"audio {utt.audio or '(array)'} has {len(wave)} samples: too short "
                                f"for the encoder (truncated file?)", field="audio")
            item["wave"] = np.asarray(wave, dtype=np.float32)
        return item

    def collate(self, items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Prepared items -> the graph's inputs, padded (to at least the graph's smallest sizes)."""
        b, feeds = len(items), {}
        if self.uses_text:
            n = max(self._least("pieces") + 2, max(len(it["input_ids"]) for it in items))
            ids = np.full((b, n), self.pad_id, dtype=np.int64)
            mask = np.zeros((b, n), dtype=np.int64)
            for row, it in enumerate(items):
                ids[row, : len(it["input_ids"])] = it["input_ids"]
                mask[row, : len(it["input_ids"])] = 1
            feeds |= {"input_ids": ids, "attention_mask": mask}
        if self.uses_audio:
            s = max(self._least("samples"), max(len(it["wave"]) for it in items))
            wave = np.zeros((b, s), dtype=np.float32)
            for row, it in enumerate(items):
                wave[row, : len(it["wave"])] = it["wave"]
            feeds |= {"waveform": wave, "wave_lengths": np.asarray([len(it["wave"]) for it in items], np.int64)}
        if "char_ids" in self.inputs:
            c = max(self._least("chars"), max(len(it["char_ids"]) for it in items))
            chars = np.full((b, c), self.vocab.pad_id, dtype=np.int64)
            pool = np.zeros((b, feeds["input_ids"].shape[1] - 2, c), dtype=np.float32)  # (B, P, C)
            for row, it in enumerate(items):
                chars[row, : len(it["char_ids"])] = it["char_ids"]
                for p, covered in enumerate(char_to_piece_matrix(it["offsets"], len(it["char_ids"]))):
                    if covered:  # each word piece: the mean of its characters
                        pool[row, p, covered] = 1.0 / len(covered)  # (a double, stored as float32: as torch)
            feeds |= {"char_ids": chars, "char_lengths": np.asarray([len(it["char_ids"]) for it in items], np.int64),
                      "pool": pool}
        return {name: feeds[name] for name in self.inputs}

    def _least(self, axis: str) -> int:
        return int(self.axes.get(axis, {}).get("min", 1))

    # -------------------------------------------------------------- decoding

    def decode(self, items: list[dict[str, Any]], outputs: list[np.ndarray]) -> list[Any]:
        """The graph's outputs for a batch -> one prediction per item (the eager task's ``predict``)."""
        if self.decoder == "crf":
            lengths = np.asarray([len(it["offsets"]) for it in items])
            if self.manifest["decode"] == "graph":
                tags = [row[:n].tolist() for row, n in zip(outputs[0], lengths)]
            else:
                tags = self.viterbi.decode(outputs[0], lengths)
            return [pieces_to_char_spans(it["offsets"], self.labels.decode(t)) for it, t in zip(items, tags)]
        logits, frames = outputs
        if self.decoder == "ctc_markers" and self.marker_bonus:
            logits = logits.copy()
            logits[..., self.marker_ids] += np.float32(self.marker_bonus)
        texts = [self.vocab.decode(ids) for ids in ctc_decode(logits, frames, self.beam_size)]
        if self.decoder == "ctc_markers":
            return [strip_markers(t, self.markers) for t in texts]
        return texts

    def predict_items(self, items: list[dict[str, Any]]) -> list[Any]:
        return self.decode(items, self.graph(self.collate(items)))

    def predict_utterances(self, utts: Sequence[Utterance], batch_size: int = 16, progress: bool = False,
                           desc: str = "predict") -> list[Any]:
        """One prediction per utterance, in the order of ``utts``; length-sorted batches of ``batch_size``."""
        from tqdm import tqdm

        order = sorted(range(len(utts)), key=lambda i: self.length(utts[i]))
        out: list[Any] = [None] * len(utts)
        with tqdm(total=len(utts), desc=desc, unit="utt", leave=False, mininterval=1.0, disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                for i, pred in zip(batch, self.predict_items([self.prepare(utts[i]) for i in batch])):
                    out[i] = pred
                bar.update(len(batch))
        return out

    # -------------------------------------------------------------- scoring and writing

    def evaluate(self, utts: list[Utterance], preds: list[Any]) -> dict[str, Any]:
        """The eager task's metrics of ``preds`` against the gold of ``utts``."""
        if self.decoder == "crf":
            return score_entities([u.entities for u in utts], preds)
        if self.decoder == "ctc_markers":
            return score_predictions(utts, preds)
        return cer([u.sentence for u in utts], preds)

    def format_prediction(self, utt: Utterance, pred: Any) -> dict[str, Any]:
        """The output line of one utterance, as the eager task writes it."""
        if self.decoder == "crf":
            return {**utt.record, "entity": [[s, e, utt.sentence[s:e], t] for s, e, t in pred]}
        if self.decoder == "ctc_markers":
            return format_e2e(utt, pred)
        return {**utt.record, "prediction": pred}


# ----------------------------------------------------------------------------- the Python API


class ExportedModel:
    """An exported model, ready for inference: the eager ``snlu.api.Model``'s ``predict`` API."""

    def __init__(self, task: ExportedTask):
        self.task = task
        self.device = task.graph.device

    def predict(self, audio: Any = None, text: str | None = None) -> Any:
        """One utterance: entities as ``[start, end, text, TYPE]`` lists (NER), or the transcript (ASR); a task
        that predicts several fields gives a dict of them."""
        return self.predict_batch(None if audio is None else [audio], None if text is None else [text])[0]

    def predict_batch(self, audios: Sequence[Any] | None = None, texts: Sequence[str] | None = None,
                      batch_size: int = 16, progress: bool = False) -> list[Any]:
        """Many utterances (length-sorted batches); results in input order."""
        n = len(audios) if audios is not None else len(texts) if texts is not None else 0
        if (audios is not None and len(audios) != n) or (texts is not None and len(texts) != n):
            raise SnluError(f"predict_batch: {len(audios)} audios but {len(texts)} texts")
        if self.task.uses_text and texts is None:
            raise SnluError("this model reads the transcript: pass text")
        if self.task.uses_audio and audios is None:
            raise SnluError("this model reads audio: pass audio (a path or a 16 kHz float array)")
        utts = [self._utterance(audios[i] if audios is not None else None, texts[i] if texts is not None else "", i)
                for i in range(n)]
        preds = self.task.predict_utterances(utts, batch_size, progress=progress)
        return [self._result(u, p) for u, p in zip(utts, preds)]

    def _utterance(self, audio: Any, text: str, i: int) -> Utterance:
        if not isinstance(text, str):
            raise SnluError(f"predict_batch item {i}: text must be a string, got {type(text).__name__}")
        path = isinstance(audio, (str, Path))
        uid = Path(audio).stem if path else f"utt{i}"
        where = f"{audio}" if path else f"predict_batch item {i}"
        return make_utterance(text, audio, uid, where, self.task.uses_audio)

    def _result(self, utt: Utterance, pred: Any) -> Any:
        line = self.task.format_prediction(utt, pred)
        fields = {k: v for k, v in line.items() if k not in utt.record}
        return next(iter(fields.values())) if len(fields) == 1 else fields


def load_task(folder: str | Path, device: str = "auto", threads: int | None = None, beam_size: int | None = None,
              marker_bonus: float | None = None) -> ExportedTask:
    """An exported folder's task with its graph loaded (onnxruntime, or torch for a pt2 folder)."""
    if device not in DEVICES:
        raise SnluError(f"device: expected one of {', '.join(DEVICES)}, got '{device}'")
    manifest = read_manifest(folder)
    kind = manifest["format"]
    if kind not in GRAPHS:
        raise SnluError(f"{Path(folder) / 'export.json'}: unknown format '{kind}' (known: {', '.join(GRAPHS)})")
    task = ExportedTask(folder, None, beam_size, marker_bonus)
    task.graph = GRAPHS[kind](task._file(manifest["graph"]), device, threads)
    return task


def load_exported(folder: str | Path, device: str = "auto", threads: int | None = None,
                  beam_size: int | None = None, marker_bonus: float | None = None) -> ExportedModel:
    """``snlu.load`` of an exported folder: onnxruntime (``threads``: its intra-op threads, None: its default),
    numpy and the tokenizer, no torch; ``beam_size`` and ``marker_bonus`` instead of the exported defaults."""
    return ExportedModel(load_task(folder, device, threads, beam_size, marker_bonus))
