"""``snlu-predict`` and ``snlu-eval`` on a trained demo run: the round trip to the trainer's test score,
gold-less and list inputs, the evaluation folder, ASR output and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
import soundfile as sf

import snlu
from snlu.cli import eval as eval_cli
from snlu.cli import predict, score
from snlu.core.errors import SnluError
from snlu.metrics.syllables import syllable_error_rates

RECIPES = Path(__file__).parents[2] / "recipes"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_predict_then_score_reproduces_the_trainers_test_score(random_run, demo_dir, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    assert predict.main([str(random_run / "best"), "--data", str(demo_dir / "test.jsonl"), "--output", str(out),
                         "--batch-size", "3", "--device", "cpu"]) == 0
    assert read_jsonl(out) == read_jsonl(random_run / "test_predictions.jsonl")
    assert any(line["entity"] for line in read_jsonl(out))  # the comparison is not between empty outputs
    capsys.readouterr()
    assert score.main(["--gold", str(demo_dir / "test.jsonl"), "--pred", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    test = json.loads((random_run / "metrics.json").read_text())["test"]
    assert scores["f1"] == test["f1"]
    assert scores == test


def test_gold_less_lines_and_utterance_lists(random_run, demo_dir, tmp_path):
    expected = read_jsonl(random_run / "test_predictions.jsonl")
    gold_less = tmp_path / "in.jsonl"
    gold_less.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "entity"}, ensure_ascii=False) + "\n"
                                 for x in read_jsonl(demo_dir / "test.jsonl")), encoding="utf-8")
    out = tmp_path / "a.jsonl"
    assert predict.main([str(random_run), "--data", str(gold_less), "--audio-dir", str(demo_dir / "wav"),
                         "--output", str(out)]) == 0
    assert read_jsonl(out) == expected
    # a list: absolute paths, and relative paths from --audio-dir
    for name, prefix, extra in (("abs.tsv", f"{demo_dir}/wav/", []),
                                ("rel.tsv", "wav/", ["--audio-dir", str(demo_dir)])):
        listing = tmp_path / name
        listing.write_text("".join(f"{prefix}{x['audio'][0]}.wav\t{x['sentence']}\n" for x in expected) + "\n",
                           encoding="utf-8")
        out = tmp_path / f"{name}.jsonl"
        assert predict.main([str(random_run), "--data", str(listing), "--output", str(out), *extra]) == 0
        assert read_jsonl(out) == [{"sentence": x["sentence"], "audio": x["audio"], "entity": x["entity"]}
                                   for x in expected]


def test_eval_writes_metrics_predictions_and_error_analysis(random_run, demo_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert eval_cli.main([str(random_run / "best"), "--data", str(demo_dir / "test.jsonl"), "--output-dir",
                          str(out)]) == 0
    test = json.loads((random_run / "metrics.json").read_text())["test"]
    assert json.loads((out / "metrics.json").read_text()) == test
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"gold {test['gold']}, predicted {test['pred']}, correct {test['correct']}")
    preds = read_jsonl(out / "predictions.jsonl")
    assert preds == read_jsonl(random_run / "test_predictions.jsonl")
    analysis = json.loads((out / "analysis.json").read_text())
    counts = analysis["counts"]
    for typ, m in test["per_type"].items():
        assert sum(counts[typ][k] for k in ("correct", "type", "boundary", "missed")) == m["support"]
    assert sum(c["correct"] for c in counts.values()) == test["correct"]
    errors = read_jsonl(out / "errors.jsonl")
    assert len(errors) == test["gold"] + test["pred"] - 2 * test["correct"] - sum(
        counts[t][k] for t in counts for k in ("type", "boundary"))
    gold_lines = read_jsonl(demo_dir / "test.jsonl")
    for e in errors:
        n = int(e["where"].rsplit(":", 1)[1])
        assert e["sentence"] == gold_lines[n - 1]["sentence"]
        if e["kind"] in ("missed", "type", "boundary"):
            assert e["gold"] in gold_lines[n - 1]["entity"]
        if e["kind"] in ("spurious", "type", "boundary"):
            assert e["pred"] in preds[n - 1]["entity"]
    assert (out / "analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_asr_model_writes_transcripts(tmp_path, tiny, demo_overrides, demo_dir, capsys):
    from snlu.cli.train import main as train

    run = tmp_path / "asr"
    assert train([str(RECIPES / "asr_pretrain.yaml"), *tiny, *demo_overrides, "--output-dir", str(run)]) == 0
    listing = tmp_path / "audio.txt"
    wavs = sorted((demo_dir / "wav").glob("DEMO_TEST_*.wav"))
    listing.write_text("".join(f"{w}\n" for w in wavs), encoding="utf-8")  # bare paths: no transcript needed
    out = tmp_path / "asr.jsonl"
    assert predict.main([str(run), "--data", str(listing), "--output", str(out)]) == 0
    lines = read_jsonl(out)
    assert [x["audio"] for x in lines] == [[w.stem] for w in wavs]
    assert all(x["sentence"] == "" and isinstance(x["prediction"], str) for x in lines)
    by_id = {x["audio"][0]: x["prediction"] for x in read_jsonl(run / "test_predictions.jsonl")}
    assert [x["prediction"] for x in lines] == [by_id[w.stem] for w in wavs]
    assert snlu.load(run, device="cpu").predict(wavs[0]) == lines[0]["prediction"]  # ASR: no text, a transcript
    capsys.readouterr()
    assert eval_cli.main([str(run), "--data", str(demo_dir / "test.jsonl"), "--output-dir", str(tmp_path / "e")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run / "metrics.json").read_text())["test"]
    refs = [x["sentence"] for x in read_jsonl(demo_dir / "test.jsonl")]  # syllable error rates beside the CER
    assert {k: printed[k] for k in ("syllable_er_tonal", "syllable_er_toneless", "syllables")} == \
        syllable_error_rates(refs, [by_id[x["audio"][0]] for x in read_jsonl(demo_dir / "test.jsonl")])
    assert not (tmp_path / "e" / "analysis.png").exists()
    # --beam-size: prefix beam search instead of the saved best path; its transcripts equal the library's
    beam = tmp_path / "beam.jsonl"
    assert predict.main([str(run), "--data", str(listing), "--output", str(beam), "--beam-size", "3"]) == 0
    model = snlu.load(run, device="cpu", beam_size=3)
    assert [x["prediction"] for x in read_jsonl(beam)] == [model.predict(w) for w in wavs]
    with pytest.raises(SnluError, match=r"^--marker-bonus: task 'asr' has no decoding option marker_bonus"):
        predict.main([str(run), "--data", str(listing), "--output", str(beam), "--marker-bonus", "1"])
    with pytest.raises(SnluError, match=r"^--beam-size must be >= 1, got 0$"):
        predict.main([str(run), "--data", str(listing), "--output", str(beam), "--beam-size", "0"])


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; from snlu.cli.{module} import entry; sys.argv[0] = 'snlu'; entry()"
    return processes.run([sys.executable, "-c", code, *args], timeout=300)


def test_bad_inputs_are_one_line_errors(random_run, demo_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = (demo_dir / "test.jsonl").read_text(encoding="utf-8").splitlines()
    bad.write_text(lines[0] + "\n" + lines[1].replace("DEMO_TEST_00002", "NO_SUCH_ID") + "\n", encoding="utf-8")
    r = run_cli("predict", str(random_run), "--data", str(bad), "--audio-dir", str(demo_dir / "wav"), "--output",
                str(tmp_path / "o.jsonl"), "--strict")  # (without: skipped, the other line predicted, exit 3)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {bad}:2: field 'audio': audio 'NO_SUCH_ID.wav' not found under {(demo_dir / 'wav').resolve()}")
    r = run_cli("eval", str(tmp_path), "--data", str(bad), "--output-dir", str(tmp_path / "e"))
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path}") and "not a saved model" in last and "Traceback" not in r.stderr


def check_alignment_json(out: Path, gold: list[dict]) -> dict:
    quality = json.loads((out / "alignment.json").read_text())
    assert quality["n_utterances"] == len(gold) and quality["skipped_utterances"] == 0
    assert quality["n_boundaries"] == sum(len(x["timings"]) for x in gold)
    longest = max(x["timings"][-1][3] for x in gold)  # no start can be off by more than the audio lasts
    assert 0 <= quality["p50_ms"] <= quality["p90_ms"] <= longest and 0 < quality["mean_ms"] <= longest
    return quality


def test_eval_alignment_of_a_spoken_ner_model(random_run, demo_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert eval_cli.main([str(random_run), "--data", str(demo_dir / "test.jsonl"), "--output-dir", str(out),
                          "--alignment", "--batch-size", "3"]) == 0
    gold = read_jsonl(demo_dir / "test.jsonl")
    quality = check_alignment_json(out, gold)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"alignment: boundary error mean {quality['mean_ms']:.1f} ms, median {quality['p50_ms']:.1f} ms, "
        f"p90 {quality['p90_ms']:.1f} ms ({quality['n_boundaries']} boundaries, {len(gold)} utterances)")
    assert (out / "metrics.json").is_file()  # the usual evaluation too


def test_eval_alignment_of_an_asr_model_on_the_asr_corpus(tmp_path, tiny):
    from snlu.cli.train import main as train
    from snlu.data.demo_asr import build_asr_corpus

    corpus = build_asr_corpus(tmp_path / "asr", n=8, n_dev=2, n_test=3, seed=2, progress=False)
    data = [f"data.{s}={corpus}/{s}.jsonl" for s in ("train", "dev", "test")]
    run = tmp_path / "run"
    assert train([str(RECIPES / "asr_pretrain.yaml"), *tiny, *data, "--output-dir", str(run)]) == 0
    out = tmp_path / "eval"
    assert eval_cli.main([str(run), "--data", str(corpus / "test.jsonl"), "--output-dir", str(out), "--alignment"]) == 0
    check_alignment_json(out, read_jsonl(corpus / "test.jsonl"))


def test_eval_alignment_refuses_data_without_timings(random_run, demo_dir, tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "timings"}, ensure_ascii=False) + "\n"
                             for x in read_jsonl(demo_dir / "test.jsonl")), encoding="utf-8")
    r = run_cli("eval", str(random_run), "--data", str(plain), "--audio-dir", str(demo_dir / "wav"), "--output-dir",
                str(tmp_path / "e"), "--alignment")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {plain}: --alignment: no line has 'timings' (espeak's [char_start, char_end, start_ms, end_ms]; "
        "snlu-prepare demo and demo-asr write them)")


def test_unreadable_files_are_reported_and_skipped_the_others_predicted(random_run, demo_dir, tmp_path):
    """A list of 12 files, one of them empty and one too short for the encoder (found while preparing its
    batch): each is reported with its reason, the 10 others predicted as alone, exit status 3; --strict stops."""
    lines = read_jsonl(demo_dir / "test.jsonl")
    wavs = [demo_dir / "wav" / f"{x['audio'][0]}.wav" for x in lines]
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "short.wav", np.zeros(100), 16000, subtype="PCM_16")
    items = [(w, x["sentence"]) for w, x in zip(wavs, lines)] * 3
    items = items[:5] + [(tmp_path / "empty.wav", "北京"), (tmp_path / "short.wav", "上海")] + items[5:10]
    listing = tmp_path / "list.tsv"
    listing.write_bytes(b"\xef\xbb\xbf" + "".join(f"{w}\t{t}\n" for w, t in items).encode())  # a BOM too
    out = tmp_path / "out.jsonl"
    r = run_cli("predict", str(random_run), "--data", str(listing), "--output", str(out), "--batch-size", "4")
    assert r.returncode == predict.SOME_FAILED and "Traceback" not in r.stderr, r.stderr[-2000:]
    skipped = [x for x in r.stderr.splitlines() if "WARNING skipped " in x]
    assert len(skipped) == 2
    assert skipped[0].endswith(f"skipped {listing}:6: field 'audio': unreadable audio {tmp_path / 'empty.wav'}: "
                               "Error opening '" + str(tmp_path / "empty.wav") + "': Format not recognised.")
    assert skipped[1].endswith(f"skipped {listing}:7: field 'audio': audio {tmp_path / 'short.wav'} has 100 "
                               "samples: too short for the encoder (truncated file?)")
    assert r.stderr.strip().splitlines()[-1].endswith("2 inputs skipped (listed above), 10 predicted; exit status 3 "
                                                      "(--strict stops at the first)")
    good = [x for k, x in enumerate(items) if k not in (5, 6)]
    alone = tmp_path / "good.tsv"
    alone.write_text("".join(f"{w}\t{t}\n" for w, t in good), encoding="utf-8")
    assert predict.main([str(random_run), "--data", str(alone), "--output", str(tmp_path / "good.jsonl")]) == 0
    assert read_jsonl(out) == read_jsonl(tmp_path / "good.jsonl")
    strict = tmp_path / "strict.jsonl"
    r = run_cli("predict", str(random_run), "--data", str(listing), "--output", str(strict), "--strict")
    assert r.returncode == 2 and not strict.exists()
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {listing}:6: field 'audio': unreadable audio")


def test_eval_skips_a_missing_audio_file_and_scores_the_rest(random_run, demo_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = (demo_dir / "test.jsonl").read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([lines[0].replace(json.loads(lines[0])["audio"][0], "NO_SUCH_ID"), *lines[1:]]) + "\n",
                   encoding="utf-8")
    out = tmp_path / "eval"
    r = run_cli("eval", str(random_run), "--data", str(bad), "--audio-dir", str(demo_dir / "wav"), "--output-dir",
                str(out))
    assert r.returncode == predict.SOME_FAILED, r.stderr[-2000:]
    assert f"skipped {bad}:1: field 'audio': audio 'NO_SUCH_ID.wav' not found" in r.stderr
    assert len(read_jsonl(out / "predictions.jsonl")) == len(lines) - 1
    assert json.loads((out / "metrics.json").read_text())["gold"] == sum(
        len(json.loads(x)["entity"]) for x in lines[1:])
