"""snlu-report on fabricated sweep directories with known numbers."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

from snlu.cli.report import main as report_main
from snlu.core.errors import SnluError
from snlu.experiments.report import aggregate, collect

PNG = b"\x89PNG\r\n\x1a\n"

# variant -> seed -> (test f1, dev f1, test PER f1, minutes)
RUNS = {
    "concat": {1: (0.70, 0.60, 0.50, 2.0), 2: (0.73, 0.61, 0.55, 2.5), 3: (0.71, 0.62, 0.60, 3.0)},
    "raw": {1: (0.80, 0.70, 0.90, 1.0), 2: (0.82, 0.72, 0.80, 2.0), 3: (0.81, 0.74, 0.70, 3.0)},
    "single": {2: (0.79, 0.69, 0.85, 1.5)},
}


def fabricate(root: Path) -> None:
    for variant, seeds in RUNS.items():
        for seed, (test, dev, per, minutes) in seeds.items():
            run = root / variant / f"seed{seed}"
            run.mkdir(parents=True)
            scores = {"f1": test, "per_type": {"PER": {"f1": per, "precision": 0, "recall": 0, "support": 3},
                                               "LOC": {"f1": test, "precision": 0, "recall": 0, "support": 5}}}
            (run / "metrics.json").write_text(json.dumps({"dev": {"f1": dev}, "test": scores, "minutes": minutes}))
            history = [{"epoch": e, "dev": {"f1": dev * e / 3}} for e in (1, 2, 3)]
            (run / "history.json").write_text(json.dumps(history))
    (root / "broken" / "seed1").mkdir(parents=True)  # a failed run: no metrics.json
    aside = root / "raw" / "seed1.old-20250101-000000"  # an attempt moved aside never counts
    aside.mkdir()
    (aside / "metrics.json").write_text(json.dumps({"dev": {"f1": 0.0}, "test": {"f1": 0.0}, "minutes": 9}))
    (root / "sweep.json").write_text(json.dumps({"variants": ["raw", "concat", "single", "broken"]}))


def test_aggregate_means_stds_and_paired_test(tmp_path):
    fabricate(tmp_path)
    results, incomplete = collect(tmp_path)
    assert [(r.variant, r.seed) for r in results] == [("raw", 1), ("raw", 2), ("raw", 3), ("concat", 1),
                                                      ("concat", 2), ("concat", 3), ("single", 2)]
    assert incomplete == ["broken/seed1"]
    raw, concat, single = aggregate(results)
    assert raw.best and not concat.best and raw.significant is None
    assert statistics.mean(raw.test) == pytest.approx(0.81, rel=1e-12)
    assert statistics.stdev(raw.test) == pytest.approx(0.01, rel=1e-9)
    assert raw.per_type["PER"] == [0.90, 0.80, 0.70] and concat.minutes == [2.0, 2.5, 3.0]
    # concat - raw per seed: -0.10, -0.09, -0.10 -> t = -29 with 2 degrees of freedom
    assert concat.test_pairs.n == 3 and concat.test_pairs.t == pytest.approx(-29.0, rel=1e-9)
    assert concat.test_pairs.p == pytest.approx(1 - 29 / math.sqrt(843), rel=1e-6) and concat.significant
    assert single.test_pairs.n == 1 and single.significant is None  # one shared seed: no test


def test_report_files(tmp_path, capsys):
    fabricate(tmp_path)
    out = tmp_path / "report"
    assert report_main([str(tmp_path), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert printed in md
    lines = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
    # variant | seeds | test F1 | dev F1 | LOC F1 | PER F1 | delta | p | min/run
    assert lines["raw"] == ("| raw | 3 | 0.8100 ± 0.0100 | 0.7200 ± 0.0200 | 0.8100 ± 0.0100 | 0.8000 ± 0.1000 "
                            "| **best** |  | 2.0 ± 1.0 |")
    p = 1 - 29 / math.sqrt(843)
    assert lines["concat"] == ("| concat | 3 | 0.7133 ± 0.0153 | 0.6100 ± 0.0100 | 0.7133 ± 0.0153 | 0.5500 ± 0.0500 "
                               f"| -0.0967 * | {p:.3g} | 2.5 ± 0.5 |")
    assert lines["single"] == "| single | 1 | 0.7900 | 0.6900 | 0.7900 | 0.8500 | -0.0200 | n/a | 1.5 |"
    assert "Not counted (1 incomplete or failed): broken/seed1." in md

    rows = {r["variant"]: r for r in csv.DictReader((out / "report.csv").open())}
    assert list(rows) == ["raw", "concat", "single"]
    assert float(rows["concat"]["test_f1_mean"]) == pytest.approx(statistics.mean([0.70, 0.73, 0.71]), rel=1e-12)
    assert float(rows["concat"]["test_f1_std"]) == pytest.approx(statistics.stdev([0.70, 0.73, 0.71]), rel=1e-12)
    assert float(rows["concat"]["test_PER_f1_std"]) == pytest.approx(0.05, rel=1e-9)
    assert float(rows["concat"]["p_value"]) == pytest.approx(p, rel=1e-6)
    assert rows["concat"]["significant"] == "True" and rows["raw"]["best"] == "True"
    assert rows["single"]["test_f1_std"] == "" and rows["single"]["significant"] == ""
    assert rows["raw"]["seeds"] == "1 2 3" and rows["raw"]["n_seeds"] == "3"
    per_run = list(csv.DictReader((out / "runs.csv").open()))
    assert len(per_run) == 7 and per_run[0]["epochs"] == "3" and float(per_run[0]["test_f1"]) == 0.80
    for png in ("scores.png", "dev_curves.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, png


def test_lower_is_better_metric_picks_the_smallest(tmp_path):
    for variant, cers in {"a": [10.0, 12.0], "b": [8.0, 9.0]}.items():
        for seed, cer in enumerate(cers, 1):
            run = tmp_path / variant / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps({"dev": {"cer": cer}, "test": {"cer": cer}, "minutes": 1}))
    rows = aggregate(collect(tmp_path)[0], metric="cer")
    assert [v.variant for v in rows if v.best] == ["b"]


def test_empty_or_wrong_metric_is_one_clear_error(tmp_path):
    with pytest.raises(SnluError, match="no complete runs"):
        report_main([str(tmp_path)])
    fabricate(tmp_path)
    with pytest.raises(SnluError, match=r"no test 'cer' \(choose the metric with --metric\)"):
        report_main([str(tmp_path), "--metric", "cer"])
