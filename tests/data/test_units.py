"""CTC output units: characters and SentencePiece pieces share one interface, blank = 0, exact round trips,
entity markers kept whole, deterministic training, save/load, and one-line errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.data.markers import insert_markers, make_markers, strip_markers
from snlu.data.units import SentencePieceUnits, build_units, load_units, units_file
from snlu.data.vocab import CharVocab
from snlu.tasks.e2e_ner import E2ENERTask

RECIPES = Path(__file__).parents[2] / "recipes"
M = make_markers(["LOC", "ORG", "PER"])
SYMBOLS = [m for pair in M.values() for m in pair]
SPANS = [
    ("中国人民银行行长易纲在北京表示", [(6, 8, "PER"), (9, 11, "LOC")]),
    ("新华社记者从上海报道，Obama said hello to 北京。", [(0, 3, "ORG"), (6, 8, "LOC"), (11, 16, "PER")]),
    ("易纲说：SentencePiece 把 Chinese text 切成 pieces！", [(0, 2, "PER")]),
    ("北京和上海的银行都在北京", [(0, 2, "LOC"), (3, 5, "LOC"), (10, 12, "LOC")]),
    ("联合国 2024 年的报告 mentions 北京 twice", [(0, 3, "ORG"), (22, 24, "LOC")]),
]
TEXTS = [insert_markers(s, spans, M) for s, spans in SPANS] * 4  # Chinese, Latin, digits, spaces and markers


def task_section(**options) -> OmegaConf:
    return OmegaConf.create({"name": "asr", "units": "sentencepiece", "sp_type": "unigram", "sp_vocab_size": 200,
                             "sp_model": None, **options})


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def sp(request) -> SentencePieceUnits:
    return SentencePieceUnits.train(TEXTS, request.param, 200, SYMBOLS)


def test_round_trip_gives_back_the_exact_text(sp):
    for text in TEXTS:
        ids = sp.encode(text)
        assert sp.decode(ids) == text
        assert all(2 <= i < len(sp) for i in ids)  # never blank (0) nor padding (1)
    vocab = CharVocab.build(TEXTS)  # the character vocabulary does the same (no spaces: it skips whitespace)
    for text in TEXTS:
        assert vocab.decode(vocab.encode(text.replace(" ", ""))) == text.replace(" ", "")


def test_blank_and_padding_are_reserved(sp):
    assert sp.stoi["<blank>"] == 0 and sp.stoi["<pad>"] == 1 and sp.pad_id == 1 and sp.stoi["<unk>"] == 2
    assert sorted(sp.stoi.values()) == list(range(len(sp)))  # one id per unit, no gaps
    assert 0 not in {i for t in TEXTS for i in sp.encode(t)}
    assert sp.decode([0, *sp.encode("北京"), 0, 1]) == "北京"  # blank and padding decode to nothing


def test_pieces_are_longer_than_characters(sp):
    n_ids = sum(len(sp.encode(t)) for t in TEXTS)
    assert n_ids < sum(len(t) for t in TEXTS)  # the model learnt some multi-character pieces


def test_markers_are_single_units_and_entities_come_back(sp):
    for m in SYMBOLS:
        assert sp.single(m)
    for (sentence, spans), text in zip(SPANS, TEXTS):
        pieces = [sp.pieces[i - sp.offset] for i in sp.encode(text)]
        assert [p for p in pieces if any(m in p for m in SYMBOLS)] == [c for c in text if c in SYMBOLS]
        assert strip_markers(sp.decode(sp.encode(text)), M) == (sentence, sorted(spans))


def test_without_user_symbols_bpe_merges_markers_into_pieces():
    """The control of the test above: markers that are not user-defined symbols end up inside other pieces."""
    plain = SentencePieceUnits.train(TEXTS, "bpe", 200)
    assert not all(plain.single(m) for m in SYMBOLS)
    cfg = load_recipe(RECIPES / "e2e_ner.yaml", ["audio_encoder.n_blocks=1", "audio_encoder.d_model=32"])
    with pytest.raises(ValueError, match="as units of their own"):
        E2ENERTask(cfg, plain, M)


def test_unknown_characters_decode_to_nothing_as_with_characters(sp):
    seen = set("".join(TEXTS))
    text = "易纲到了深圳和Oslo"  # 到, 了, 深, 圳 and O, l were never seen in training
    expected = "".join(c for c in text if c in seen)
    assert sp.decode(sp.encode(text)) == expected
    vocab = CharVocab.build(TEXTS)
    assert vocab.decode(vocab.encode(text)) == expected


@pytest.mark.parametrize("sp_type", ["unigram", "bpe"])
def test_training_is_deterministic(sp_type):
    first, second = (SentencePieceUnits.train(TEXTS, sp_type, 200, SYMBOLS) for _ in range(2))
    assert first.proto == second.proto


def test_save_load_and_pickle(sp, tmp_path):
    path = tmp_path / units_file("sentencepiece")
    sp.save(path)
    for other in (load_units(path, "sentencepiece"), pickle.loads(pickle.dumps(sp))):
        assert other.stoi == sp.stoi and [other.encode(t) for t in TEXTS] == [sp.encode(t) for t in TEXTS]
    assert units_file("char") == "vocab.json"


def test_build_units_reuses_an_sp_model(sp, tmp_path):
    path = tmp_path / "units.model"
    sp.save(path)
    reused = build_units(task_section(sp_model=str(path)), ["这些句子不会被用来训练"], SYMBOLS)
    assert reused.proto == sp.proto
    assert isinstance(build_units(OmegaConf.create({"name": "asr"}), TEXTS), CharVocab)  # char by default


def test_sp_model_without_the_markers_is_a_config_error(tmp_path):
    path = tmp_path / "plain.model"
    SentencePieceUnits.train([s for s, _ in SPANS], "unigram", 200).save(path)  # transcripts without markers
    with pytest.raises(ConfigError, match=r"^task\.sp_model: .*plain\.model does not keep .* as single pieces"):
        build_units(task_section(sp_model=str(path)), TEXTS, SYMBOLS)
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"^task\.sp_model: .*junk\.model: not a usable SentencePiece model"):
        build_units(task_section(sp_model=str(tmp_path / "junk.model")), TEXTS)


def test_too_small_a_vocabulary_names_the_key():
    with pytest.raises(ConfigError) as e:
        build_units(task_section(sp_vocab_size=10), TEXTS, SYMBOLS)
    assert str(e.value).startswith("task.sp_vocab_size: 10 is below the ")
    assert "\n" not in str(e.value)


def test_no_transcripts_is_a_config_error():
    with pytest.raises(ConfigError, match="^task.units: no training transcripts"):
        build_units(task_section(), ["", "  "])


@pytest.mark.parametrize("override, message", [
    ("task.units=words", "task.units: expected one of char, pinyin, sentencepiece, got 'words'"),
    ("task.sp_type=wordpiece", "task.sp_type: expected one of unigram, bpe, got 'wordpiece'"),
    ("task.sp_vocab_size=0", "task.sp_vocab_size: must be > 0, got 0"),
    ("task.sp_model=x.model", "task.sp_model: set only with units: sentencepiece (units is 'char')"),
])
def test_recipe_options_are_checked(override, message):
    for recipe in ("asr_pretrain.yaml", "e2e_ner.yaml"):
        with pytest.raises(ConfigError) as e:
            load_recipe(RECIPES / recipe, [override])
        assert str(e.value) == message


def test_spoken_ner_keeps_characters():
    """Its CTC embedding is tied to the text's characters: the option does not exist there."""
    with pytest.raises(ConfigError) as e:
        load_recipe(RECIPES / "fusion_raw_all.yaml", ["task.units=sentencepiece"])
    assert str(e.value).startswith("task.units: unknown key")
