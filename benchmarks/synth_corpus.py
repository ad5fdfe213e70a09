"""A synthetic CNERTA corpus of any size, for the scale benchmarks (not speech: tones and noise).

Layout of ``out`` (the same as the demo corpus, so recipes read it with ``data.train=...``)::

    wav/SYN_TRAIN_000001.wav ...   16 kHz mono PCM_16, 1-3 s
    train.jsonl dev.jsonl test.jsonl

Each line is a random sentence of common characters with one or two PER/LOC/ORG entities inserted; the
audio is a tone whose pitch glides per "syllable" plus a little noise, about 0.2 s per character. Everything
is a function of the seed, and a smaller ``n_train`` gives a prefix of a larger one (dev and test do not
depend on it). Run ``python benchmarks/synth_corpus.py --n-train 1000 --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
FILLER = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种"
    "面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本"
    "去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比"
    "或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做"
    "必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权"
    "收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信"
    "马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
    "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存"
    "候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞"
)
ENTITIES = {
    "PER": ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴军"],
    "LOC": ["北京", "上海", "广州", "深圳", "杭州", "南京", "武汉", "成都", "西安", "重庆"],
    "ORG": ["新华社", "清华大学", "国务院", "中国银行", "人民日报", "北京大学", "外交部", "中央电视台"],
}
SPLITS = ("train", "dev", "test")


def sentence(rng: random.Random) -> tuple[str, list[list]]:
    """6-16 characters with one or two entities: ``(text, [[start, end, text, TYPE], ...])``."""
    parts: list[str] = []
    spans: list[list] = []
    pos = 0
    for _ in range(rng.randint(1, 2)):
        filler = "".join(rng.choice(FILLER) for _ in range(rng.randint(1, 5)))
        etype = rng.choice(sorted(ENTITIES))
        name = rng.choice(ENTITIES[etype])
        parts += [filler, name]
        start = pos + len(filler)
        spans.append([start, start + len(name), name, etype])
        pos = start + len(name)
    parts.append("".join(rng.choice(FILLER) for _ in range(rng.randint(1, 4))))
    return "".join(parts), spans


def tone(n_chars: int, rng: np.random.Generator) -> np.ndarray:
    """1-3 s of gliding tones (one per character) plus noise, float32 in [-1, 1]."""
    seconds = float(np.clip(0.2 * n_chars + rng.uniform(-0.2, 0.2), 1.0, 3.0))
    n = int(seconds * SAMPLE_RATE)
    per = n // n_chars + 1
    f0 = np.repeat(rng.uniform(120, 300, n_chars), per)[:n]
    glide = np.tile(np.linspace(-30, 30, per), n_chars)[:n] * rng.choice([-1, 1])
    phase = 2 * np.pi * np.cumsum(f0 + glide) / SAMPLE_RATE
    audio = 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.02 * rng.standard_normal(n)
    return audio.astype(np.float32)


def build(out: str | Path, n_train: int, n_dev: int = 50, n_test: int = 50, seed: int = 0) -> Path:
    """Write the corpus into ``out`` (skipped when ``out/done.json`` records the same sizes) and return it."""
    out = Path(out)
    params = {"n_train": n_train, "n_dev": n_dev, "n_test": n_test, "seed": seed}
    done = out / "done.json"
    if done.is_file() and json.loads(done.read_text()) == params:
        return out
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for k, (split, count) in enumerate(zip(SPLITS, (n_train, n_dev, n_test))):
        # One generator per split: dev/test do not depend on n_train, a smaller train is a prefix of a larger.
        rng, nrng, lines = random.Random(seed * 10 + k), np.random.default_rng([seed, k]), []
        for i in range(1, count + 1):
            uid = f"SYN_{split.upper()}_{i:06d}"
            text, spans = sentence(rng)
            sf.write(out / "wav" / f"{uid}.wav", tone(len(text), nrng), SAMPLE_RATE, subtype="PCM_16")
            lines.append(json.dumps({"sentence": text, "audio": [uid], "entity": spans,
                                     "speaker_info": [["synth", "F"]]}, ensure_ascii=False))
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done.write_text(json.dumps(params))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-dev", type=int, default=50)
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(build(a.out, a.n_train, a.n_dev, a.n_test, a.seed))


if __name__ == "__main__":
    main()
