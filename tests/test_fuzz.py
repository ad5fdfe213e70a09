"""Hostile input: random bytes, JSON and YAML at the readers raise only snlu's own errors; nothing a file
says is executed (no python YAML tags, no custom OmegaConf resolvers, no ``_target_``, no pickle)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snlu.config import load_recipe
from snlu.core.errors import ConfigError, DataError, SnluError
from snlu.data.audio import read_wav
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.inputs import make_utterance

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PACKAGE = Path(__file__).parents[1] / "snlu"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
# Lines that look like CNERTA lines, with every field drawn from a plausible or wrong value.
cnerta_lines = st.fixed_dictionaries(
    {},
    optional={
        "sentence": st.text(max_size=30) | json_values,
        "audio": st.lists(st.text(max_size=12), max_size=2) | st.text(max_size=12) | json_values,
        "entity": st.lists(st.lists(st.integers(-3, 40) | st.text(max_size=6), max_size=5), max_size=4) | json_values,
    },
)


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "wav"
    d.mkdir()
    sf.write(d / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    return d


def expect_own_errors(call) -> None:
    """``call()`` either works or raises a SnluError; anything else escapes and fails the test."""
    try:
        call()
    except SnluError as e:
        assert "\n" not in str(e).strip(), f"multi-line message: {e}"


@FUZZ
@given(data=st.binary(max_size=300))
def test_jsonl_reader_random_bytes(tmp_path, audio_dir, data):
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    expect_own_errors(lambda: read_cnerta(path, AudioIndex(audio_dir)))
    expect_own_errors(lambda: read_cnerta(path, None))


@FUZZ
@given(lines=st.lists(json_values | cnerta_lines, min_size=0, max_size=4))
def test_jsonl_reader_random_json(tmp_path, audio_dir, lines):
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    expect_own_errors(lambda: read_cnerta(path, AudioIndex(audio_dir)))
    expect_own_errors(lambda: read_cnerta(path, None))


@FUZZ
@given(text=st.text(max_size=200) | st.builds(lambda v: json.dumps(v), json_values))
def test_recipe_loader_random_yaml(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    expect_own_errors(lambda: load_recipe(path))


# YAML snippets that reach the validator: known sections with random contents.
yaml_recipes = st.dictionaries(
    st.sampled_from(["task", "data", "train", "optim", "fusion", "seed", "plugins", "defaults", "text_encoder"]),
    st.sampled_from(["{name: spoken_ner}", "{name: asr}", "{epochs: -1}", "[1, 2]", "null", "7", "abc",
                     "{lrs: {x: 2}}", "{name: ${oc.env:HOME}}", "${nope}", "{a: {b: c}}", "2001-02-03",
                     "!!binary aGVsbG8=", "{name: raw, num_heads: 1e400}"]),
    max_size=5,
)


@FUZZ
@given(sections=yaml_recipes)
def test_recipe_loader_random_sections(tmp_path, sections):
    path = tmp_path / "r.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in sections.items()), encoding="utf-8")
    expect_own_errors(lambda: load_recipe(path))


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(800))).astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


WAV = _wav_bytes()


@FUZZ
@given(data=st.binary(max_size=300))
def test_wav_reader_random_bytes(tmp_path, data):
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    expect_own_errors(lambda: read_wav(path))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, len(WAV)))
def test_wav_reader_damaged_header_and_truncation(tmp_path, edits, cut):
    data = bytearray(WAV)
    for pos, value in edits:  # the RIFF/fmt/data header: sizes, format, channels, rate, bits
        data[pos] = value
    path = tmp_path / "x.wav"
    path.write_bytes(bytes(data[: max(cut, 12)]))
    expect_own_errors(lambda: read_wav(path))
    expect_own_errors(lambda: make_utterance("北京", path, "x", "item 0", True))  # the header's sizes checked too


# ----------------------------------------------------------------------------- nothing is executed


def test_python_yaml_tags_are_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "r.yaml"
    path.write_text(f'task: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(path)
    assert not marker.exists()


def test_target_and_import_paths_are_not_components(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("defaults: [" + str(PACKAGE.parent / "recipes" / "fusion_raw_all.yaml") + "]\n"
                    "fusion: {_target_: os.system, name: raw}\n")
    with pytest.raises(ConfigError, match=r"fusion._target_: unknown key"):
        load_recipe(path)
    with pytest.raises(ConfigError, match=r"fusion.name: unknown fusion 'os.system'"):
        load_recipe(PACKAGE.parent / "recipes" / "fusion_raw_all.yaml", ["fusion.name=os.system"])


def test_only_builtin_omegaconf_resolvers(tmp_path, monkeypatch):
    from omegaconf.basecontainer import BaseContainer

    import snlu.plugins

    snlu.plugins.load_builtins()
    # OmegaConf's own (oc.env, oc.select, oc.decode ...: they read values, never run code); nothing else.
    assert BaseContainer._resolvers and all(name.startswith("oc.") for name in BaseContainer._resolvers)
    # oc.env reads a variable (typed and validated like any value); an unknown resolver is a one-line error.
    monkeypatch.setenv("SNLU_FUZZ_EPOCHS", "3")
    recipe = PACKAGE.parent / "recipes" / "text_only.yaml"
    assert load_recipe(recipe, ["train.epochs=${oc.env:SNLU_FUZZ_EPOCHS}"]).train.epochs == 3
    with pytest.raises(ConfigError, match="Unsupported interpolation type python"):
        load_recipe(recipe, ["train.epochs=${python:os.getpid}"])


def test_no_pickle_loading_in_the_package():
    """torch.load only with weights_only=True, and no pickle/eval/exec anywhere in snlu/."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M), path
        assert not re.search(r"(?<![\w.])(eval|exec)\(", text), path


def test_audio_symlink_out_of_the_folder_is_refused(tmp_path, audio_dir):
    outside = tmp_path / "secret.wav"
    sf.write(outside, np.zeros(1600, dtype=np.float32), 16000)
    (audio_dir / "link.wav").symlink_to(outside)
    (audio_dir / "sub").mkdir()
    (audio_dir / "sub" / "deep.wav").symlink_to(outside)
    index = AudioIndex(audio_dir)
    assert index.resolve("a", (Path("x.jsonl"), 1)) == audio_dir.resolve() / "a.wav"
    for name in ("link", "deep"):
        with pytest.raises(DataError, match=rf"x.jsonl:1: field 'audio': audio '{name}.wav' resolves to .*secret.wav, "
                                            "outside the audio folder"):
            index.resolve(name, (Path("x.jsonl"), 1))
    for bad in ("../secret", "/etc/passwd", "a\\b", ""):
        with pytest.raises(DataError, match="must be a plain name"):
            index.resolve(bad, (Path("x.jsonl"), 1))


def test_odd_sample_rate_is_refused_not_resampled(tmp_path):
    """A header with a rate like 16001 Hz would need a resampling kernel of gigabytes."""
    path = tmp_path / "odd.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16001)
    with pytest.raises(DataError, match="odd.wav: unsupported sample rate 16001 Hz"):
        read_wav(path)
