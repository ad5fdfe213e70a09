"""``snlu-export``: the folder it writes and what it reports; a folder that is not a model is one line."""

from __future__ import annotations

import json
import sys

import pytest
from processes import run as run_process

pytestmark = pytest.mark.timeout(900)


def test_writes_a_self_contained_folder(exported):
    run, folder = exported("e2e")
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["task"] == "e2e_ner" and manifest["decoder"] == "ctc_markers"
    assert manifest["inputs"] == [{"name": "waveform", "dtype": "float32", "axes": ["batch", "samples"]},
                                  {"name": "wave_lengths", "dtype": "int64", "axes": ["batch"]}]
    assert manifest["outputs"] == ["logits", "frame_lengths"]
    assert manifest["versions"]["onnxruntime"] and manifest["opset"] >= 17 and manifest["export_seconds"] > 0
    assert {f.name for f in folder.iterdir()} >= {"model.onnx", "export.json", "config.yaml", "vocab.json",
                                                  "markers.json"}
    assert not (folder / "model.safetensors").exists()  # the weights live in the graph
    assert (folder / "config.yaml").read_text() == (run / "best" / "config.yaml").read_text()


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    r = run_process([sys.executable, "-c", "from snlu.cli.export import entry; entry()", str(tmp_path)], timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a saved model" in r.stderr, r.stderr
