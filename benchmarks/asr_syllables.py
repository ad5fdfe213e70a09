"""What bounds a demo ASR model's character error rate: homophones. espeak-ng reads each character by its
Mandarin syllable, so two characters with the same syllable sound the same and only context tells them apart.
This script scores an ASR run's transcripts three ways on a CNERTA/manifest file: characters (CER), tonal
pinyin syllables and toneless syllables (syllable error rates), each as edit distance over the reference
length (torchaudio.functional.edit_distance). A syllable error rate far below the CER means the acoustics are
learnt and the characters are the problem.

    pip install pypinyin          # analysis only: not a dependency of snlu
    python benchmarks/asr_syllables.py runs/asr_demo --data data/demo_asr/test.jsonl --out syllables.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torchaudio.functional import edit_distance


def rates(refs: list[str], hyps: list[str]) -> dict[str, float]:
    from pypinyin import Style, lazy_pinyin

    def tonal(s: str) -> list[str]:
        return lazy_pinyin(s, style=Style.TONE3, neutral_tone_with_five=True)

    def toneless(s: str) -> list[str]:
        return lazy_pinyin(s, style=Style.NORMAL)

    out = {}
    for name, unit in (("cer", list), ("syllable_er_tonal", tonal), ("syllable_er_toneless", toneless)):
        errors = sum(edit_distance(unit(r), unit(h)) for r, h in zip(refs, hyps))
        out[name] = errors / max(1, sum(len(unit(r)) for r in refs))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ASR run (or its best/)")
    p.add_argument("--data", required=True, help="CNERTA/manifest JSONL with the reference transcripts")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--out", help="write the rates as JSON here")
    args = p.parse_args()
    from snlu.data.cnerta import AudioIndex, read_cnerta
    from snlu.inference import predict_utterances
    from snlu.plugins import load_builtins
    from snlu.tasks.base import Task

    load_builtins()
    task = Task.load(args.model)
    task.cfg.task.beam_size = args.beam_size
    utts = read_cnerta(args.data, AudioIndex(Path(args.data).parent), require_entities=False)
    hyps = predict_utterances(task, utts, 16, "cpu", progress=False)
    result = {"data": args.data, "utterances": len(utts), "beam_size": args.beam_size,
              **rates([u.sentence for u in utts], hyps)}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
