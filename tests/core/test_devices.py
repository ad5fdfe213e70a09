"""snlu.core.devices: the device of a setting (this process's GPU under torchrun), batches moved, autocast dtype."""

from __future__ import annotations

import torch

from snlu.core.devices import amp_dtype, pick_device, to_device


def test_pick_device(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device("cuda") == torch.device("cuda", 1)  # (a device object: nothing is allocated)
    assert pick_device("cpu") == torch.device("cpu")


def test_to_device_and_amp_dtype():
    batch = to_device({"x": torch.ones(2), "utts": ["a"]}, torch.device("cpu"))
    assert batch["utts"] == ["a"] and batch["x"].device.type == "cpu"
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16 and amp_dtype("fp16", cpu) == torch.float16
