"""``snlu-export``'s work: a trained run -> a self-contained folder (snlu/export/manifest.py) that the torch-free
runtime (snlu/export/runtime.py) runs.

1. the task is loaded and wrapped in its graph (snlu/export/graph.py); the folder's files are written to a
   temporary folder, so the runtime's own input preparation makes the example inputs;
2. ``torch.export`` traces the graph with dynamic batch, audio and text axes (each axis's smallest size raised
   where the model needs it, never fixed); a component that cannot be traced (Python control flow on values or
   on lengths) is a one-line error naming the component and the line;
3. the program is converted (ONNX by torch.onnx's dynamo exporter) or saved (pt2);
4. the runtime runs the folder on the example batch and on check batches of other sizes, and its scores and
   decoded results are compared with the eager model's on the same utterances: over ``TOLERANCE`` the export
   fails and nothing is written; else the temporary folder becomes the output folder.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import inspect
import io
import json
import logging
import os
import re
import shutil
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snlu import __version__
from snlu.core.errors import SnluError
from snlu.core.frames import SAMPLE_RATE
from snlu.data.inputs import make_utterance
from snlu.data.processor import MIN_FRAMES
from snlu.data.utterance import Utterance
from snlu.export.graph import GraphSpec, TaskGraph, emissions_instead_of_tags, exportable_alignment, graph_spec
from snlu.export.manifest import MANIFEST, VERSION
from snlu.export.onnx_fixes import fix_for_onnxruntime
from snlu.export.runtime import GRAPHS, ExportedTask
from snlu.tasks.base import Task
from snlu.tasks.io import WEIGHTS, first_line

log = logging.getLogger("snlu")
FORMATS = ("onnx", "pt2")
GRAPH_FILES = {"onnx": "model.onnx", "pt2": "model.pt2"}
# |exported - eager| allowed on the scores (emissions, CTC logits) of real positions, over their largest magnitude
# (the two differ by float summation order: measured ~1e-6 on the demo models, docs/inference.md)
TOLERANCE = 1e-4
MAX_PIECES = 512  # BERT's positions ([CLS] and [SEP] included): snlu.tasks.ner's
FIRST_MINS = {"batch": 1, "pieces": 2, "chars": 1}  # "samples": two encoder frames (below)
SMALLEST_OK = {"samples": 2 * SAMPLE_RATE, "pieces": 8, "chars": 8}  # raised minimums accepted, at most


def model_folder(path: str | Path) -> Path:
    """A run directory's ``best/``, or the model folder itself."""
    path = Path(path)
    return path / "best" if (path / "best" / WEIGHTS).is_file() else path


def default_out(folder: Path, fmt: str) -> Path:
    """``RUN/export-<format>`` beside ``RUN/best``, else ``<model folder>-export-<format>``."""
    return folder.parent / f"export-{fmt}" if folder.name == "best" else folder.with_name(f"{folder.name}-export-{fmt}")


# ----------------------------------------------------------------------------- the folder's files


def write_assets(task: Task, folder: Path, out: Path, spec: GraphSpec, fmt: str, decode: str) -> dict[str, Any]:
    """Everything but the graph into ``out``; the manifest (verification and timings filled in later)."""
    cfg = task.cfg
    manifest: dict[str, Any] = {
        "version": VERSION, "format": fmt, "graph": GRAPH_FILES[fmt], "task": str(cfg.task.name),
        "decoder": "crf" if spec.kind == "ner" else "ctc_markers" if hasattr(task, "markers") else "ctc",
        "decode": decode, "uses_audio": bool(task.uses_audio), "uses_text": bool(task.uses_text),
        "inputs": [{"name": n, "dtype": "float32" if n in ("waveform", "pool") else "int64", "axes": spec.axes[n]}
                   for n in spec.inputs],
        "outputs": spec.outputs, "config": "config.yaml", "source": str(folder.resolve()),
    }
    shutil.copy2(folder / "config.yaml", out / "config.yaml")
    if (folder / "cmvn.json").is_file():
        shutil.copy2(folder / "cmvn.json", out / "cmvn.json")
    if task.uses_audio:
        fe = task.frontend.cfg
        manifest["frontend"] = {"sample_rate": SAMPLE_RATE, "frame_length_ms": float(fe.frame_length_ms),
                                "frame_shift_ms": float(fe.frame_shift_ms), "min_frames": MIN_FRAMES}
    if task.uses_text:
        tokenizer = task.text_encoder.tokenizer
        tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))  # the exact one transformers runs
        manifest["text"] = {"tokenizer": "tokenizer.json", "pad_id": int(tokenizer.pad_token_id),
                            "max_pieces": MAX_PIECES}
    if spec.kind == "ner":
        (out / "labels.json").write_text(json.dumps(task.labels.to_dict(), ensure_ascii=False), encoding="utf-8")
        crf = task.text_head.crf
        params = {k: getattr(crf, f"{k}_transitions" if k != "transitions" else k).detach().float().tolist()
                  for k in ("start", "end", "transitions")}
        (out / "crf.json").write_text(json.dumps(params))  # float32 values: exact through JSON's doubles
        manifest |= {"labels": "labels.json", "crf": "crf.json"}
    if spec.kind == "ctc" or "char_ids" in spec.inputs:
        task.vocab.save(out / task.vocab.file)
        manifest["units"] = {"kind": task.vocab.kind, "file": task.vocab.file, "pad_id": int(task.vocab.pad_id)}
    if spec.kind == "ctc":
        manifest["ctc"] = {"beam_size": int(cfg.task.get("beam_size", 1)),
                           "marker_bonus": float(cfg.task.get("marker_bonus", 0.0))}
        if hasattr(task, "markers"):
            (out / "markers.json").write_text(json.dumps(task.markers, ensure_ascii=False), encoding="utf-8")
            manifest["markers"] = "markers.json"
    return manifest


def save_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- example utterances


def example_sentences(task: Task) -> list[str]:
    """Sentences of the model's own characters, a run of Latin letters and digits (several word pieces), and
    one of a single character (one word piece: the graph's smallest text)."""
    chars = [c for c in getattr(task.vocab, "stoi", {}) if len(c) == 1 and not c.isspace()][:40] or list("北京上海")
    return ["".join(chars[:9]) + "ABC2024" + "".join(chars[9:14]), "".join(chars[14:26]), chars[0],
            "".join(chars[26:33]) + "snlu", "".join(chars[3:8])]


def example_batches(task: Task) -> list[list[Utterance]]:
    """The traced batch (two utterances) and the check batches: one alone, three of other lengths (the
    shortest audio the encoder takes among them), all different sizes from the traced one."""
    rng = np.random.default_rng(0)
    sentences = example_sentences(task)
    seconds = [[2.3, 1.7], [1.1], [3.1, (MIN_FRAMES * 160 + 240) / SAMPLE_RATE, 2.0]]
    batches, k = [], 0
    for group in seconds:
        batch = []
        for s in group:
            wave = (rng.standard_normal(int(s * SAMPLE_RATE)) * 0.1).astype(np.float32)
            batch.append(make_utterance(sentences[k % len(sentences)], wave, f"example{k}", f"example {k}",
                                        task.uses_audio))
            k += 1
        batches.append(batch)
    return batches


# ----------------------------------------------------------------------------- tracing


@contextlib.contextmanager
def exporting(task: Task) -> Iterator[None]:
    """The task as the graph runs it: eval mode, no gradients, emissions instead of tags, the scan alignment;
    torch's exporters' notes for their developers kept out of the user's terminal."""
    quiet = [logging.getLogger(n) for n in ["torch", *logging.root.manager.loggerDict] if n.startswith("torch")]
    levels = [q.level for q in quiet]
    with torch.no_grad(), emissions_instead_of_tags(task), exportable_alignment(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for q in quiet:
            q.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)


def dims(spec: GraphSpec, mins: dict[str, int]) -> tuple[Any, ...]:
    """torch.export's dynamic shapes of the graph's inputs: ``tokens`` is ``pieces`` + 2 ([CLS], [SEP]), a derived
    axis when an input has the pieces axis (the tokenized fusions' ``pool``), else an axis of its own."""
    roots = {a: torch.export.Dim(a, min=mins[a], max=MAX_PIECES - 2 if a == "pieces" else int(2**31 - 1))
             for a in mins}
    if "pieces" in mins:
        has_pieces = any("pieces" in spec.axes[n] for n in spec.inputs)
        roots["tokens"] = roots["pieces"] + 2 if has_pieces else torch.export.Dim(
            "tokens", min=mins["pieces"] + 2, max=MAX_PIECES)
    return (tuple({i: roots[a] for i, a in enumerate(spec.axes[name])} for name in spec.inputs),)


def trace(graph: TaskGraph, args: tuple[torch.Tensor, ...], spec: GraphSpec, task: Task) -> tuple[Any, dict]:
    """``torch.export`` of the graph; an axis's smallest size is raised where the model needs it (two
    frames, two word pieces), never fixed. Returns the program and the axes' smallest sizes."""
    import torch.fx.experimental._config as fx_config

    used = {"pieces" if a == "tokens" else a for n in spec.inputs for a in spec.axes[n]}
    mins = {a: FIRST_MINS.get(a, 1) for a in used}
    if "samples" in used:  # two frames after the 4x subsampling of the built-in encoders: 11 fbank frames
        fe = task.frontend.cfg
        mins["samples"] = int(SAMPLE_RATE * (fe.frame_length_ms + 10 * fe.frame_shift_ms) / 1000)
    for _ in range(4):
        try:
            # (backed_size_oblivious: no guess that a length is never 1; stderr: torch prints the partial graph of a
            # failed export there, for its developers)
            with fx_config.patch(backed_size_oblivious=True), contextlib.redirect_stderr(io.StringIO()):
                program = torch.export.export(graph, args, dynamic_shapes=dims(spec, mins))
            return program, {a: {"min": mins[a]} | ({"max": MAX_PIECES - 2} if a == "pieces" else {})
                             for a in sorted(mins)}
        except Exception as e:  # torch.export's many error types
            raised = raised_minimums(e, mins)
            if not raised:
                raise SnluError(explain(e, graph, args, spec, mins)) from None
            log.info("export: the model needs %s: traced again", ", ".join(f"{a} >= {n}" for a, n in raised.items()))
            mins |= raised
    raise SnluError("export: the axes' smallest sizes did not settle after 4 traces")


def raised_minimums(e: Exception, mins: dict[str, int]) -> dict[str, int]:
    """A constraint violation whose every suggested fix only raises an axis's smallest size (within
    ``SMALLEST_OK``): those sizes; anything else (an axis fixed to one length, a relation): nothing."""
    text = str(e)
    if "Suggested fixes:" not in text:
        return {}
    out = {}
    for line in text.split("Suggested fixes:", 1)[1].strip().splitlines():
        fix = re.fullmatch(r"\s*(\w+) = Dim\('(\w+)'(?:, min=(\d+))?(?:, max=(\d+))?\)\s*", line)
        if not line.strip() or line.startswith("The error above"):
            break
        if not fix or fix.group(1) not in mins or fix.group(3) is None:
            return {}
        least = int(fix.group(3))
        if least <= mins[fix.group(1)] or least > SMALLEST_OK.get(fix.group(1), 4):
            return {}
        out[fix.group(1)] = least
    return out


# ----------------------------------------------------------------------------- what cannot be exported


def component_files(task: Task) -> dict[str, str]:
    """Source file -> the task section whose component class (or one of its parts' classes) it defines; files
    shared by several sections (torch.nn's) are left out."""
    owners: dict[str, set[str]] = {}
    for section in task.components:
        module = getattr(task, section, None)
        if not isinstance(module, nn.Module):
            continue
        for part in module.modules():
            try:
                owners.setdefault(os.path.realpath(inspect.getsourcefile(type(part)) or ""), set()).add(section)
            except TypeError:  # a builtin class
                continue
    return {f: next(iter(s)) for f, s in owners.items() if len(s) == 1}


def locate(frames: list[tuple[str, int, str]], files: dict[str, str]) -> tuple[str, str] | None:
    """The innermost (file, line, code) frame inside a component: (section, ``file:line `code```)."""
    for filename, line, code in reversed(frames):
        section = files.get(os.path.realpath(filename))
        if section:
            return section, f"{Path(filename).name}:{line} `{(code or '').strip()}`"
    return None


def explain(e: Exception, graph: TaskGraph, args: tuple, spec: GraphSpec, mins: dict[str, int]) -> str:
    """One line: which component cannot be exported, at which line, and why."""
    task = graph.task
    files = component_files(task)
    frames = [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(e.__traceback__)]
    where = locate(frames, files)
    text = str(e)
    if "data-dependent" in text:
        why = "Python control flow on tensor values (data-dependent)"
    elif "specialized it to be a constant" in text or re.search(r"Suggested fixes:\s*\w+ = \d+", text):
        why = "a length fixed by Python code (the graph would hold one size only)"
    else:
        why = first_line(e)
    if where is None:  # a length made a constant leaves no frame of its own: trace again to find it
        where = locate(fixed_length_frames(graph, args, spec, mins), files)
    if where is None:
        return f"export: the model cannot be exported: {why}"
    section, line = where
    name = task.cfg[section].name if section in task.cfg and "name" in task.cfg[section] else section
    return (f"{section}.name: {section} '{name}' ({type(getattr(task, section)).__name__}) cannot be exported: "
            f"{why}, at {line}")


class LengthFixed(Exception):
    """Raised where a traced length becomes a Python int (the diagnostic trace of ``fixed_length_frames``)."""


def fixed_length_frames(graph: TaskGraph, args: tuple, spec: GraphSpec, mins: dict[str, int]) -> list:
    """The frames (innermost last) where the model turns a dynamic length into a Python int (``range(T)``,
    ``int(x.shape[1])``): a second trace with such conversions raising, for the error message only."""
    import torch.fx.experimental._config as fx_config

    originals = torch.SymInt.__index__, torch.SymInt.__int__

    def strict(original: Any) -> Any:
        def convert(self: Any) -> int:
            if getattr(getattr(self.node, "expr", None), "free_symbols", None):
                raise LengthFixed()
            return original(self)

        return convert

    torch.SymInt.__index__, torch.SymInt.__int__ = strict(originals[0]), strict(originals[1])
    try:
        with fx_config.patch(backed_size_oblivious=True), contextlib.redirect_stderr(io.StringIO()):
            torch.export.export(graph, args, dynamic_shapes=dims(spec, mins))
    except LengthFixed as e:
        return [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(e.__traceback__)]
    except Exception:  # diagnostics only: the caller reports the original error
        return []
    finally:
        torch.SymInt.__index__, torch.SymInt.__int__ = originals
    return []


# ----------------------------------------------------------------------------- writing the graph


def save_graph(program: Any, out: Path, fmt: str, opset: int | None, spec: GraphSpec) -> int | None:
    """The program as ``model.onnx`` (torch.onnx's dynamo exporter, then snlu/export/onnx_fixes.py) or
    ``model.pt2`` (torch.export.save); the ONNX opset."""
    path = out / GRAPH_FILES[fmt]
    if fmt == "pt2":
        torch.export.save(program, str(path))
        return None
    try:
        onnx = torch.onnx.export(program, dynamo=True, input_names=spec.inputs, output_names=spec.outputs,
                                 opset_version=opset, verbose=False)
    except Exception as e:  # the converter's own error types
        raise SnluError(f"export: torch.onnx cannot convert the program: {first_line(e)}") from None
    import onnx as onnx_lib

    model = fix_for_onnxruntime(onnx.model_proto)
    check_dynamic_axes(model, spec)
    onnx_lib.save(model, str(path))
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def check_dynamic_axes(model: Any, spec: GraphSpec) -> None:
    """Every axis the manifest calls dynamic is symbolic in the ONNX graph's inputs (a tracer can bake the example's
    length in: refused here, before anything is written)."""
    for graph_input in model.graph.input:
        for axis, dim in zip(spec.axes.get(graph_input.name, []), graph_input.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                raise SnluError(f"export: the graph fixes axis '{axis}' of input '{graph_input.name}' to "
                                f"{dim.dim_value} (the example's size): it would refuse every other size")


# ----------------------------------------------------------------------------- verification


def eager_scores(task: Task, utts: list[Utterance], kind: str) -> tuple[list[np.ndarray], list[Any]]:
    """The eager model's scores of each utterance's real positions (emissions, or CTC logits) and its
    predictions, from the eager processor's batch."""
    batch = task.processor.collate([task.processor.prepare(u) for u in utts])
    with torch.no_grad():
        preds = task.predict(batch)
        if kind == "ner":
            with emissions_instead_of_tags(task):
                out = task.predict(batch).float().numpy()  # (B, P, tags)
            return [out[b, :n] for b, n in enumerate(batch["piece_lengths"].tolist())], preds
        logits, lengths = task(batch)  # (B, T', V)
        return [logits[b, :n].float().numpy() for b, n in enumerate(lengths.tolist())], preds


def runtime_scores(runtime: ExportedTask, utts: list[Utterance]) -> tuple[list[np.ndarray], list[Any]]:
    """The exported folder's scores of each utterance's real positions, and its predictions."""
    items = [runtime.prepare(u) for u in utts]
    feeds = runtime.collate(items)
    try:
        outputs = runtime.graph(feeds)
    except Exception as e:  # onnxruntime's (or torch's) own errors: the graph refuses these sizes
        sizes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        raise SnluError(f"export: verification failed: the graph refuses a check batch ({sizes}): "
                        f"{first_line(e)}") from None
    preds = runtime.decode(items, outputs)
    if runtime.decoder == "crf":
        if runtime.manifest["decode"] == "graph":
            return [], preds
        return [outputs[0][b, : len(it["offsets"])] for b, it in enumerate(items)], preds
    return [outputs[0][b, :n] for b, n in enumerate(outputs[1].tolist())], preds


def verify(task: Task, runtime: ExportedTask, batches: list[list[Utterance]], tolerance: float) -> dict[str, Any]:
    """Run the exported folder and the eager model on each batch: the largest score difference (over each
    utterance's largest magnitude) must stay within ``tolerance``; decoded results are compared too (tags
    decoded inside the graph must be the same)."""
    worst, same, total, sizes = 0.0, 0, 0, []
    kind = "ner" if runtime.decoder == "crf" else "ctc"
    for utts in batches:
        ref, ref_preds = eager_scores(task, utts, kind)
        got, preds = runtime_scores(runtime, utts)
        sizes.append(len(utts))
        for r, g in zip(ref, got):
            if r.shape != g.shape:
                raise SnluError(f"export: verification failed: scores of shape {list(g.shape)}, the model gives "
                                f"{list(r.shape)} (a length fixed inside the graph?)")
            scale = max(1.0, float(np.abs(r).max()))
            worst = max(worst, float(np.abs(r - g).max()) / scale)
        same += sum(p == q for p, q in zip(ref_preds, preds))
        total += len(utts)
    if worst > tolerance:
        raise SnluError(f"export: verification failed: the exported scores differ from the model's by {worst:.2e} "
                        f"(relative), over the tolerance {tolerance:.0e}: nothing was written")
    if same < total and runtime.manifest["decode"] == "graph":
        raise SnluError(f"export: verification failed: {total - same} of {total} example predictions decoded "
                        f"inside the graph differ from the model's: nothing was written")
    if same < total:
        log.warning("export: %d of %d example predictions differ from the model's (scores within %.1e: ties)",
                    total - same, total, worst)
    return {"batches": sizes, "max_relative_diff": worst, "tolerance": tolerance, "same_predictions": same,
            "predictions": total}


# ----------------------------------------------------------------------------- the whole export


def versions(fmt: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {"snlu": __version__}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime", "onnxscript") if fmt == "onnx" else ("torch",):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def export(model_dir: str | Path, out: str | Path | None = None, fmt: str = "onnx", opset: int | None = None,
           decode: str = "numpy", tolerance: float = TOLERANCE) -> Path:
    """Export a trained model (a run directory or its ``best/``) into ``out`` (default ``RUN/export-<format>``);
    the folder, once verified."""
    started, cpu = time.perf_counter(), time.process_time()
    if fmt not in FORMATS:
        raise SnluError(f"--format: expected one of {', '.join(FORMATS)}, got '{fmt}'")
    folder = model_folder(model_dir)
    out = Path(out) if out else default_out(folder, fmt)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SnluError(f"{out}: exists and is not empty (choose another --out or remove it)")
    task = Task.load(folder).eval()
    spec = graph_spec(task, decode)
    graph = TaskGraph(task, spec, decode).eval()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = write_assets(task, folder, tmp, spec, fmt, decode)
        save_manifest(tmp, manifest)
        runtime = ExportedTask(tmp)
        batches = example_batches(task)
        feeds = runtime.collate([runtime.prepare(u) for u in batches[0]])
        args = tuple(torch.from_numpy(feeds[n]) for n in spec.inputs)
        with exporting(task):
            traced = time.perf_counter()
            program, axes = trace(graph, args, spec, task)
            manifest["axes"] = axes
            manifest["opset"] = save_graph(program, tmp, fmt, opset, spec)
            traced = time.perf_counter() - traced
        save_manifest(tmp, manifest)
        runtime = ExportedTask(tmp)
        runtime.graph = GRAPHS[fmt](tmp / GRAPH_FILES[fmt], "cpu")
        manifest["verified"] = verify(task, runtime, batches, tolerance)
        manifest |= {"versions": versions(fmt), "created": datetime.datetime.now().isoformat(
            timespec="seconds"), "export_seconds": round(time.perf_counter() - started, 1),
            "export_cpu_seconds": round(time.process_time() - cpu, 1),
            "trace_seconds": round(traced, 1)}
        save_manifest(tmp, manifest)
        if out.exists():
            out.rmdir()  # (empty: checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
