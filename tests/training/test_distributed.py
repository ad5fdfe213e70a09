"""Data-parallel training: 2 CPU processes (gloo, started by torchrun) after one step hold identical weights,
equal to one process's step on the same global batch; sharded evaluation matches one process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import processes
import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def run(cmd: list[str]) -> None:
    """``cmd`` to its end (on a failure or timeout, killed with torchrun's ranks, which have sessions of their own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = processes.run(cmd, env=env, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.timeout(900)
def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path, demo_dir):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    run([sys.executable, str(WORKER), str(single), str(demo_dir), "4"])
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
         str(ddp), str(demo_dir), "2"])

    ids = [json.loads((ddp / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ids[0]) == len(ids[1]) == 2 and not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(json.loads((single / "rank0.json").read_text()))

    def load(name: str) -> dict[str, torch.Tensor]:
        return load_file(str(tmp_path / name))

    for kind in ("rank", "grad"):  # the ranks stepped with the same gradients to the same weights
        r0, r1 = load(f"ddp/{kind}0.safetensors"), load(f"ddp/{kind}1.safetensors")
        assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0), kind

    # ... equal to one process's gradients on the whole global batch (up to float32 summation order)
    grad, ref_grad = load("ddp/grad0.safetensors"), load("single/grad0.safetensors")
    assert grad.keys() == ref_grad.keys() and len(grad) > 50
    for k in grad:
        torch.testing.assert_close(grad[k], ref_grad[k], rtol=1e-3, atol=1e-7, msg=k)

    # ... and to its weights, wherever the gradient is clearly non-zero (AdamW's first step moves a weight by
    # lr * sign(gradient): a gradient within rounding of zero may take either sign)
    weights, ref = load("ddp/rank0.safetensors"), load("single/rank0.safetensors")
    init = load("single/init.safetensors")
    clear = 0
    for k in grad:  # parameter names are state-dict keys
        sure = ref_grad[k].abs() > 1e-5
        clear += int(sure.sum())
        torch.testing.assert_close(weights[k][sure], ref[k][sure], rtol=0, atol=1e-6, msg=k)
        assert ((ref[k] - init[k])[sure].abs() > 5e-4).all(), f"{k}: the step did not move the weight"
    assert clear > 10_000


@pytest.mark.timeout(900)
def test_snlu_train_nproc_2_trains_evaluates_and_writes_once(tmp_path, tiny, demo_overrides):
    """The whole job under torchrun: rank 0 writes the run, metrics come from all ranks' predictions."""
    recipe = Path(__file__).parents[2] / "recipes" / "fusion_raw_all.yaml"
    run_dir = tmp_path / "run"
    run([sys.executable, "-m", "snlu.cli.train", "--nproc", "2", str(recipe), *tiny, *demo_overrides,
         "train.batch_size=2", "train.epochs=2", "--output-dir", str(run_dir)])
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["world_size"] == 2
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["skipped_steps"] == 0 for h in history)
    lines = (run_dir / "test_predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4  # every test utterance once, gathered from both ranks in input order
    test_ids = [json.loads(x)["audio"][0] for x in (Path(demo_overrides[2].split("=", 1)[1])).read_text().splitlines()]
    assert [json.loads(x)["audio"][0] for x in lines] == test_ids
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["f1"] <= 1.0
    assert (run_dir / "train.log").read_text().count("epoch 1:") == 1  # one writer
