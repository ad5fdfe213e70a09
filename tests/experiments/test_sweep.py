"""Sweep files: expansion (grid x list x seeds), validation, and the runner's restart/failure handling
(with a stand-in training command: the real one is exercised in test_sweep_e2e.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from processes import TAG

from snlu.cli.sweep import main as sweep_main
from snlu.config import load_recipe
from snlu.core.errors import ConfigError, SnluError
from snlu.experiments.sweep import SweepRunner
from snlu.experiments.sweep_file import load_sweep, validate

RECIPES = Path(__file__).parents[2] / "recipes"


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("RECIPES", str(RECIPES)))
    return path


def pretrained_stub(run: Path, tiny: list[str]) -> Path:
    """A run folder as ``audio_encoder.init_from`` reads it at recipe load: best/config.yaml (a tiny asr recipe)
    beside a weights file (validation reads only the recipe)."""
    (run / "best").mkdir(parents=True)
    OmegaConf.save(load_recipe(RECIPES / "asr_pretrain.yaml", list(tiny)), run / "best" / "config.yaml")
    (run / "best" / "model.safetensors").write_bytes(b"")
    return run


GRID_AND_LIST = """
recipe: RECIPES/fusion_raw_all.yaml
seeds: [3, 1]
overrides: [train.epochs=2]
vars: {asr: /data/asr}
grid:
  fusion.name: [raw, concat]
  loss.audio_crf_coef: [0, 0.15]
  audio_encoder.init_from: ["{asr}"]
variants:
  text: {recipe: RECIPES/text_only.yaml, overrides: [train.batch_size=8]}
"""


def test_grid_times_list_times_seeds(tmp_path, tiny):
    asr = pretrained_stub(tmp_path / "asr", tiny)
    sweep = load_sweep(write(tmp_path, GRID_AND_LIST.replace("/data/asr", str(asr))), extra=["data.max_chars=40"])
    names = [v.name for v in sweep.variants]
    assert names == ["raw-audio_crf_coef=0", "raw-audio_crf_coef=0.15", "concat-audio_crf_coef=0",
                     "concat-audio_crf_coef=0.15", "text"]
    runs = sweep.runs(tmp_path / "out")
    assert [r.name for r in runs] == [f"{n}/seed{s}" for s in (3, 1) for n in names]  # seed by seed
    first = runs[0]
    assert first.variant.recipe == (RECIPES / "fusion_raw_all.yaml").resolve()
    assert first.overrides == ["train.epochs=2", "fusion.name=raw", "loss.audio_crf_coef=0",
                               f"audio_encoder.init_from={asr}", "data.max_chars=40", "seed=3"]
    assert first.dir == tmp_path / "out" / "raw-audio_crf_coef=0" / "seed3"
    text = runs[4]
    assert text.variant.recipe == (RECIPES / "text_only.yaml").resolve()
    assert text.overrides == ["train.epochs=2", "train.batch_size=8", "data.max_chars=40", "seed=3"]
    validate(sweep)  # every variant is a valid recipe


def test_variables_from_the_command_line_and_a_list_of_grids(tmp_path, tiny, monkeypatch):
    path = write(tmp_path, """
recipe: RECIPES/fusion_raw_all.yaml
seeds: [1]
vars: {asr: null}
grid:
  - {fusion.name: [raw, tokenized]}
  - {optim.lrs.fusion_layer: [2.0e-5, 3.0e-5], audio_encoder.init_from: ["{asr}"]}
""")
    with pytest.raises(ConfigError, match=r"vars.asr: not set: give it with --var asr=VALUE"):
        load_sweep(path)
    with pytest.raises(ConfigError, match=r"--var asr_run: .* declares no such variable \(vars: asr\)"):
        load_sweep(path, {"asr_run": "runs/asr"})
    sweep = load_sweep(path, {"asr": "runs/asr"})
    assert [v.name for v in sweep.variants] == ["raw", "tokenized", "fusion_layer=2e-05", "fusion_layer=3e-05"]
    assert sweep.variants[2].overrides == ("optim.lrs.fusion_layer=2e-05", "audio_encoder.init_from=runs/asr")
    monkeypatch.chdir(tmp_path)  # validation reads the pretrained run's recipe (runs/asr, relative to here)
    pretrained_stub(tmp_path / "runs" / "asr", tiny)
    validate(sweep)


def test_no_variants_means_the_base_recipe_over_the_seeds(tmp_path):
    sweep = load_sweep(write(tmp_path, "recipe: RECIPES/text_only.yaml\nseeds: [5, 6]\n"))
    assert [r.name for r in sweep.runs(tmp_path)] == ["text_only/seed5", "text_only/seed6"]


@pytest.mark.parametrize("text,message", [
    ("recipe: RECIPES/text_only.yaml\nseed: [1]\n", r"seed: unknown key; did you mean seeds\?"),
    ("seeds: [1]\n", r"recipe: expected the path"),
    ("recipe: nowhere.yaml\n", r"recipe: recipe not found"),
    ("recipe: RECIPES/text_only.yaml\nseeds: [1, 1]\n", r"seeds: expected a list of distinct"),
    ("recipe: RECIPES/text_only.yaml\ngrid: {train.epochs: 3}\n", r"grid.train.epochs: expected a non-empty list"),
    ("recipe: RECIPES/text_only.yaml\noverrides: [train.epochs]\n", r"overrides: expected a list of key=value"),
    ("recipe: RECIPES/text_only.yaml\noverrides: ['data.train={nope}']\n", r"uses \{nope\}, which is not declared"),
    ("recipe: RECIPES/text_only.yaml\ngrid: {train.epochs: [1, 2]}\nvariants: {epochs=1: {}}\n",
     r"two variants are named 'epochs=1'"),
    ("recipe: RECIPES/text_only.yaml\nvariants: {a/b: {}}\n", r"'a/b': a variant name may hold"),
    ("recipe: RECIPES/text_only.yaml\nvariants: {a: {override: []}}\n", r"variants.a.override: unknown key"),
])
def test_sweep_file_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path, text))


def test_validation_names_the_variant(tmp_path):
    text = "recipe: RECIPES/text_only.yaml\nvariants:\n  bad: {overrides: [fusion.name=raw]}\n"
    sweep = load_sweep(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"variant bad: fusion: unknown section for task 'text_ner'"):
        validate(sweep)


# ----------------------------------------------------------------------------- the runner, with a stand-in trainer

# Writes metrics.json like snlu-train (test f1 = seed / 10) and records each call; fails for train.epochs=7.
FAKE_TRAIN = r"""
import json, pathlib, sys
calls, args = pathlib.Path(sys.argv[1]), sys.argv[2:]
out = pathlib.Path(args[args.index("--output-dir") + 1])
with calls.open("a") as f:
    f.write(out.parent.name + "/" + out.name + "\n")
if "train.epochs=7" in args:
    print("error: train: diverged (stand-in)")
    sys.exit(2)
assert not out.exists() or not any(out.iterdir()), "the run directory must be empty"
out.mkdir(parents=True, exist_ok=True)
seed = int([a for a in args if a.startswith("seed=")][0][5:])
(out / "metrics.json").write_text(json.dumps({"dev": {"f1": seed / 20}, "test": {"f1": seed / 10}, "minutes": 0.1}))
"""

STAND_IN = """
recipe: RECIPES/text_only.yaml
seeds: [1, 2]
variants:
  good: {overrides: [train.epochs=1]}
  bad: {overrides: [train.epochs=7]}
"""


def stand_in(calls: Path):
    def command(run):
        return [sys.executable, "-c", FAKE_TRAIN, str(calls), *run.overrides, "--output-dir", str(run.dir)]

    return command


def test_failures_are_reported_and_restart_skips_complete_runs(tmp_path, snlu_log):
    sweep = load_sweep(write(tmp_path, STAND_IN))
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    outcomes = SweepRunner(sweep, out, jobs=2, command=stand_in(calls)).run()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored after run()
    assert {o.run.name: o.status for o in outcomes} == {"good/seed1": "done", "bad/seed1": "failed",
                                                        "good/seed2": "done", "bad/seed2": "failed"}
    failed = [o for o in outcomes if o.status == "failed"]
    assert all(o.returncode == 2 and o.error == "error: train: diverged (stand-in)" for o in failed)
    assert sorted(calls.read_text().split()) == ["bad/seed1", "bad/seed2", "good/seed1", "good/seed2"]
    assert json.loads((out / "good" / "seed2" / "metrics.json").read_text())["test"]["f1"] == 0.2
    record = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert record["bad/seed1"]["status"] == "failed" and record["bad/seed1"]["returncode"] == 2
    assert record["good/seed1"]["overrides"] == ["train.epochs=1", "seed=1"]
    assert "error: train: diverged" in (out / "logs" / "bad.seed1.log").read_text()

    # An interrupted run left a half-written directory: it is moved aside (logged), then run again.
    (out / "bad" / "seed2").mkdir(parents=True)
    (out / "bad" / "seed2" / "train.log").write_text("killed halfway\n")
    calls.unlink()
    snlu_log.clear()
    outcomes = SweepRunner(sweep, out, jobs=1, command=stand_in(calls)).run()
    assert sorted(calls.read_text().split()) == ["bad/seed1", "bad/seed2"]  # complete runs skipped
    assert [o.status for o in outcomes] == ["complete", "failed", "complete", "failed"]
    moved = list((out / "bad").glob("seed2.old-*"))
    assert len(moved) == 1 and (moved[0] / "train.log").read_text() == "killed halfway\n"
    assert "bad/seed2: incomplete (no metrics.json): moving it aside" in snlu_log.text
    assert f"moved the existing {out / 'bad' / 'seed2'} aside to {moved[0]}" in snlu_log.text
    assert "2 complete already (skipped), 2 to run" in snlu_log.text


def test_restart_refuses_complete_runs_made_with_other_settings(tmp_path):
    sweep = load_sweep(write(tmp_path, STAND_IN))
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    SweepRunner(sweep, out, command=stand_in(calls)).run()
    changed = load_sweep(write(tmp_path, STAND_IN), extra=["train.batch_size=2"])
    with pytest.raises(SnluError, match=r"2 complete runs were made with other settings.*good/seed1 \(was"):
        SweepRunner(changed, out, command=stand_in(calls)).run()


def test_cli_dry_run_lists_states_and_commands(tmp_path, capsys):
    path = write(tmp_path, STAND_IN)
    out = tmp_path / "out"
    (out / "good" / "seed1").mkdir(parents=True)
    (out / "good" / "seed1" / "metrics.json").write_text("{}")
    (out / "bad" / "seed1").mkdir(parents=True)
    (out / "bad" / "seed1" / "train.log").write_text("")
    assert sweep_main([str(path), "--dry-run", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 variants x 2 seeds = 4 runs" in text
    assert "[complete] good/seed1:" in text and "[new] good/seed2:" in text
    assert "[incomplete] bad/seed1:" in text and "(moved aside, then started again)" in text
    assert f"-m snlu.cli.train {(RECIPES / 'text_only.yaml').resolve()} train.epochs=7 seed=2 --output-dir" in text
    assert not (out / "sweep.json").exists()  # a dry run writes nothing


@pytest.mark.parametrize("name", ["demo_ablation", "reference_ablation", "demo_pretraining"])
def test_shipped_sweeps_expand_and_validate(name, tmp_path, monkeypatch, tiny):
    monkeypatch.chdir(tmp_path)  # the pretrained runs the sweeps name (runs/asr, runs/asr_demo), as saved models
    for run in ("runs/asr", "runs/asr_demo"):
        pretrained_stub(tmp_path / run, tiny)
    sweep = load_sweep(RECIPES / "sweeps" / f"{name}.yaml")
    validate(sweep)
    assert len(sweep.seeds) >= 2 if name == "demo_ablation" else len(sweep.seeds) >= 3
    if name == "reference_ablation":
        names = {v.name for v in sweep.variants}
        assert {f"{f}-{t}" for f in ("raw", "tokenized", "concat") for t in ("all", "dpmask")} <= names
        assert {"text_only", "no_asr", "audio_crf_coef=0", "fusion_layer_lr=2e-5", "audio_encoder_lr=3e-5"} <= names
        raw_all = next(v for v in sweep.variants if v.name == "raw-all")
        assert "audio_encoder.init_from=runs/asr" in raw_all.overrides
    if name == "demo_pretraining":  # the pretrained variant takes the run's encoder, scratch states the same shape
        pretrained, scratch = (load_recipe(v.recipe, list(v.overrides)).audio_encoder for v in sweep.variants)
        assert (pretrained.n_blocks, pretrained.d_model, pretrained.ffn_dim) == (1, 64, 128)
        assert (scratch.n_blocks, scratch.ffn_dim, scratch.norm_first) == (6, 1024, True)


# A stand-in trainer that waits to be stopped, like snlu-train after SIGINT: record the signal, exit 130.
WAITING_TRAIN = r"""
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    (out / "signals").open("a").write(f"{signum}\n")
    sys.exit(130)
signal.signal(signal.SIGINT, stop)
out.mkdir(parents=True, exist_ok=True)
(out / "started").write_text("")
while True:
    time.sleep(0.05)
"""

DRIVER = r"""
import signal, sys
from snlu.experiments.sweep import SweepRunner
from snlu.experiments.sweep_file import load_sweep
from snlu.core.logs import setup_logging
print(f"SIGINT at start: {signal.getsignal(signal.SIGINT)!r}", file=sys.stderr, flush=True)
setup_logging()
sweep = load_sweep(sys.argv[1])
runner = SweepRunner(sweep, sys.argv[2], jobs=2, command=lambda r: [sys.executable, "-c", sys.argv[3], str(r.dir)])
try:
    runner.run()
except KeyboardInterrupt:
    sys.exit(130)
"""
# Starts the rest of its command line with SIGINT ignored, as a shell starts a background job of a script (`&`).
IGNORING_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


@pytest.mark.signals
@pytest.mark.parametrize("parent, sig", [("default", "SIGINT"), ("ignores SIGINT", "SIGINT"),
                                         ("ignores SIGINT", "SIGTERM")])
def test_ctrl_c_gives_each_running_trainer_one_sigint(tmp_path, procs, parent, sig):
    """SIGINT (or SIGTERM) to the sweep: each running run gets exactly one SIGINT, no new run starts; also
    where the sweep was started with SIGINT ignored."""
    path = write(tmp_path, "recipe: RECIPES/text_only.yaml\nseeds: [1, 2, 3]\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", DRIVER, str(path), str(out), WAITING_TRAIN]
    if parent == "ignores SIGINT":
        cmd = [sys.executable, "-c", IGNORING_SIGINT, *cmd[1:]]
    driver = procs.start(cmd, stderr=subprocess.PIPE, text=True)
    runs = [out / "text_only" / f"seed{s}" for s in (1, 2)]
    deadline = time.monotonic() + 120
    while not all((r / "started").exists() for r in runs):  # both parallel runs are up
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read()
        time.sleep(0.1)
    driver.send_signal(getattr(signal, sig))
    assert driver.wait(timeout=120) == 130
    err = driver.stderr.read()
    if parent == "ignores SIGINT":  # the situation this test is about did arise
        assert "SIGINT at start: <Handlers.SIG_IGN: 1>" in err
    assert "interrupted: stopping 2 running runs" in err
    for r in runs:
        assert (r / "signals").read_text() == f"{int(signal.SIGINT)}\n"  # exactly one, passed on by the sweep
    assert not (out / "text_only" / "seed3").exists()  # no new run after Ctrl-C
    record = {r["name"]: r["status"] for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert record == {"text_only/seed1": "interrupted", "text_only/seed2": "interrupted", "text_only/seed3": "pending"}


@pytest.mark.signals
def test_an_error_in_the_runner_stops_the_running_trainers(tmp_path, procs, monkeypatch):
    """Not only Ctrl-C: whatever ends run() early, the runs it started get their SIGINT and are waited for."""
    monkeypatch.setenv(TAG, procs.tag)  # should this fail, the trainers (which inherit it) die at teardown
    sweep = load_sweep(write(tmp_path, "recipe: RECIPES/text_only.yaml\nseeds: [1, 2, 3]\n"))
    out = tmp_path / "out"
    runs = [out / "text_only" / f"seed{s}" for s in (1, 2)]

    def command(run):
        if run.seed == 3:  # fails once the other two are running
            deadline = time.monotonic() + 120
            while not all((r / "started").exists() for r in runs) and time.monotonic() < deadline:
                time.sleep(0.05)
            raise RuntimeError("broken command (stand-in)")
        return [sys.executable, "-c", WAITING_TRAIN, str(run.dir)]

    runner = SweepRunner(sweep, out, jobs=3, command=command)
    with pytest.raises(RuntimeError, match="broken command"):
        runner.run()
    for r in runs:
        assert (r / "signals").read_text() == f"{int(signal.SIGINT)}\n"
    assert not runner.procs  # every started run was waited for
    record = {r["name"]: r["status"] for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert record == {"text_only/seed1": "interrupted", "text_only/seed2": "interrupted", "text_only/seed3": "pending"}
