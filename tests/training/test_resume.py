"""``snlu-train --resume``: a real run stopped by SIGTERM (exit 143) and later killed with SIGKILL at an
arbitrary step after a mid-epoch checkpoint, resumed each time, ends exactly like an uninterrupted run:
same best/ weights, same final weights and optimizer state, same metrics (CPU, same seed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import Processes
from safetensors.torch import load_file

from snlu.cli.train import main
from snlu.core.errors import ConfigError, SnluError

RECIPE = str(Path(__file__).parents[2] / "recipes" / "asr_pretrain.yaml")
# A tiny ASR model (dropout and SpecAugment draw from the RNG): 8 utterances, 4 batches per epoch.
TINY = ["audio_encoder.n_blocks=1", "audio_encoder.ffn_dim=128", "audio_encoder.d_model=64", "train.epochs=2",
        "train.batch_size=2", "train.num_workers=0", "train.checkpoint_every=1", "train.keep_checkpoints=2"]
CODE = "import sys; from snlu.cli.train import entry; sys.argv[0] = 'snlu-train'; entry()"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # same threads in every process


def start(procs: Processes, *args: str) -> subprocess.Popen:
    """snlu-train in a process of its own (killed at the test's end, with its data workers, if still running)."""
    return procs.start([sys.executable, "-c", CODE, *args], env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, path: Path, timeout: float = 300) -> None:
    """Poll until ``path`` exists; the process must still be running (else the test cannot interrupt it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"finished before {path.name} appeared: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same(a: Path, b: Path) -> None:
    x, y = tensors(a), tensors(b)
    assert x.keys() == y.keys()
    for k in x:
        assert torch.equal(x[k], y[k]), f"{a.name}: {k} differs"


def without_timing(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("minutes")
    return metrics


@pytest.mark.signals
@pytest.mark.timeout(900)
def test_sigterm_then_sigkill_then_resume_equals_uninterrupted(tmp_path, demo_overrides, procs):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = start(procs, RECIPE, *TINY, *demo_overrides, "--output-dir", str(a_dir))  # runs alongside the interrupted one
    b = start(procs, RECIPE, *TINY, *demo_overrides, "--output-dir", str(b_dir))
    wait_for(b, b_dir / "checkpoints" / "e001-b000001")
    b.send_signal(signal.SIGTERM)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "WARNING SIGTERM: stopped at epoch 1, " in last
    assert last.endswith(f"Continue with: snlu-train --resume {b_dir}")
    assert "Traceback" not in err

    b = start(procs, "--resume", str(b_dir))
    wait_for(b, b_dir / "checkpoints" / "e002-b000001")  # mid-epoch 2: best/ and a scheduler step behind it
    b.send_signal(signal.SIGKILL)
    b.wait(timeout=60)
    assert b.returncode == -signal.SIGKILL and not (b_dir / "metrics.json").exists()

    b = start(procs, "--resume", str(b_dir))
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err[-2000:]
    _, err = a.communicate(timeout=300)
    assert a.returncode == 0, err[-2000:]

    assert_same(a_dir / "best" / "model.safetensors", b_dir / "best" / "model.safetensors")
    final = "checkpoints/e003-b000000"  # the end of the last epoch: final weights, AdamW moments, RNG states
    assert_same(a_dir / final / "model.safetensors", b_dir / final / "model.safetensors")
    assert_same(a_dir / final / "trainer.safetensors", b_dir / final / "trainer.safetensors")
    assert without_timing(a_dir / "metrics.json") == without_timing(b_dir / "metrics.json")
    losses = [[h["loss"] for h in json.loads((d / "history.json").read_text())] for d in (a_dir, b_dir)]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    log = (b_dir / "train.log").read_text()
    assert log.count("(resuming)") == 2 and "resumed from" in log
    assert len(json.loads((b_dir / "environment.json").read_text())["resumes"]) == 2


def test_resume_accepts_only_train_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ConfigError, match=r"'optim.lrs.audio_encoder=1e-3': only train.epochs may be overridden"):
        main(["--resume", str(run), "optim.lrs.audio_encoder=1e-3"])
    with pytest.raises(ConfigError, match=r"'recipes/asr_pretrain.yaml': only train.epochs may be overridden"):
        main(["--resume", str(run), "recipes/asr_pretrain.yaml"])
    with pytest.raises(SnluError, match=f"{run}: not a run directory \\(no config.yaml\\)"):
        main(["--resume", str(run)])
    with pytest.raises(SystemExit):
        main(["--resume", str(run), "--output-dir", str(tmp_path / "x")])
    assert "no --output-dir or --overwrite" in capsys.readouterr().err

    assert main([RECIPE, "--print-config"]) == 0
    (run / "config.yaml").write_text(capsys.readouterr().out)
    assert main(["--resume", str(run), "train.epochs=30", "--print-config"]) == 0
    assert "epochs: 30" in capsys.readouterr().out


@pytest.mark.signals
@pytest.mark.timeout(900)
def test_ctrl_c_with_a_data_worker_is_said_once_and_minutes_add_up_over_sessions(tmp_path, demo_overrides, procs):
    """Ctrl-C reaches the whole process group, the data-loader worker too: the stop message is printed once
    (the worker leaves signals to the main process). Resumed, metrics.json's minutes count both sessions."""
    run = tmp_path / "run"
    b = start(procs, RECIPE, *TINY, "train.num_workers=1", *demo_overrides, "--output-dir", str(run))
    wait_for(b, run / "checkpoints" / "e001-b000001")  # in the loop, the worker running
    os.killpg(b.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = b.communicate(timeout=300)
    assert b.returncode == 130, err[-2000:]
    assert err.count("SIGINT: finishing the current step, then writing a checkpoint") == 1, err[-2000:]
    latest = sorted((run / "checkpoints").glob("e*/trainer.json"))[-1]
    first = json.loads(latest.read_text())["progress"]["seconds"]
    assert first > 0
    started = time.monotonic()
    b = start(procs, "--resume", str(run))
    _, err = b.communicate(timeout=300)
    second = time.monotonic() - started
    assert b.returncode == 0, err[-2000:]
    minutes = json.loads((run / "metrics.json").read_text())["minutes"]
    assert first / 60 < minutes <= (first + second) / 60 + 0.01
