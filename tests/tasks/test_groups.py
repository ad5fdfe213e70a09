"""Optimiser groups: a section's parameters go to the group of its name, or to the one ``optim.groups`` maps it to;
the recipes map the reference's five groups exactly as the hand-written task tables did; the groups a recipe
will have are known (and their learning rates checked) before any data is read, and they match the built model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.data.cnerta import read_cnerta
from snlu.registry import TASKS

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["audio_encoder.n_blocks=1", "audio_encoder.ffn_dim=128", "audio_encoder.d_model=64"]
# The reference's groups, as spoken_ner's hand-written table had them: section -> group.
REFERENCE = {"text_encoder": "textual_encoder", "text_head": "textual_crf", "frontend": "audio_encoder",
             "audio_encoder": "audio_encoder", "ctc_head": "audio_encoder", "audio_head": "audio_crf",
             "audio_tokenizer": "fusion_layer", "fusion": "fusion_layer"}


def build(cfg, demo_dir):
    return TASKS.get(cfg.task.name).cls.from_data(cfg, read_cnerta(demo_dir / "train.jsonl", None))


def names(task, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in task.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("recipe", ["fusion_raw_all.yaml", "fusion_concat_dpmask.yaml", "text_only.yaml",
                                    "asr_pretrain.yaml", "e2e_ner.yaml"])
def test_the_groups_known_from_the_recipe_are_the_models(recipe, demo_dir, demo_overrides):
    cfg = load_recipe(RECIPES / recipe, [*(SMALL if "text" not in recipe else []), *demo_overrides])
    task = build(cfg, demo_dir)
    groups = task.param_groups(cfg.optim.groups)
    assert set(groups) == set(type(task).expected_groups(cfg)) <= set(cfg.optim.lrs)


def test_the_reference_mapping_keeps_the_five_groups(demo_dir, demo_overrides):
    """Every parameter is where the reference table put it; the text classifier (``classifier_group``) joins
    BERT's group and the CRF transitions stay in textual_crf; the frozen CTC embedding is in no group."""
    cfg = load_recipe(RECIPES / "fusion_raw_all.yaml", [*SMALL, *demo_overrides])
    assert dict(cfg.optim.groups) == REFERENCE
    task = build(cfg, demo_dir)
    groups = {g: names(task, ps) for g, ps in task.param_groups(cfg.optim.groups).items()}
    assert list(groups) == ["textual_encoder", "textual_crf", "audio_encoder", "audio_crf", "fusion_layer"]
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert set().union(*groups.values()) == trainable and sum(map(len, groups.values())) == len(trainable)
    expected = {
        "textual_encoder": {n for n in trainable if n.startswith(("text_encoder.", "text_head.linear."))},
        "textual_crf": {n for n in trainable if n.startswith("text_head.crf.")},
        "audio_encoder": {n for n in trainable if n.startswith(("audio_encoder.", "frontend.", "ctc_head."))},
        "audio_crf": {n for n in trainable if n.startswith("audio_head.")},
        "fusion_layer": {n for n in trainable if n.startswith(("fusion.", "audio_tokenizer."))},
    }
    assert groups == expected
    assert "ctc_head.embedding" not in trainable
    assert type(task).expected_groups(cfg)["textual_encoder"] == ["text_encoder", "text_head"]
    own = load_recipe(RECIPES / "fusion_raw_all.yaml", [*SMALL, *demo_overrides, "text_head.classifier_group=null"])
    assert type(task).expected_groups(own)["textual_encoder"] == ["text_encoder"]
    task.text_head.classifier_group = None  # as built from that recipe: the classifier stays with its head
    groups = {g: names(task, ps) for g, ps in task.param_groups(own.optim.groups).items()}
    assert groups["textual_crf"] == expected["textual_crf"] | {"text_head.linear.weight", "text_head.linear.bias"}


def test_sections_are_their_own_groups_by_default(tmp_path, demo_dir, demo_overrides):
    recipe = tmp_path / "text.yaml"
    recipe.write_text("task: {name: text_ner}\ndata: {name: cnerta}\ntext_encoder: {name: bert}\n"
                      "text_head: {name: crf}\noptim: {lrs: {text_encoder: 1.0e-5, text_head: 1.0e-3}}\n")
    cfg = load_recipe(recipe, demo_overrides)
    task = build(cfg, demo_dir)
    groups = task.param_groups(cfg.optim.groups)
    assert list(groups) == ["text_encoder", "text_head"]
    assert names(task, groups["text_head"]) == {n for n, _ in task.named_parameters() if n.startswith("text_head.")}


@pytest.mark.parametrize("overrides, message", [
    (["optim.groups.audio_head=audio_head"],
     r"^optim.lrs.audio_head: missing learning rate for parameter group 'audio_head' \(of audio_head; "),
    (["text_head.classifier_group=classifier"], r"^optim.lrs.classifier: missing learning rate"),
    (["ctc_head.train_embedding=true", "optim.groups.ctc_head=ctc"], r"^optim.lrs.ctc: missing learning rate"),
    (["optim.groups.fusin=fusion_layer"], r"^optim.groups.fusin: not a section of task 'spoken_ner'; did you mean "
                                          r"fusion\?"),
])
def test_a_missing_learning_rate_fails_validation_before_any_data(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(RECIPES / "fusion_raw_all.yaml", overrides)


def test_a_frozen_or_weightless_section_needs_no_learning_rate():
    """The frontend and the audio tokenizer have no weights, the CTC embedding is frozen: unmapped, they need no
    learning rate of their own."""
    cfg = load_recipe(RECIPES / "fusion_raw_all.yaml", ["optim.groups.frontend=fe", "optim.groups.ctc_head=ctc",
                                                        "optim.groups.audio_tokenizer=tok"])
    assert not {"fe", "ctc", "tok"} & set(TASKS.get("spoken_ner").cls.expected_groups(cfg))
