"""Console scripts: one-line errors and exit codes, snlu-list, snlu-prepare demo, --print-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import processes

RECIPE = str(Path(__file__).parents[2] / "recipes" / "fusion_raw_all.yaml")


def run(module: str, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    code = f"import sys; from snlu.cli.{module} import entry; sys.argv[0] = 'snlu'; entry()"
    return processes.run([sys.executable, "-c", code, *args], env=env, timeout=300)


def test_bad_override_is_one_line_exit_2():
    r = run("train", RECIPE, "fusion.num_head=3")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "error: fusion.num_head: unknown key; did you mean num_heads? (valid: num_heads, dropout, intermediate_size)")
    assert "Traceback" not in r.stderr


def test_bad_data_is_one_line_naming_file_and_line(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"sentence": "北京", "audio": "a", "entity": [[0, 2, "上海", "LOC"]]}\n', encoding="utf-8")
    r = run("train", RECIPE, f"data.train={bad}", f"data.dev={bad}", f"data.test={bad}",
            f"data.audio_dir={tmp_path}", "--output-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"error: {bad}:1: field 'entity[0]': text '上海' != sentence[0:2] '北京'" in r.stderr


def test_print_config_and_list():
    r = run("train", RECIPE, "fusion.name=concat", "--print-config")
    assert r.returncode == 0 and "name: concat" in r.stdout and "num_heads" not in r.stdout.split("fusion:")[1][:60]
    r = run("list")
    assert r.returncode == 0
    for kind in ("text_encoders:", "fusions:", "audio_tokenizers:", "tasks:"):
        assert kind in r.stdout
    assert "dpmask" in r.stdout and "CTC Viterbi" in r.stdout
    r = run("list", "fusions")
    assert r.stdout.startswith("fusions:") and "tasks:" not in r.stdout
    assert run("list", "nonsense").returncode == 2


def test_prepare_demo_is_cached(tmp_path):
    args = ("demo", "--out", str(tmp_path / "d"), "--n-train", "3", "--n-dev", "1", "--n-test", "1")
    r = run("prepare", *args)
    assert r.returncode == 0, r.stderr
    assert "train 3 utterances" in r.stdout
    stamp = (tmp_path / "d" / "train.jsonl").stat().st_mtime_ns
    assert run("prepare", *args).returncode == 0
    assert (tmp_path / "d" / "train.jsonl").stat().st_mtime_ns == stamp


def test_truncated_wav_found_in_a_worker_is_one_line(tmp_path, demo_dir):
    import shutil

    wav = tmp_path / "wav"
    shutil.copytree(demo_dir / "wav", wav)
    victim = sorted(wav.glob("DEMO_TRAIN_*.wav"))[0]
    victim.write_bytes(victim.read_bytes()[:60])  # header claims more samples than the file holds
    r = run("train", RECIPE, f"data.train={demo_dir}/train.jsonl", f"data.dev={demo_dir}/dev.jsonl",
            f"data.test={demo_dir}/test.jsonl", f"data.audio_dir={wav}", "train.num_workers=1",
            "audio_encoder.n_blocks=1", "--output-dir", str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and victim.name in last and "Traceback" not in r.stderr
