"""``snlu-score`` on files: against seqeval (flat BIO), a brute-force set count (nested), edge cases, errors."""

from __future__ import annotations

import json
import random
import sys

import processes
import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from snlu.cli.score import main
from snlu.core.errors import DataError
from snlu.data.labels import bio_to_spans, flatten_outermost

TYPES = ["PER", "LOC", "ORG"]
CHARS = "北京上海中国人民银行易纲表示在的了"


def write(path, sentences, spans):
    with open(path, "w", encoding="utf-8") as f:
        for sent, ss in zip(sentences, spans):
            obj = {"sentence": sent, "audio": [f"u{len(sent)}"], "entity": [[s, e, sent[s:e], t] for s, e, t in ss]}
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return path


def score(capsys, gold, pred, *flags):
    assert main(["--gold", str(gold), "--pred", str(pred), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def random_tags(rng, n):
    return [rng.choice(["O", "O", "O", *(f"{p}-{t}" for p in "BI" for t in TYPES)]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_flat_bio_files_match_seqeval(tmp_path, capsys, seed):
    rng = random.Random(seed)
    gold_tags = [random_tags(rng, rng.randint(1, 20)) for _ in range(40)]
    pred_tags = [[t if rng.random() < 0.7 else random_tags(rng, 1)[0] for t in g] for g in gold_tags]
    sentences = ["".join(rng.choice(CHARS) for _ in g) for g in gold_tags]
    gold = write(tmp_path / "gold.jsonl", sentences, [bio_to_spans(t) for t in gold_tags])
    pred = write(tmp_path / "pred.jsonl", sentences, [bio_to_spans(t) for t in pred_tags])
    ours = score(capsys, gold, pred)
    report = classification_report(gold_tags, pred_tags, mode="strict", scheme=IOB2, output_dict=True,
                                   zero_division=0)
    for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
        assert ours[key] == pytest.approx(report["micro avg"][theirs], abs=1e-12)
        for typ, m in ours["per_type"].items():
            assert m[key] == pytest.approx(report[typ][theirs], abs=1e-12)
    assert ours["gold"] == report["micro avg"]["support"]
    assert {t: m["support"] for t, m in ours["per_type"].items()} == {
        t: r["support"] for t, r in report.items() if not t.endswith(" avg")}


def random_nested(rng, n):
    spans = []
    for _ in range(rng.randint(0, 5)):
        a = rng.randrange(n)
        spans.append((a, rng.randint(a + 1, n), rng.choice(TYPES)))
    return spans


def brute(gold, pred):
    """Exact-match counts from sets of (utterance, start, end, type)."""
    g = {(i, *s) for i, ss in enumerate(gold) for s in ss}
    p = {(i, *s) for i, ss in enumerate(pred) for s in ss}
    per = {t: (len({x for x in g if x[3] == t} & {x for x in p if x[3] == t}), sum(x[3] == t for x in p),
               sum(x[3] == t for x in g)) for t in {x[3] for x in g | p}}
    return (len(g & p), len(p), len(g)), per


@pytest.mark.parametrize("seed", range(5))
def test_nested_and_flat_files_match_brute_force(tmp_path, capsys, seed):
    rng = random.Random(100 + seed)
    sentences = ["".join(rng.choice(CHARS) for _ in range(rng.randint(1, 15))) for _ in range(30)]
    gold_spans = [random_nested(rng, len(s)) for s in sentences]
    pred_spans = [[x for x in g if rng.random() < 0.6] + random_nested(rng, len(s))
                  for s, g in zip(sentences, gold_spans)]
    pred_spans = [p + p[: rng.randint(0, len(p))] for p in pred_spans]  # duplicated predictions count once
    gold = write(tmp_path / "gold.jsonl", sentences, gold_spans)
    pred = write(tmp_path / "pred.jsonl", sentences, pred_spans)
    for flags, g, p in (
        (["--nested"], gold_spans, pred_spans),
        ([], [flatten_outermost(x) for x in gold_spans], [flatten_outermost(x) for x in pred_spans]),
    ):
        ours = score(capsys, gold, pred, *flags)
        (ok, n_pred, n_gold), per = brute(g, p)
        assert (ours["correct"], ours["pred"], ours["gold"]) == (ok, n_pred, n_gold)
        assert set(ours["per_type"]) == set(per)
        for typ, (c, np_, ng) in per.items():
            m = ours["per_type"][typ]
            assert m["support"] == ng
            assert m["precision"] == pytest.approx(c / np_ if np_ else 0.0, abs=1e-12)
            assert m["recall"] == pytest.approx(c / ng if ng else 0.0, abs=1e-12)


def test_flat_mode_keeps_the_outermost_span(tmp_path, capsys):
    sentences = ["中国人民银行行长"]
    gold = write(tmp_path / "g.jsonl", sentences, [[(0, 6, "ORG"), (0, 2, "LOC")]])
    pred = write(tmp_path / "p.jsonl", sentences, [[(0, 2, "LOC")]])
    flat, nested = score(capsys, gold, pred), score(capsys, gold, pred, "--nested")
    assert (flat["gold"], flat["pred"], flat["correct"]) == (1, 1, 0)
    assert (nested["gold"], nested["pred"], nested["correct"]) == (2, 1, 1)


def test_empty_gold_empty_predictions_and_duplicates(tmp_path, capsys):
    sentences = ["北京上海", "中国人民"]
    none = write(tmp_path / "none.jsonl", sentences, [[], []])
    some = write(tmp_path / "some.jsonl", sentences, [[(0, 2, "LOC"), (0, 2, "LOC"), (2, 4, "LOC")], [(0, 2, "ORG")]])
    both_empty = score(capsys, none, none)
    assert both_empty == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "pred": 0, "correct": 0,
                          "per_type": {}}
    no_gold = score(capsys, none, some)
    assert (no_gold["gold"], no_gold["pred"], no_gold["correct"], no_gold["precision"]) == (0, 3, 0, 0.0)
    assert no_gold["per_type"]["LOC"]["support"] == 0
    no_pred = score(capsys, some, none)
    assert (no_pred["gold"], no_pred["pred"], no_pred["recall"]) == (3, 0, 0.0)
    dup = write(tmp_path / "dup.jsonl", sentences, [[(0, 2, "LOC")] * 4, []])
    s = score(capsys, some, dup)
    assert (s["gold"], s["pred"], s["correct"], s["precision"]) == (3, 1, 1, 1.0)
    assert s["recall"] == pytest.approx(1 / 3)


def test_table_is_the_default(tmp_path, capsys):
    sentences = ["北京上海"]
    gold = write(tmp_path / "g.jsonl", sentences, [[(0, 2, "LOC"), (2, 4, "LOC")]])
    pred = write(tmp_path / "p.jsonl", sentences, [[(0, 2, "LOC"), (2, 4, "ORG")]])
    assert main(["--gold", str(gold), "--pred", str(pred)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["type", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["LOC", "1.0000", "0.5000", "0.6667", "2"]
    assert lines[2].split() == ["ORG", "0.0000", "0.0000", "0.0000", "0"]
    assert lines[3].split() == ["micro", "0.5000", "0.5000", "0.5000", "2"]
    assert lines[4] == "gold 2, predicted 2, correct 1"


def run_cli(*args):
    code = "import sys; from snlu.cli.score import entry; sys.argv[0] = 'snlu-score'; entry()"
    return processes.run([sys.executable, "-c", code, *args], timeout=120)


def test_mismatched_files_are_one_line_errors_naming_the_line(tmp_path):
    gold = write(tmp_path / "gold.jsonl", ["北京", "上海", "中国"], [[], [], []])
    short = write(tmp_path / "short.jsonl", ["北京", "上海"], [[], []])
    r = run_cli("--gold", str(gold), "--pred", str(short))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {short}: 2 utterances but the gold has 3: {gold}:3 has no counterpart")
    shifted = write(tmp_path / "shifted.jsonl", ["北京", "中国", "上海"], [[], [], []])
    r = run_cli("--gold", str(gold), "--pred", str(shifted))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: {shifted}:2: field 'sentence': '中国' differs from the gold sentence '上海' "
                                f"at {gold}:2 (lines are paired in order)")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence": "北京", "audio": "a", "entity": [[0, 2, "上海", "LOC"]]}\n', encoding="utf-8")
    r = run_cli("--gold", str(gold), "--pred", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}:1: field 'entity[0]': text '上海' != sentence[0:2] '北京'"


def test_transcripts_score_entities_by_text_and_type_against_a_count_by_hand(tmp_path, capsys):
    """--transcripts (speech-only NER output): entities index into 'prediction'; a hand count of the example."""
    gold = write(tmp_path / "gold.jsonl", ["张三在北京", "李四去上海"],
                 [[(0, 2, "PER"), (3, 5, "LOC")], [(0, 2, "PER")]])
    lines = [
        {"sentence": "张三在北京", "prediction": "张三在背景",
         "entity": [[0, 2, "张三", "PER"], [3, 5, "背景", "LOC"]]},
        {"sentence": "李四去上海", "prediction": "上海", "entity": [[0, 2, "上海", "LOC"]]},  # deletion, wrong entity
    ]
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    scores = score(capsys, gold, pred, "--transcripts")
    assert (scores["gold"], scores["pred"], scores["correct"]) == (3, 3, 1)  # only 张三/PER is right
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["cer"] == pytest.approx((2 + 3) / 10)  # 北京 -> 背景: 2 substitutions; 李四去 deleted: 3


def test_transcripts_need_a_prediction_field(tmp_path, capsys):
    gold = write(tmp_path / "gold.jsonl", ["张三在北京"], [[(0, 2, "PER")]])
    with pytest.raises(DataError) as e:
        main(["--gold", str(gold), "--pred", str(gold), "--transcripts"])
    assert "gold.jsonl:1: field 'prediction': no 'prediction' transcript" in str(e.value)
