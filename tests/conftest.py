"""Shared fixtures: offline Hugging Face, a tiny demo corpus built once, tiny-model overrides, and the
processes a test starts (killed with all they started when the test ends, however it ends)."""

from __future__ import annotations

import logging
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from processes import procs  # noqa: E402, F401 (the fixture: a test's processes, killed when it ends)

from snlu.plugins import load_builtins  # noqa: E402
from snlu.testing import TINY_OVERRIDES  # noqa: E402

load_builtins()
pytest_plugins = ["pytester"]  # tests/test_processes.py runs pytest on a failing and a hanging test

# Small model sizes so that a recipe trains one epoch in seconds (the recipes' structure is kept); the same
# list that snlu.testing gives plugin tests.
TINY = list(TINY_OVERRIDES)


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


@pytest.fixture(scope="session")
def random_run(tmp_path_factory, tiny, demo_overrides):
    """A tiny ``fusion_raw_all`` run on the demo corpus, trained with learning rates of 1e-9: it stays at its
    random initialisation, so it predicts plenty of (mostly wrong) spans to compare and score."""
    from pathlib import Path

    from snlu.cli.train import main

    run = tmp_path_factory.mktemp("random_run") / "run"
    lrs = [f"optim.lrs.{g}=1e-9" for g in ("textual_encoder", "textual_crf", "audio_encoder", "audio_crf",
                                             "fusion_layer")]
    recipe = Path(__file__).parents[1] / "recipes" / "fusion_raw_all.yaml"
    assert main([str(recipe), *tiny, *demo_overrides, *lrs, "--output-dir", str(run)]) == 0
    return run


@pytest.fixture
def snlu_log(caplog):
    """The ``snlu`` logger's records (it does not propagate to the root logger once a run set it up)."""
    logger = logging.getLogger("snlu")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny, demo_overrides):
    """``trained(name)``: a tiny run of each exportable task (tests/exports.py), trained on first use."""
    from exports import trained_models

    return trained_models(tmp_path_factory, tiny, demo_overrides)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, trained):
    """``exported(name)``: (run, exported folder) of each export of tests/exports.py, exported on first use."""
    from exports import exported_models

    return exported_models(tmp_path_factory, trained)
