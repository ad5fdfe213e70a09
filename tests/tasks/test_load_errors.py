"""Task.load on a damaged model folder: each problem is one SnluError line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from snlu.config import load_recipe
from snlu.core.errors import SnluError
from snlu.data.cnerta import read_cnerta
from snlu.registry import TASKS
from snlu.tasks.base import Task

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["audio_encoder.n_blocks=1", "audio_encoder.ffn_dim=128", "audio_encoder.d_model=64"]


def saved(tmp_path_factory, demo_dir, recipe: str, overrides: list[str]) -> Path:
    """An untrained model of ``recipe`` saved as a run's best/ folder (training does not matter here)."""
    cfg = load_recipe(RECIPES / recipe, overrides)
    task = TASKS.get(cfg.task.name).cls.from_data(cfg, read_cnerta(demo_dir / "train.jsonl", None))
    out = tmp_path_factory.mktemp("model") / "best"
    task.save(out)
    return out


@pytest.fixture(scope="module")
def asr_model(tmp_path_factory, demo_dir, demo_overrides):
    return saved(tmp_path_factory, demo_dir, "asr_pretrain.yaml", [*SMALL, *demo_overrides])


@pytest.fixture
def model(asr_model, tmp_path):
    """A fresh copy to damage."""
    return Path(shutil.copytree(asr_model, tmp_path / "best"))


def load_error(folder: Path) -> str:
    with pytest.raises(SnluError) as e:
        Task.load(folder)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_intact_copy_loads(model):
    assert Task.load(model).cfg.task.name == "asr"


def test_missing_weight_file(model):
    (model / "model.safetensors").unlink()
    assert load_error(model) == (f"{model}/model.safetensors: not found ({model} is not a saved model: "
                                 f"a run's best/ folder)")


@pytest.mark.parametrize("damage", [b"", b"not a safetensors file at all", "truncate"])
def test_unreadable_weight_file(model, damage):
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300] if damage == "truncate" else damage)
    assert load_error(model).startswith(f"{weights}: unreadable weights file: ")


def test_weights_of_another_model(model, asr_model, tmp_path_factory, demo_dir, demo_overrides):
    other = saved(tmp_path_factory, demo_dir, "asr_pretrain.yaml", [*SMALL[:2], "audio_encoder.d_model=32",
                                                                     *demo_overrides])
    shutil.copy(other / "model.safetensors", model / "model.safetensors")
    message = load_error(model)
    assert message.startswith(f"{model}/model.safetensors: weights do not match the model of {model}/config.yaml (")
    assert "is [" in message and "there, [" in message


def test_vocabulary_that_does_not_match_the_weights(model):
    vocab = json.loads((model / "vocab.json").read_text(encoding="utf-8"))
    vocab.pop(max(vocab, key=vocab.get))
    (model / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    n = len(vocab)
    assert load_error(model).startswith(f"{model}/vocab.json: {n} entries do not match the weights in "
                                        f"{model}/model.safetensors (ctc_head.embedding is [{n + 1}, 64] there, "
                                        f"[{n}, 64] with this file)")


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a vocabulary: JSONDecodeError"),
    ('{"a": 0}', "not a vocabulary: ValueError: vocabulary must map"),
    ("[1, 2]", "not a vocabulary: AttributeError"),
])
def test_broken_vocabulary(model, text, message):
    (model / "vocab.json").write_text(text)
    assert load_error(model).startswith(f"{model}/vocab.json: {message}")


def test_config_naming_unknown_components_or_code(model, tmp_path):
    config = model / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace("name: asr", "name: asx"))
    assert load_error(model).startswith(f"{config}: task.name: unknown task 'asx'; did you mean 'asr'? (valid: ")
    marker = tmp_path / "executed"
    config.write_text(f'task: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert load_error(model).startswith(f"{config}: not a valid model config: ConstructorError")
    assert not marker.exists()
    config.write_text("task: [unclosed\n")
    assert load_error(model).startswith(f"{config}: not a valid model config: ")


def test_label_set_that_does_not_match_the_weights(tmp_path_factory, demo_dir, demo_overrides):
    model = saved(tmp_path_factory, demo_dir, "text_only.yaml", demo_overrides)
    labels = json.loads((model / "labels.json").read_text())
    labels = {"types": [*labels["types"], "EXTRA"]}
    (model / "labels.json").write_text(json.dumps(labels))
    n = 1 + 2 * len(labels["types"])
    assert load_error(model).startswith(f"{model}/labels.json: {n} entries do not match the weights in "
                                        f"{model}/model.safetensors (")
    (model / "labels.json").unlink()
    assert load_error(model).startswith(f"{model}: cannot rebuild the model: FileNotFoundError")
