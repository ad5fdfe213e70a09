"""Shared fixtures: offline Hugging Face, a tiny demo corpus built once, tiny-model overrides."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from snlu.plugins import load_builtins  # noqa: E402

load_builtins()

# Small model sizes so that a recipe trains one epoch in seconds (the recipes' structure is kept).
TINY = [
    "audio_encoder.n_blocks=1",
    "audio_encoder.ffn_dim=128",
    "audio_encoder.d_model=64",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
]


@pytest.fixture(scope="session")
def tiny():
    """Overrides for a tiny model trained one epoch (copy: tests may extend it)."""
    return list(TINY)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """A tiny demo corpus (espeak-ng speech of MSRA sentences), built once per test session."""
    from snlu.data.demo import build_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    return build_demo_corpus(out, n_train=8, n_dev=4, n_test=4, seed=1, progress=False)


@pytest.fixture(scope="session")
def demo_overrides(demo_dir):
    """Overrides pointing a recipe at the tiny demo corpus."""
    return [f"data.train={demo_dir}/train.jsonl", f"data.dev={demo_dir}/dev.jsonl",
            f"data.test={demo_dir}/test.jsonl", f"data.audio_dir={demo_dir}/wav"]
