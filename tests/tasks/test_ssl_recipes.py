"""The pretrained-speech recipes on tiny random HuBERT, WavLM and Whisper folders (built here, loaded offline):
each trains ``spoken_ner`` and ``asr`` a few steps and reloads to its predictions; every fusion and tokenizer,
``e2e_ner``, ``init_from`` and exact resume work on it; frozen features go through the feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from snlu.cli.train import main
from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.encoders.ssl import weights_digest
from snlu.tasks.base import Task
from snlu.testing import random_speech_model
from snlu.training.trainer import Trainer

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["train.epochs=1", "train.batch_size=4", "train.num_workers=0", "audio_encoder.d_model=64"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl_models")
    return {f: random_speech_model(root / f, f) for f in ("hubert", "wavlm", "whisper")}


def encoder(models, family: str) -> list[str]:
    """Overrides that point a recipe at ``family``'s folder (Whisper: its own encoder, a fresh section)."""
    name = ["audio_encoder.name=whisper_encoder"] if family == "whisper" else []
    return [*name, f"audio_encoder.path={models[family]}", "audio_encoder.d_model=64"]


def train(recipe: str, run: Path, *overrides: str) -> dict:
    assert main([str(RECIPES / recipe), *SMALL, *overrides, "--output-dir", str(run)]) == 0
    return json.loads((run / "metrics.json").read_text())


def reloaded_test_metric(run: Path, metric: str, tmp_path: Path) -> float:
    """The saved best/ model, rebuilt without the recipe or the SSL folder's weights, scored on test again."""
    from omegaconf import OmegaConf

    from snlu.registry import DATASETS

    task = Task.load(run)
    cfg = OmegaConf.load(run / "config.yaml")
    metrics, _ = Trainer(task, cfg, tmp_path / "eval").evaluate(DATASETS.build(cfg.data).load()["test"])
    return metrics[metric]


def test_recipes_require_the_model_folder():
    for recipe in ("fusion_raw_all_ssl.yaml", "asr_ssl.yaml"):
        with pytest.raises(ConfigError, match="^audio_encoder.path: missing required value$"):
            load_recipe(RECIPES / recipe, [])


@pytest.mark.parametrize("family", ["hubert", "wavlm", "whisper"])
@pytest.mark.parametrize("recipe,metric", [("fusion_raw_all_ssl.yaml", "f1"), ("asr_ssl.yaml", "cer")])
def test_each_family_trains_spoken_ner_and_asr(family, recipe, metric, models, demo_overrides, tmp_path):
    run = tmp_path / "run"
    metrics = train(recipe, run, *demo_overrides, *encoder(models, family))
    assert metrics["test"][metric] >= 0.0
    saved = run / "best" / "audio_encoder"
    assert {p.name for p in saved.iterdir()} == {"config.json", "preprocessor_config.json", "snlu_weights.json"}
    assert reloaded_test_metric(run, metric, tmp_path) == metrics["test"][metric]


@pytest.mark.parametrize("fusion,tokenizer", [("raw", "dpmask"), ("tokenized", "all"), ("concat", "dpmask")])
def test_every_fusion_and_tokenizer(fusion, tokenizer, models, demo_overrides, tmp_path):
    train("fusion_raw_all_ssl.yaml", tmp_path / "run", *demo_overrides, *encoder(models, "hubert"),
          f"fusion.name={fusion}", f"audio_tokenizer.name={tokenizer}", "train.max_steps=1")


def test_e2e_ner_on_a_pretrained_encoder(models, demo_overrides, tmp_path):
    run = tmp_path / "run"
    metrics = train("e2e_ner.yaml", run, *demo_overrides, "frontend.name=waveform", "audio_encoder.name=hf_ssl",
                    f"audio_encoder.path={models['wavlm']}", "audio_encoder.d_model=64")
    assert "f1" in metrics["test"]


@pytest.mark.timeout(900)  # two or three training runs
def test_frozen_features_are_cached_keyed_by_weights_and_layers(models, demo_overrides, tmp_path):
    """freeze: all + data.feature_cache: the pooled selected states (float16) of each utterance, computed alone,
    are what the model reads; another layer choice gets another cache folder."""
    cache = tmp_path / "cache"
    run = tmp_path / "run"
    train("fusion_raw_all_ssl.yaml", run, *demo_overrides, *encoder(models, "wavlm"), f"data.feature_cache={cache}")
    [folder] = list(cache.iterdir())
    settings = json.loads((folder / "settings.json").read_text())
    task = Task.load(run)
    enc = task.audio_encoder
    assert folder.name.startswith("hf_ssl-") and settings["layers"] == [0, 1, 2] and settings["pool"] == "mean"
    assert settings["weights"] == weights_digest(enc.model) and settings["dtype"] == "float16"
    index = json.loads((folder / "train.json").read_text())
    assert index["dim"] == 3 * 32 == enc.cached_dim
    data = np.fromfile(folder / index["data"], dtype=np.float16).reshape(-1, index["dim"])
    assert data.shape[0] == index["frames"]

    from snlu.data.audio import read_wav
    from snlu.encoders.ssl import FrozenFeatures

    path, (offset, frames, samples, *_) = next(iter(index["utterances"].items()))
    wave = read_wav(path)
    assert frames == enc.num_frames(len(wave)) and samples == len(wave)
    cached = torch.from_numpy(data[offset : offset + frames].astype(np.float32))
    torch.testing.assert_close(cached, FrozenFeatures(enc).featurize(wave), atol=2e-3, rtol=2e-3)
    enc.eval()
    with torch.no_grad():  # the model on cached states = the model on the samples (up to float16)
        from_cache, n1 = enc(cached[None], torch.tensor([frames]))
        from_wave, n2 = enc(torch.from_numpy(wave)[None, :, None], torch.tensor([len(wave)]))
    assert n1.tolist() == n2.tolist() == [frames]
    torch.testing.assert_close(from_cache, from_wave, atol=2e-2, rtol=2e-2)

    train("fusion_raw_all_ssl.yaml", tmp_path / "run2", *demo_overrides, *encoder(models, "wavlm"),
          f"data.feature_cache={cache}", "audio_encoder.layer=last", "train.max_steps=1")
    assert len(list(cache.iterdir())) == 2


def test_a_fine_tuned_encoder_reads_samples_not_the_cache(models, demo_overrides, tmp_path):
    run = tmp_path / "run"
    train("asr_ssl.yaml", run, *demo_overrides, *encoder(models, "hubert"), f"data.feature_cache={tmp_path / 'c'}",
          "train.max_steps=1")
    assert "data.feature_cache: not used" in (run / "train.log").read_text()
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


@pytest.mark.timeout(900)  # two or three training runs
def test_init_from_a_fine_tuned_run_then_cache_its_frozen_states(models, demo_overrides, tmp_path):
    """The cache of a frozen encoder initialised from another run holds that run's states, not the folder's."""
    asr = tmp_path / "asr"
    train("asr_ssl.yaml", asr, *demo_overrides, *encoder(models, "hubert"), "optim.lrs.ssl=1e-2")
    cache, ner = tmp_path / "cache", tmp_path / "ner"
    train("fusion_raw_all_ssl.yaml", ner, *demo_overrides, *encoder(models, "hubert"), f"data.feature_cache={cache}",
          f"audio_encoder.init_from={asr}", "train.max_steps=1")
    assert "audio_encoder.init_from: copied" in (ner / "train.log").read_text()
    [folder] = list(cache.iterdir())
    weights = json.loads((folder / "settings.json").read_text())["weights"]
    assert weights == weights_digest(Task.load(asr).audio_encoder.model)
    from snlu.registry import AUDIO_ENCODERS

    original = AUDIO_ENCODERS.build("hf_ssl", 1, config={"path": str(models["hubert"])})
    assert weights != weights_digest(original.model)


@pytest.mark.timeout(900)  # two or three training runs
def test_resume_is_exact_across_the_unfreezing(models, demo_overrides, tmp_path):
    """Frozen 5 batches then fine-tuned (4 batches an epoch): interrupted after epoch 1 and resumed, the run ends
    as the uninterrupted one, the batch counter included."""
    over = [*demo_overrides, *encoder(models, "hubert"), "audio_encoder.freeze=all",
            "audio_encoder.unfreeze_after_steps=5", "train.batch_size=2", "train.keep_checkpoints=2"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([str(RECIPES / "asr_ssl.yaml"), *SMALL, *over, "train.epochs=2", "--output-dir", str(a)]) == 0
    assert main([str(RECIPES / "asr_ssl.yaml"), *SMALL, *over, "--output-dir", str(b)]) == 0
    assert main(["--resume", str(b), "train.epochs=2"]) == 0
    final = "checkpoints/e003-b000000"
    x, y = load_file(str(a / final / "model.safetensors")), load_file(str(b / final / "model.safetensors"))
    assert x.keys() == y.keys() and int(x["audio_encoder.trained_batches"]) == 8
    for k in x:
        assert torch.equal(x[k], y[k]), k
    first = load_file(str(b / "checkpoints" / "e002-b000000" / "model.safetensors"))
    layer = "audio_encoder.model.encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(first[layer], load_file(str(models["hubert"] / "model.safetensors"))[f"{layer[20:]}"])
    assert not torch.equal(x[layer], first[layer])  # it trained after the unfreezing, in epoch 2
