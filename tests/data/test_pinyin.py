"""Pinyin units: syllables of whole sentences (phrase-resolved polyphones, neutral tone 5, toneless on request),
other characters one unit each, blank/pad/unk first, round trips through ids, save/load, the UNITS registry."""

from __future__ import annotations

import pickle

import pytest
from omegaconf import OmegaConf

from snlu.data.pinyin import PinyinUnits, syllables
from snlu.data.units import build_units, load_units, units_file
from snlu.registry import UNITS

# Written by hand from a dictionary, not by pypinyin: 行 reads hang2 in 银行 and in 行长 (xing2 alone).
SENTENCE = "银行行长易纲在北京表示"
TONAL = ["yin2", "hang2", "hang2", "zhang3", "yi4", "gang1", "zai4", "bei3", "jing1", "biao3", "shi4"]


def test_syllables_of_a_sentence_resolve_polyphones_from_context():
    assert syllables(SENTENCE) == TONAL
    assert syllables(SENTENCE, tones=False) == [s.rstrip("12345") for s in TONAL]
    assert syllables("他行不行") == ["ta1", "xing2", "bu4", "xing2"]  # the same character, read xing2 here
    assert syllables("好吗") == ["hao3", "ma5"]  # the neutral tone as 5
    assert syllables("绿色", tones=False) == ["lv", "se"]  # ü written v


def test_other_characters_are_units_of_their_own_and_whitespace_goes():
    assert syllables("见Obama 3次，好") == ["jian4", "O", "b", "a", "m", "a", "3", "ci4", "，", "hao3"]
    assert syllables("\ue000北京\ue001") == ["\ue000", "bei3", "jing1", "\ue001"]
    assert syllables("  ") == []


def test_units_encode_decode_and_order():
    units = PinyinUnits.build([SENTENCE, "北京大学", "他行不行"])
    assert [units.stoi[s] for s in ("<blank>", "<pad>", "<unk>")] == [0, 1, 2]
    assert [units.itos[i] for i in range(3, 7)] == ["bei3", "hang2", "jing1", "xing2"]  # twice each: first
    ids = units.encode("北京银行")
    assert 0 not in ids and units.decode(ids) == "bei3 jing1 yin2 hang2"
    assert units.split(units.decode(ids)) == units.spell("北京银行") == ["bei3", "jing1", "yin2", "hang2"]
    assert units.encode("猫") == [2] and units.decode([2, 0, 1]) == ""  # unknown, blank, padding decode to nothing
    assert len(units) == 3 + len({*TONAL, "da4", "xue2", "ta1", "xing2", "bu4"})
    assert units.single("\ue000") is False and PinyinUnits.build(["北京"], symbols=["\ue000"]).single("\ue000")


def test_saved_beside_the_weights_and_registered(tmp_path):
    units = build_units(OmegaConf.create({"units": "pinyin", "pinyin_tones": False}), [SENTENCE])
    assert isinstance(units, PinyinUnits) and not units.tones and "hang" in units.stoi
    path = tmp_path / units_file("pinyin")
    units.save(path)
    again = load_units(path, "pinyin")
    assert path.name == "pinyin.json" and again.stoi == units.stoi and again.tones is False
    assert pickle.loads(pickle.dumps(units)).stoi == units.stoi  # (data-loader workers get a copy)
    assert {"char", "sentencepiece", "pinyin"} <= set(UNITS.names())
    assert UNITS.get("pinyin").cls.spells_text is False and UNITS.get("char").cls.spells_text is True
    (tmp_path / "bad.json").write_text('{"stoi": {}}')
    with pytest.raises(ValueError, match="expected"):
        load_units(tmp_path / "bad.json", "pinyin")
