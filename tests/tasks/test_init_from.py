"""Strict ``audio_encoder.init_from``: at recipe load the pretrained run's config.yaml gives the encoder and
frontend (a log line for each option the recipe set otherwise; dropout and SpecAugment stay the recipe's), so
``--print-config`` shows the encoder built; every frontend and encoder tensor then loads (compared tensor by
tensor), and weights that do not fit are a one-line error; the auxiliary CTC's rows are copied when both models
have the same auxiliary units."""

from __future__ import annotations

import sys
from pathlib import Path

import processes
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from snlu.cli.train import main
from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.data.cnerta import read_cnerta
from snlu.registry import TASKS
from snlu.tasks import io

RECIPES = Path(__file__).parents[2] / "recipes"
# the pretrained encoder: pre-norm, 2 blocks, 20 mel bins (none of the NER recipe's options)
PRETRAINED = ["audio_encoder.n_blocks=2", "audio_encoder.d_model=32", "audio_encoder.ffn_dim=64",
              "audio_encoder.norm_first=true", "frontend.num_mel_bins=20", "audio_encoder.dropout=0.0"]


def untrained(recipe: str, overrides: list[str], demo_dir: Path):
    cfg = load_recipe(RECIPES / recipe, overrides)
    return TASKS.get(cfg.task.name).cls.from_data(cfg, read_cnerta(demo_dir / "train.jsonl", None))


@pytest.fixture(scope="module")
def asr(tmp_path_factory, demo_dir, demo_overrides):
    """A saved asr model (random weights) with its auxiliary pinyin CTC."""
    torch.manual_seed(5)
    task = untrained("asr_pretrain.yaml", [*PRETRAINED, *demo_overrides, "ctc_head.aux={block: 1}"], demo_dir)
    out = tmp_path_factory.mktemp("asr") / "run"
    task.save(out / "best")
    return out


def test_the_recipe_takes_the_pretrained_encoder_and_keeps_its_regularisation(asr, demo_overrides, snlu_log):
    cfg = load_recipe(RECIPES / "fusion_raw_all.yaml", [*demo_overrides, f"audio_encoder.init_from={asr}",
                                                        "audio_encoder.dropout=0.2", "frontend.specaug.time_masks=3"])
    enc, fe = cfg.audio_encoder, cfg.frontend
    assert (enc.n_blocks, enc.d_model, enc.ffn_dim, enc.norm_first, fe.num_mel_bins) == (2, 32, 64, True, 20)
    assert enc.dropout == 0.2 and fe.specaug.time_masks == 3 and enc.init_from == str(asr)  # the recipe's own
    where = f"from {asr}/best/config.yaml"
    for line in ("audio_encoder.n_blocks = 2", "audio_encoder.d_model = 32", "audio_encoder.ffn_dim = 64",
                 "audio_encoder.norm_first = True", "frontend.num_mel_bins = 20"):
        assert f"audio_encoder.init_from: {line} {where} (the recipe had " in snlu_log.text, line
    assert "dropout =" not in snlu_log.text and "specaug" not in snlu_log.text


def test_print_config_shows_the_encoder_built(asr, demo_overrides, capsys):
    assert main([str(RECIPES / "fusion_raw_all.yaml"), *demo_overrides, f"audio_encoder.init_from={asr}",
                 "--print-config"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.audio_encoder.n_blocks == 2 and printed.audio_encoder.norm_first is True


def test_every_encoder_tensor_is_loaded_and_aux_rows_copied(asr, demo_overrides, demo_dir, snlu_log):
    torch.manual_seed(9)
    task = untrained("e2e_ner.yaml", [*demo_overrides, f"audio_encoder.init_from={asr}", "ctc_head.aux={block: 2}"],
                     demo_dir)
    source = load_file(str(asr / "best" / "model.safetensors"))
    own = task.state_dict()
    speech = [k for k in own if k.startswith(("audio_encoder.", "frontend."))]
    assert sorted(speech) == sorted(k for k in source if k.startswith(("audio_encoder.", "frontend.")))
    assert len(speech) > 20 and all(torch.equal(own[k], source[k]) for k in speech)
    assert f"audio_encoder.init_from: copied all {len(speech)} frontend and audio_encoder tensors" in snlu_log.text
    saved = io.load(asr)  # its auxiliary pinyin units: the rows of the syllables both have are the pretrained ones
    shared = [s for s in task.aux_units.stoi if s in saved.aux_units.stoi]
    assert len(shared) > 10
    for s in shared:
        assert torch.equal(task.ctc_head.aux.embedding[task.aux_units.stoi[s]],
                           saved.ctc_head.aux.embedding[saved.aux_units.stoi[s]])
    assert f"copied the auxiliary CTC rows of {len(shared)} shared syllables" in snlu_log.text


def test_weights_that_do_not_fit_are_one_line(asr, demo_overrides, demo_dir):
    other = untrained("asr_pretrain.yaml", [*demo_overrides, "audio_encoder.n_blocks=3", "audio_encoder.d_model=32",
                                            "audio_encoder.ffn_dim=64", "frontend.num_mel_bins=20",
                                            "audio_encoder.norm_first=false"], demo_dir)  # post-norm: no final norm
    with pytest.raises(ConfigError) as e:
        io.init_audio_from(other, asr)
    message = str(e.value)
    assert "\n" not in message and message.startswith(
        f"audio_encoder.init_from: {asr}/best/model.safetensors does not fit this model's frontend and audio encoder: "
        "missing ['audio_encoder.blocks.layers.2.")
    assert "unexpected ['audio_encoder.blocks.norm.bias', 'audio_encoder.blocks.norm.weight'] (2)" in message


def test_a_run_whose_recipe_lies_fails_before_training(asr, demo_overrides, tmp_path):
    liar = tmp_path / "liar"
    (liar / "best").mkdir(parents=True)
    (liar / "best" / "model.safetensors").write_bytes((asr / "best" / "model.safetensors").read_bytes())
    cfg = OmegaConf.load(asr / "best" / "config.yaml")
    cfg.audio_encoder.n_blocks = 4  # the weights hold 2 blocks
    OmegaConf.save(cfg, liar / "best" / "config.yaml")
    code = "import sys; from snlu.cli.train import entry; sys.argv[0] = 'snlu-train'; entry()"
    r = processes.run([sys.executable, "-c", code, str(RECIPES / "e2e_ner.yaml"), *demo_overrides,
                       "train.num_workers=0", f"audio_encoder.init_from={liar}", "--output-dir", str(tmp_path / "run")],
                      timeout=280)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: audio_encoder.init_from: {liar}/best/model.safetensors does not fit") and \
        "missing ['audio_encoder.blocks.layers.2." in last


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "audio_encoder.init_from: no model.safetensors in {d} or {d}/best"),
    (lambda d: (d / "model.safetensors").write_bytes(b""), "audio_encoder.init_from: {d}/config.yaml not found"),
    (lambda d: ((d / "model.safetensors").write_bytes(b""), (d / "config.yaml").write_text("task: {name: text_ner}")),
     "audio_encoder.init_from: {d}/config.yaml has no frontend section (not a speech model)"),
])
def test_unusable_runs_are_named_at_recipe_load(make, message, tmp_path, demo_overrides):
    d = tmp_path / "run"
    d.mkdir()
    make(d)
    with pytest.raises(ConfigError, match=message.format(d=d).replace("(", r"\(").replace(")", r"\)")):
        load_recipe(RECIPES / "fusion_raw_all.yaml", [*demo_overrides, f"audio_encoder.init_from={d}"])
