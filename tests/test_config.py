"""Recipe loading and validation: every shipped recipe, inheritance, overrides, errors with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from snlu.config import load_raw, load_recipe
from snlu.core.errors import ConfigError
from snlu.testing import random_speech_model

RECIPES = sorted(p for p in (Path(__file__).parents[1] / "recipes").rglob("*.yaml")
                 if "sweeps" not in p.parts)  # sweep files are not recipes: tests/experiments/test_sweep.py
RAW = Path(__file__).parents[1] / "recipes" / "fusion_raw_all.yaml"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(recipe, tmp_path):
    raw = load_raw(recipe)
    named = raw.get("data") or {}
    absent = [named[s] for s in ("train", "dev", "test") if named.get(s) and not Path(named[s]).exists()]
    init = (raw.get("audio_encoder") or {}).get("init_from")
    without = []
    if absent:  # a recipe for a corpus that snlu-prepare builds (e.g. demo-asr): validated without its files
        with pytest.raises(ConfigError, match="file not found"):
            load_recipe(recipe)
        without += ["data.train=null", "data.dev=null", "data.test=null"]
    if init and not Path(init).exists():  # fine-tuned from a run trained first (runs/asr_demo): validated without
        with pytest.raises(ConfigError, match=f"audio_encoder.init_from: no model.safetensors in {init} or "):
            load_recipe(recipe, without)
        without.append("audio_encoder.init_from=null")
    if OmegaConf.is_missing(raw.get("audio_encoder") or OmegaConf.create({}), "path"):  # a pretrained model folder
        with pytest.raises(ConfigError, match="audio_encoder.path: missing required value"):
            load_recipe(recipe, without)
        family = "whisper" if raw.audio_encoder.name == "whisper_encoder" else "hubert"
        without.append(f"audio_encoder.path={random_speech_model(tmp_path / family, family)}")
    cfg = load_recipe(recipe, without)
    assert cfg.task.name in ("spoken_ner", "text_ner", "asr", "e2e_ner")
    assert cfg.train.batch_size == 16 or recipe.stem == "asr_ssl"  # reference settings (SSL fine-tuning: 8)
    if cfg.task.name in ("spoken_ner", "text_ner"):
        assert cfg.train.epochs == 20 and cfg.scheduler.name == "epoch_decay" and cfg.optim.eps == 1e-6
    else:  # speech pretraining from scratch: a warm-up schedule (or the reference's Adam 1e-4 with 1 % decay)
        assert cfg.ctc_head.train_embedding and cfg.scheduler.name in ("noam", "warmup_linear", "epoch_decay")


def test_variants_differ_only_where_they_say():
    a = OmegaConf.to_container(load_recipe(RAW))
    b = OmegaConf.to_container(load_recipe(RAW.with_name("fusion_concat_dpmask.yaml")))
    assert {k for k in a if a[k] != b[k]} == {"fusion", "audio_tokenizer"}
    assert b["fusion"] == {"name": "concat", "dropout": 0.1}  # raw's options are not inherited


def test_reference_settings():
    cfg = load_recipe(RAW)
    assert dict(cfg.optim.lrs) == {"textual_encoder": 1e-5, "textual_crf": 1e-3, "audio_encoder": 2e-5,
                                   "audio_crf": 1e-4, "fusion_layer": 1e-5}
    assert (cfg.loss.ctc_coef, cfg.loss.audio_crf_coef, cfg.scheduler.decay) == (0.05, 0.1, 0.05)
    assert cfg.scheduler.name == "epoch_decay" and cfg.optim.name == "adamw" and cfg.optim.eps == 1e-6
    assert (cfg.audio_encoder.n_blocks, cfg.audio_encoder.d_model, cfg.audio_encoder.num_heads) == (9, 256, 4)
    assert cfg.frontend.num_mel_bins == 40 and cfg.optim.max_grad_norm == 5.0


def test_override_swaps_component_and_types_values():
    cfg = load_recipe(RAW, ["fusion.name=concat", "train.epochs=3", "audio_encoder.name=conformer"])
    assert cfg.fusion.name == "concat" and "num_heads" not in cfg.fusion
    assert cfg.train.epochs == 3 and cfg.audio_encoder.kernel_size == 15


@pytest.mark.parametrize(
    "override, message",
    [
        ("fusion.num_head=3", "fusion.num_head: unknown key; did you mean num_heads?"),
        ("fusion.num_heads=abc", "fusion.num_heads: wrong type"),
        ("fusion.name=rwa", "fusion.name: unknown fusion 'rwa'; did you mean 'raw'?"),
        ("optim.lrs.fusion_layer=5", "optim.lrs.fusion_layer: learning rate must be in (0, 1]"),
        ("loss.audio_crf_coef=-1", "loss.audio_crf_coef: must be in"),
        ("train.batch_size=0", "train.batch_size: must be > 0"),
        ("data.train=/no/such.jsonl", "data.dev: missing"),
        ("frontend.specaug.freq_widht=0.2", "frontend.specaug.freq_widht: unknown key; did you mean freq_width?"),
        ("fusoin.name=raw", "fusoin: unknown section for task 'spoken_ner'; did you mean fusion?"),
        ("audio_encoder.num_heads=3", "audio_encoder.num_heads: must divide d_model=256"),
        ("task.name=ner", "task.name: unknown task 'ner'"),
        ("text_encoder.pretrained=/nowhere", "text_encoder.pretrained: no config.json"),
        ("seed=-1", "seed: expected a non-negative integer"),
    ],
)
def test_errors_name_the_key_path(override, message):
    with pytest.raises(ConfigError) as e:
        load_recipe(RAW, [override])
    assert str(e.value).startswith(message.split(":")[0]), str(e.value)
    assert message in str(e.value)


def test_missing_data_file_is_named(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text("{}")
    with pytest.raises(ConfigError, match=r"data.test: file not found: /no/test.jsonl"):
        load_recipe(RAW, [f"data.train={t}", f"data.dev={t}", "data.test=/no/test.jsonl"])


def test_recipe_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: {name: spoken_ner\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "none.yaml")
    loop = tmp_path / "loop.yaml"
    loop.write_text("defaults: [loop.yaml]\n")
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_recipe(loop)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_recipe(lst)


def test_inheritance_and_missing_section(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"defaults: [{RAW.parent / 'base' / 'm3t.yaml'}]\nloss: {{name: multitask, ctc_coef: 0.5}}\n")
    cfg = load_recipe(child)
    assert cfg.loss.ctc_coef == 0.5 and cfg.loss.audio_crf_coef == 0.1 and cfg.fusion.name == "raw"
    partial = tmp_path / "partial.yaml"
    partial.write_text("task: {name: text_ner}\ndata: {name: cnerta}\n")
    with pytest.raises(ConfigError, match="text_encoder: missing required section for task 'text_ner'"):
        load_recipe(partial)
    noname = tmp_path / "noname.yaml"
    noname.write_text("task: {name: text_ner}\ndata: {name: cnerta}\ntext_encoder: {}\ntext_head: {name: crf}\n")
    with pytest.raises(ConfigError, match="text_encoder.name: missing required value"):
        load_recipe(noname)


def test_amp_off_as_documented(tmp_path):
    """`off` is a YAML 1.1 boolean: `train.amp=off` and `amp: off` in a recipe both mean float32."""
    assert load_recipe(RAW, ["train.amp=off"]).train.amp == "off"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"defaults: [{RAW}]\ntrain: {{amp: off}}\n")
    assert load_recipe(recipe).train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_recipe(RAW, ["train.amp=on"])


def test_packaged_recipes_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    """The recipes ship in the package: a bare name, and a user recipe's ``defaults: [fusion_raw_all.yaml]``
    in a folder of its own, find them; a file of that name beside the recipe wins."""
    from snlu.config import PACKAGED, find_recipe, packaged_recipe

    assert sorted(p.relative_to(PACKAGED) for p in PACKAGED.rglob("*.yaml")) == sorted(
        p.relative_to(RAW.parent) for p in RAW.parent.rglob("*.yaml"))  # every recipe of recipes/
    monkeypatch.chdir(tmp_path)
    assert packaged_recipe("fusion_raw_all") == packaged_recipe("fusion_raw_all.yaml") == PACKAGED / RAW.name
    assert packaged_recipe("no_such_recipe") is None and packaged_recipe("../setup.cfg") is None
    assert load_recipe("fusion_raw_all") == load_recipe(RAW)
    mine = tmp_path / "mine.yaml"
    mine.write_text("defaults: [fusion_raw_all.yaml]\ntrain: {epochs: 3}\n")
    assert load_recipe(mine).train.epochs == 3 and load_recipe(mine).fusion.name == "raw"
    (tmp_path / "fusion_raw_all.yaml").write_text("defaults: [base/m3t.yaml]\nfusion: {name: concat}\n")
    assert find_recipe("fusion_raw_all.yaml", tmp_path) == tmp_path / "fusion_raw_all.yaml"  # the local one wins
    assert load_recipe(mine).fusion.name == "concat"  # (and its own defaults: the packaged base)


def test_a_byte_order_mark_in_a_recipe_is_read_past(tmp_path):
    recipe = tmp_path / "bom.yaml"
    recipe.write_bytes(b"\xef\xbb\xbf" + f"defaults: [{RAW}]\ntrain: {{epochs: 4}}\n".encode())
    assert load_recipe(recipe).train.epochs == 4


def test_train_takes_a_packaged_recipe_by_name(tmp_path, monkeypatch, capsys):
    from snlu.cli.train import main

    monkeypatch.chdir(tmp_path)
    assert main(["fusion_raw_all", "train.epochs=2", "--print-config"]) == 0
    assert "epochs: 2" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'fusion_raw_al': neither a recipe file nor a key=value override"):
        main(["fusion_raw_al", "--print-config"])
