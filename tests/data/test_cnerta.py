"""CNERTA reader: the CNERTA format, flat and nested audio folders, one-line errors naming file/line/field."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from snlu.core.errors import DataError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.vocab import CharVocab

GOOD = {"sentence": "中国人民银行行长易纲在北京表示", "audio": ["BAC009S0706W0384"],
        "entity": [[0, 6, "中国人民银行", "ORG"], [8, 10, "易纲", "PER"], [11, 13, "北京", "LOC"],
                   [0, 2, "中国", "LOC"]],
        "speaker_info": [["S0706", "F"]]}


@pytest.fixture()
def audio_dir(tmp_path):
    d = tmp_path / "wav"
    d.mkdir()
    sf.write(d / "BAC009S0706W0384.wav", np.zeros(16000, dtype=np.float32), 16000)
    return d


def write(tmp_path, *rows, raw: str | None = None):
    path = tmp_path / "x.jsonl"
    path.write_text(raw if raw is not None else "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


def test_reads_design_example_and_flattens_nested(tmp_path, audio_dir):
    utts = read_cnerta(write(tmp_path, GOOD, {**GOOD, "audio": "BAC009S0706W0384"}), AudioIndex(audio_dir))
    assert len(utts) == 2
    u = utts[0]
    assert u.entities == [(0, 6, "ORG"), (8, 10, "PER"), (11, 13, "LOC")]  # (0, 2, LOC) is inside the ORG
    assert len(u.nested) == 4 and u.duration == pytest.approx(1.0)
    assert u.record["speaker_info"] == [["S0706", "F"]] and u.where.endswith("x.jsonl:1")


def test_nested_audio_folder(tmp_path, audio_dir):
    nested = tmp_path / "aishell" / "wav" / "train" / "S0706"
    nested.mkdir(parents=True)
    shutil.move(audio_dir / "BAC009S0706W0384.wav", nested)
    utts = read_cnerta(write(tmp_path, GOOD), AudioIndex(tmp_path / "aishell"))
    assert utts[0].audio.endswith("wav/train/S0706/BAC009S0706W0384.wav")


@pytest.mark.parametrize(
    "row, raw, message",
    [
        (None, '{"sentence": "x",\n', "x.jsonl:1: malformed JSON"),
        (None, "[1, 2]\n", "x.jsonl:1: expected a JSON object"),
        ({**GOOD, "entity": [[0, 20, "中国", "LOC"]]}, None, "x.jsonl:1: field 'entity[0]': span [0, 20) out of range"),
        ({**GOOD, "entity": [[0, 2, "美国", "LOC"]]}, None, "field 'entity[0]': text '美国' != sentence[0:2] '中国'"),
        ({**GOOD, "entity": [[0, 2, "中国"]]}, None, "field 'entity[0]': expected [start, end, text, TYPE]"),
        ({k: v for k, v in GOOD.items() if k != "sentence"}, None, "x.jsonl:1: field 'sentence': missing"),
        ({**GOOD, "sentence": 5}, None, "field 'sentence': expected str, got int"),
        ({**GOOD, "audio": ["a", "b"]}, None, "field 'audio': expected an id string or a list holding one"),
        ({**GOOD, "audio": ["MISSING"]}, None, "field 'audio': audio 'MISSING.wav' not found"),
        ({**GOOD, "audio": ["../../etc/passwd"]}, None, "field 'audio': audio id '../../etc/passwd' must be a plain"),
        ({**GOOD, "audio": ["/abs/x"]}, None, "must be a plain name"),
        (None, "", "x.jsonl: no utterances (empty file)"),
        (None, "\n\n", "x.jsonl: no utterances (empty file)"),
    ],
)
def test_bad_lines_name_file_line_field(tmp_path, audio_dir, row, raw, message):
    path = write(tmp_path, *([row] if row else []), raw=raw)
    with pytest.raises(DataError) as e:
        read_cnerta(path, AudioIndex(audio_dir))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_second_line_is_named(tmp_path, audio_dir):
    path = write(tmp_path, GOOD, {**GOOD, "entity": [[1, 0, "", "LOC"]]})
    with pytest.raises(DataError, match=r"x.jsonl:2: field 'entity\[0\]'"):
        read_cnerta(path, AudioIndex(audio_dir))


def test_binary_file_and_unreadable_or_empty_audio(tmp_path, audio_dir):
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="b.jsonl: not UTF-8 text"):
        read_cnerta(binary, AudioIndex(audio_dir))
    (audio_dir / "BAC009S0706W0384.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(DataError, match=r"x.jsonl:1: field 'audio': unreadable audio"):
        read_cnerta(write(tmp_path, GOOD), AudioIndex(audio_dir))
    sf.write(audio_dir / "BAC009S0706W0384.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match=r"field 'audio': empty audio"):
        read_cnerta(write(tmp_path, GOOD), AudioIndex(audio_dir))


def test_text_only_reading_needs_no_audio(tmp_path):
    utts = read_cnerta(write(tmp_path, {**GOOD, "audio": ["nowhere"]}), None)
    assert utts[0].audio is None


def test_char_vocab_round_trip(tmp_path):
    vocab = CharVocab.build(["北京北", "上海"])
    assert [vocab.stoi[s] for s in ("<blank>", "<pad>", "<unk>")] == [0, 1, 2]
    assert vocab.stoi["北"] == 3  # most frequent first
    assert vocab.decode(vocab.encode("北京")) == "北京" and vocab.encode("火")[0] == 2
    vocab.save(tmp_path / "v.json")
    assert CharVocab.load(tmp_path / "v.json").stoi == vocab.stoi


def test_crossing_spans_are_logged_as_crossing_with_the_rule(tmp_path, audio_dir, snlu_log):
    from snlu.data.cnerta import flattening_report

    crossing = {**GOOD, "entity": [[0, 3, "中国人", "LOC"], [2, 5, "人民银", "ORG"]]}
    utts = read_cnerta(write(tmp_path, GOOD, crossing), AudioIndex(audio_dir))
    assert flattening_report("train", utts) == "1 nested span flattened away"  # GOOD's (0, 2) LOC only
    assert (f"train: 1 crossing entity span dropped (first: {tmp_path / 'x.jsonl'}:2: [2, 5) ORG crosses [0, 3) LOC, "
            "kept); data.flatten=outermost keeps the longer span, then the earlier one") in snlu_log.text


def test_entity_types_and_a_byte_order_mark(tmp_path, audio_dir):
    path = write(tmp_path, GOOD)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(read_cnerta(path, AudioIndex(audio_dir), types=["PER", "LOC", "ORG"])) == 1
    with pytest.raises(DataError) as e:
        read_cnerta(path, AudioIndex(audio_dir), types=["PER", "LOC"])
    assert str(e.value) == (f"{path}:1: field 'entity[0]': type 'ORG' is not one of PER, LOC (data.entity_types adds "
                            "types)")


def test_bad_lines_can_be_collected_and_skipped(tmp_path, audio_dir):
    path = write(tmp_path, raw="\n".join([json.dumps(GOOD, ensure_ascii=False), "{bad", json.dumps(
        {**GOOD, "audio": "nope"}, ensure_ascii=False), json.dumps(GOOD, ensure_ascii=False)]) + "\n")
    errors: list = []
    utts = read_cnerta(path, AudioIndex(audio_dir), errors=errors)
    assert [u.where for u in utts] == [f"{path}:1", f"{path}:4"]
    assert [(e.line, e.field) for e in errors] == [(2, None), (3, "audio")]
