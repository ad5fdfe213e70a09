"""``snlu-prepare demo``: build the built-in demo corpus (MSRA NER text spoken by espeak-ng)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from snlu.cli.common import run_main
from snlu.data.demo import DEFAULT_SIZES, MAX_CHARS, MIN_CHARS, build_demo_corpus, ensure_demo_corpus
from snlu.training.run import setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-prepare", description=__doc__)
    sub = p.add_subparsers(dest="corpus", required=True)
    demo = sub.add_parser("demo", help="the demo spoken-NER corpus in CNERTA format")
    demo.add_argument("--out", help="output folder (default: $SNLU_CACHE/demo/n<train>-<dev>-<test>-s<seed>)")
    for split in ("train", "dev", "test"):
        demo.add_argument(f"--n-{split}", type=int, default=DEFAULT_SIZES[f"n_{split}"],
                          help=f"{split} utterances (default {DEFAULT_SIZES[f'n_{split}']})")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--min-chars", type=int, default=MIN_CHARS)
    demo.add_argument("--max-chars", type=int, default=MAX_CHARS)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    sizes = {"n_train": args.n_train, "n_dev": args.n_dev, "n_test": args.n_test}
    if (args.min_chars, args.max_chars) == (MIN_CHARS, MAX_CHARS):
        out = ensure_demo_corpus(Path(args.out) if args.out else None, **sizes, seed=args.seed)
    else:
        if not args.out:
            raise SystemExit("snlu-prepare demo: --out is required with non-default --min-chars/--max-chars")
        out = build_demo_corpus(Path(args.out), **sizes, seed=args.seed, min_chars=args.min_chars,
                                max_chars=args.max_chars)
    meta = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    print(f"{out}: " + ", ".join(f"{k} {v} utterances ({meta['audio_seconds'][k] / 60:.1f} min)"
                                 for k, v in meta["counts"].items()))
    return 0


def entry() -> None:
    run_main(main)
