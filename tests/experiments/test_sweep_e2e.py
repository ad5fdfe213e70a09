"""A real sweep end to end: 2 variants x 2 seeds of the tiny model on the demo fixture, each run its own
snlu-train process, then the report; running the sweep again runs nothing."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from processes import TAG

from snlu.cli.report import main as report_main
from snlu.cli.sweep import main as sweep_main

RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.mark.timeout(900)  # four real trainings
def test_tiny_sweep_then_report_then_restart(tmp_path, tiny, demo_overrides, capsys, procs, monkeypatch):
    monkeypatch.setenv(TAG, procs.tag)  # should this fail, the runs (which inherit it) die at teardown
    grid = "\n".join(f"  {o.split('=')[0]}: [{o.split('=')[1]}]" for o in tiny if o.startswith("audio_encoder"))
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"recipe: {RECIPES / 'fusion_raw_all.yaml'}\nseeds: [1, 2]\n"
                     f"overrides: [{', '.join(o for o in tiny if not o.startswith('audio_encoder'))}]\n"
                     f"grid:\n  fusion.name: [raw, concat]\n{grid}\n")
    out = tmp_path / "out"
    assert sweep_main([str(sweep), *demo_overrides, "--output-dir", str(out), "--jobs", "2"]) == 0
    runs = {(v, s): out / v / f"seed{s}" for v in ("raw", "concat") for s in (1, 2)}
    for (variant, seed), run in runs.items():
        cfg = (run / "config.yaml").read_text()
        assert f"seed: {seed}" in cfg and f"name: {variant}" in cfg and "n_blocks: 1" in cfg
        assert list(run.glob("events.out.tfevents.*")) and (run / "curves.png").is_file()
    record = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["done"] * 4

    capsys.readouterr()
    assert report_main([str(out)]) == 0
    table = capsys.readouterr().out
    rows = {r["variant"]: r for r in csv.DictReader((out / "report.csv").open())}
    assert set(rows) == {"raw", "concat"}
    for variant in ("raw", "concat"):
        f1s = [json.loads((runs[variant, s] / "metrics.json").read_text())["test"]["f1"] for s in (1, 2)]
        assert float(rows[variant]["test_f1_mean"]) == pytest.approx(statistics.mean(f1s), abs=1e-12)
        assert float(rows[variant]["test_f1_std"]) == pytest.approx(statistics.stdev(f1s), abs=1e-12)
        assert rows[variant]["n_seeds"] == "2"
        assert f"| {variant} | 2 | " in table
    assert (out / "scores.png").is_file() and (out / "dev_curves.png").is_file()

    stamps = {k: (r / "metrics.json").stat().st_mtime_ns for k, r in runs.items()}
    assert sweep_main([str(sweep), *demo_overrides, "--output-dir", str(out)]) == 0
    assert {k: (r / "metrics.json").stat().st_mtime_ns for k, r in runs.items()} == stamps  # nothing ran again
    assert [r["status"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == ["complete"] * 4
