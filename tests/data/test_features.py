"""The feature cache: equal to fresh features up to float16, keyed by the frontend settings, rebuilt when the
audio changes, never valid after an interrupted build, used by a task's prepare_audio in place of the audio."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snlu.config import load_recipe
from snlu.core.errors import ConfigError, DataError
from snlu.data import features as F
from snlu.data.audio import read_wav, write_wav
from snlu.data.features import FeatureCache
from snlu.data.utterance import Utterance
from snlu.registry import AUDIO_FRONTENDS, DATASETS, TASKS

ASSETS = Path(importlib.util.find_spec("s3tokenizer").submodule_search_locations[0]) / "assets"
RECIPES = Path(__file__).parents[2] / "recipes"


def fbank(**over):
    return AUDIO_FRONTENDS.build("fbank", config=over)


def utterances(folder: Path, n: int = 5) -> list[Utterance]:
    """A real AISHELL recording and ``n - 1`` generated ones of different lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [ASSETS / "BAC009S0764W0121.wav"]
    rng = np.random.default_rng(0)
    for i in range(1, n):
        paths.append(folder / f"g{i}.wav")
        write_wav(paths[-1], 0.1 * rng.standard_normal(4000 + 1600 * i))
    return [Utterance(p.stem, "你好", str(p), 1.0, [], [], {}, f"x.jsonl:{i + 1}") for i, p in enumerate(paths)]


def cached(utts: list[Utterance], root: Path, frontend, workers: int = 1) -> FeatureCache:
    cache = FeatureCache(root, workers)
    cache.add("train", utts)
    cache.ensure(frontend)
    return cache


def test_cache_equals_fresh_features_up_to_float16(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "CHUNK", 1)  # several chunks: the process pool path
    utts = utterances(tmp_path / "wav")
    fb = fbank()
    cache = cached(utts, tmp_path / "cache", fb, workers=2)
    for u in utts:
        assert u.features is cache
        feats, samples = cache.load(u, fb)
        fresh = fb.featurize(read_wav(u.audio))
        assert samples == len(read_wav(u.audio)) and feats.dtype == torch.float32
        assert torch.equal(feats, fresh.half().float())  # exactly the float16 rounding of the fresh features
        torch.testing.assert_close(feats, fresh, rtol=1e-3, atol=1e-4)
    folder = F.settings_folder(tmp_path / "cache", F.cache_settings(fb))
    index = json.loads((folder / "train.json").read_text())
    assert json.loads((folder / "settings.json").read_text())["num_mel_bins"] == 40
    frames = sum(fb.featurize(read_wav(u.audio)).shape[0] for u in utts)
    assert index["frames"] == frames and len(list(folder.glob("train-*.f16"))) == 1
    assert (folder / index["data"]).stat().st_size == frames * 40 * 2  # float16


def test_settings_change_builds_a_new_folder(tmp_path):
    utts = utterances(tmp_path / "wav", 2)
    root = tmp_path / "cache"
    cached(utts, root, fbank())
    folder40 = F.settings_folder(root, F.cache_settings(fbank()))
    before = (folder40 / "train.json").stat().st_mtime_ns
    fb80 = fbank(num_mel_bins=80)
    cache = cached(utts, root, fb80)
    folder80 = F.settings_folder(root, F.cache_settings(fb80))
    assert folder80 != folder40 and (folder80 / "train.json").is_file()
    assert cache.load(utts[0], fb80)[0].shape[1] == 80
    assert (folder40 / "train.json").stat().st_mtime_ns == before  # the 40-bin cache is kept as it was
    assert json.loads((folder80 / "settings.json").read_text())["num_mel_bins"] == 80


def test_changed_audio_rebuilds_the_split(tmp_path, snlu_log):
    utts = utterances(tmp_path / "wav", 3)
    fb = fbank()
    cached(utts, tmp_path / "cache", fb)
    write_wav(utts[1].audio, 0.3 * np.sin(np.arange(12000) / 7.0))  # another length and content
    cache = cached(utts, tmp_path / "cache", fb)
    assert "changed since the cache was built: building it" in snlu_log.text
    assert torch.equal(cache.load(utts[1], fb)[0], fb.featurize(read_wav(utts[1].audio)).half().float())
    snlu_log.clear()
    cached(utts[:2], tmp_path / "cache", fb)  # a subset of a valid cache (data.limit): used as it is
    assert "building it" not in snlu_log.text


def test_interrupted_build_leaves_no_valid_cache(tmp_path, monkeypatch, snlu_log):
    utts = utterances(tmp_path / "wav", 4)
    fb = fbank()
    calls = []
    real = F._featurize

    def dies_on_third_chunk(paths, frontend=None):
        calls.append(paths)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(paths, frontend)

    monkeypatch.setattr(F, "CHUNK", 1)
    monkeypatch.setattr(F, "_featurize", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        cached(utts, tmp_path / "cache", fb)
    folder = F.settings_folder(tmp_path / "cache", F.cache_settings(fb))
    assert not (folder / "train.json").exists() and not list(folder.glob("train-*"))
    monkeypatch.setattr(F, "_featurize", real)

    (folder / "train-deadbeef.f16").write_bytes(b"\0" * 100)  # a build killed with SIGKILL: its data file only
    cache = cached(utts, tmp_path / "cache", fb)
    assert "not built yet: building it" in snlu_log.text
    assert [p.name for p in folder.glob("train-*.f16")] == [json.loads((folder / "train.json").read_text())["data"]]

    data = folder / json.loads((folder / "train.json").read_text())["data"]
    data.write_bytes(data.read_bytes()[:-2])  # an index whose data file is cut short
    snlu_log.clear()
    cache = cached(utts, tmp_path / "cache", fb)
    assert "of the wrong size (interrupted build?): building it" in snlu_log.text
    assert torch.equal(cache.load(utts[3], fb)[0], fb.featurize(read_wav(utts[3].audio)).half().float())


def test_refusals_are_one_line_errors(tmp_path):
    utts = utterances(tmp_path / "wav", 2)
    with pytest.raises(ConfigError, match=r"^data.feature_cache: frontend.dither=0.5 draws new noise"):
        cached(utts, tmp_path / "cache", fbank(dither=0.5))
    cache = FeatureCache(tmp_path / "cache")
    cache.add("train", utts)
    with pytest.raises(ConfigError, match=r"^data.feature_cache: .*/fbank-\w+/train.json: not built yet"):
        cache.ensure(fbank(), build=False)  # what a data-loader worker does: never builds


def test_task_reads_features_from_the_cache(tmp_path, tiny, demo_overrides):
    """The cnerta dataset attaches the cache; Task.fit builds it for the processor's frontend; the processor reads it;
    an in-memory wave still wins; a too-short recording is the same one-line error as without a cache."""
    cfg = load_recipe(RECIPES / "asr_pretrain.yaml", [*tiny, *demo_overrides, f"data.feature_cache={tmp_path}/fc"])
    splits = DATASETS.build(cfg.data).load()
    assert all(u.features is not None for s in splits.values() for u in s)
    task = TASKS.get("asr").cls.from_data(cfg, splits["train"])
    folder = F.settings_folder(tmp_path / "fc", F.cache_settings(task.frontend))
    assert {p.name for p in folder.glob("*.json")} == {"settings.json", "train.json", "dev.json", "test.json"}
    for u in (splits["train"][0], splits["test"][-1]):
        fresh = task.processor.audio.frontend.featurize(read_wav(u.audio))
        assert torch.equal(task.processor.audio.prepare(u), fresh.half().float())
    u = splits["dev"][0]
    wave = 0.1 * np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    u.wave = wave
    assert torch.equal(task.processor.audio.prepare(u), task.processor.audio.frontend.featurize(wave))
    short = Utterance("s", "你", str(tmp_path / "short.wav"), 0.01, [], [], {}, "short.jsonl:3")
    write_wav(short.audio, np.zeros(300))
    FeatureCache(tmp_path / "fc").add("extra", [short])
    with pytest.raises(DataError, match=r"^short.jsonl:3: field 'audio': audio .* has 300 samples: too short"):
        task.processor.audio.prepare(short)


def test_prepare_demo_features_serve_the_demo_dataset(tmp_path, demo_dir):
    """``snlu-prepare demo --features`` caches the demo's splits as the cnerta dataset reads them: a run with
    ``data.feature_cache`` on the demo corpus finds the cache valid and builds nothing."""
    from snlu.cli.prepare import main as prepare
    from snlu.data.cnerta import CnertaConfig, CnertaData, DemoSizes

    out = tmp_path / "demo"
    shutil.copytree(demo_dir, out)
    sizes = ["--n-train", "8", "--n-dev", "4", "--n-test", "4", "--seed", "1"]
    assert prepare(["demo", "--out", str(out), *sizes, "--features", "--feature-workers", "2"]) == 0
    (folder,) = (out / "features").glob("fbank-*")
    built = {p.name: p.stat().st_mtime_ns for p in folder.glob("[!.]*")}
    assert {"train.json", "dev.json", "test.json"} <= set(built)
    splits = CnertaData(CnertaConfig(demo=DemoSizes(8, 4, 4, seed=1, dir=str(out)),
                                     feature_cache=str(out / "features"))).load()
    fb = fbank()
    assert splits["train"][0].features.ensure(fb) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("[!.]*")} == built  # nothing rebuilt
    u = splits["dev"][1]
    assert torch.equal(u.features.load(u, fb)[0], fb.featurize(read_wav(u.audio)).half().float())
