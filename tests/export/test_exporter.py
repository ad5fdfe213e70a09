"""What cannot be exported is a one-line error naming the component and the line, and nothing is written; the
folder's refusals; the example inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from processes import run as run_process

from snlu.core.errors import SnluError
from snlu.export.exporter import example_batches, exporting, raised_minimums, trace
from snlu.export.graph import TaskGraph, graph_spec
from snlu.export.runtime import ExportedTask
from snlu.registry import FUSIONS
from snlu.tasks.base import Task

HERE = Path(__file__).parent
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory, tiny, demo_overrides):
    """A tiny run whose fusion branches in Python on a tensor's value (tests/export/unexportable_plugin.py)."""
    from snlu.cli.train import main

    run = tmp_path_factory.mktemp("plugin_run") / "run"
    assert main([str(HERE / "value_branch.yaml"), *tiny, *demo_overrides, "--output-dir", str(run)]) == 0
    return run


def test_a_value_branch_is_one_line_naming_the_component(plugin_run, tmp_path):
    out = tmp_path / "exported"
    r = run_process([sys.executable, "-c", "from snlu.cli.export import entry; entry()", str(plugin_run), "--out",
                     str(out)], timeout=800)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("error: fusion.name: fusion 'value_branch' (ValueBranchFusion) cannot be exported")
    assert "data-dependent" in lines[0] and "unexportable_plugin.py:" in lines[0]
    assert "if frames.abs().sum() == 0:" in lines[0]
    assert not out.exists() and not out.with_name("exported.tmp").exists()  # nothing written


def test_a_loop_over_frames_is_one_line_naming_the_component(plugin_run):
    task = Task.load(plugin_run).eval()
    task.fusion.__class__ = FUSIONS.get("frame_loop").cls  # the same weights, a loop over the frames
    task.cfg.fusion.name = "frame_loop"
    spec = graph_spec(task)
    graph = TaskGraph(task, spec).eval()
    args = example_args(task, spec, plugin_run)
    with exporting(task), pytest.raises(SnluError) as e:
        trace(graph, args, spec, task)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("fusion.name: fusion 'frame_loop' (FrameLoopFusion) cannot be exported: a length "
                              "fixed by Python code")
    assert "unexportable_plugin.py:" in message and "for t in range(frames.shape[1]):" in message


def example_args(task, spec, run) -> tuple[torch.Tensor, ...]:
    """The traced example batch, as the export makes it (through the runtime's collate of a written folder)."""
    from snlu.export.exporter import model_folder, save_manifest, write_assets

    out = run.parent / "assets"
    out.mkdir(exist_ok=True)
    save_manifest(out, write_assets(task, model_folder(run), out, spec, "onnx", "numpy"))
    runtime = ExportedTask(out)
    feeds = runtime.collate([runtime.prepare(u) for u in example_batches(task)[0]])
    return tuple(torch.from_numpy(feeds[n]) for n in spec.inputs)


def test_raised_minimums_accepts_larger_smallest_sizes_only():
    fixes = "Constraints violated (samples)!\nSuggested fixes:\n  samples = Dim('samples', min=2000)\n"
    assert raised_minimums(Exception(fixes), {"samples": 1360, "batch": 1}) == {"samples": 2000}
    assert raised_minimums(Exception("Suggested fixes:\n  samples = 23456\n"), {"samples": 1360}) == {}
    assert raised_minimums(Exception(fixes), {"samples": 2400}) == {}  # not larger
    assert raised_minimums(Exception("Suggested fixes:\n  pieces = Dim('pieces', min=300)\n"), {"pieces": 2}) == {}
    assert raised_minimums(Exception("no fixes"), {"samples": 1}) == {}


def test_refusals(tmp_path, trained):
    from snlu.export.exporter import export

    run = trained("text")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(SnluError, match="exists and is not empty"):
        export(run, busy)
    with pytest.raises(SnluError, match="--format: expected one of onnx, pt2"):
        export(run, tmp_path / "o", fmt="tflite")
    with pytest.raises(SnluError, match="not found"):
        export(tmp_path / "nothing", tmp_path / "o")


def test_example_batches_cover_the_smallest_inputs(trained):
    task = Task.load(trained("raw_all"))
    batches = example_batches(task)
    assert [len(b) for b in batches] == [2, 1, 3]
    waves = [len(u.wave) for b in batches for u in b]
    assert min(waves) < 2000 <= max(waves)  # the shortest audio the encoder takes: padded to the graph's least
    sentences = [u.sentence for b in batches for u in b]
    assert any(len(s) == 1 for s in sentences) and any("ABC2024" in s for s in sentences)
