"""``snlu-prepare``: build the demo corpora, or check and prepare real CNERTA or AISHELL-1 for training.

``demo`` speaks a small spoken-NER corpus; ``demo-asr`` speaks hours of other MSRA clauses with many voices
for ASR pretraining (snlu/data/demo_asr.py, docs/speech.md), in the layout ``aishell`` writes.

``cnerta`` and ``aishell`` check every line first (see snlu/data/validate.py), write a report
(``validation.json``, ``validation.md``) and then the manifests, vocabulary, CMVN and statistics
(see snlu/data/manifest.py). ``--strict`` stops (exit 2) if any utterance would be skipped.
``--features`` also computes the fbank features of every split once, in parallel, into ``OUT/features``
(train with ``data.feature_cache=OUT/features``; see snlu/data/features.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from snlu.cli.common import run_main
from snlu.core.logs import setup_logging
from snlu.data import demo_asr
from snlu.data.aishell import aishell_lines
from snlu.data.cnerta import SPLITS, AudioIndex, read_cnerta, read_lines
from snlu.data.demo import DEFAULT_SIZES, MAX_CHARS, MIN_CHARS, build_demo_corpus, ensure_demo_corpus
from snlu.data.manifest import write_features, write_prepared
from snlu.data.validate import CheckOptions, Report, Validator
from snlu.plugins import load_builtins

SHOWN = 20  # problems printed on the console; the report lists all


def _feature_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", action="store_true",
                   help="also cache the 40-bin fbank features of every split in OUT/features "
                        "(train with data.feature_cache=OUT/features)")
    p.add_argument("--feature-workers", type=int, default=None, metavar="N",
                   help="processes computing the features (default: one per CPU)")


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (manifests, vocab, CMVN, stats, report)")
    _feature_options(p)
    p.add_argument("--strict", action="store_true", help="exit 2 if any utterance would be skipped")
    p.add_argument("--allow-truncated", action="store_true",
                   help="a WAV holding fewer samples than its header declares is read as it is (a warning); "
                        "default: an error")
    p.add_argument("--refuse-resample", action="store_true",
                   help="a sample rate other than 16 kHz is an error (default: resample, with a warning)")
    p.add_argument("--min-seconds", type=float, default=CheckOptions.min_seconds,
                   help=f"shorter audio is an error (default {CheckOptions.min_seconds})")
    p.add_argument("--max-seconds", type=float, default=CheckOptions.max_seconds,
                   help=f"longer audio is an error (default {CheckOptions.max_seconds})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="corpus", required=True)
    demo = sub.add_parser("demo", help="the demo spoken-NER corpus in CNERTA format")
    demo.add_argument("--out", help="output folder (default: $SNLU_CACHE/demo/n<train>-<dev>-<test>-s<seed>)")
    for split in SPLITS:
        demo.add_argument(f"--n-{split}", type=int, default=DEFAULT_SIZES[f"n_{split}"],
                          help=f"{split} utterances (default {DEFAULT_SIZES[f'n_{split}']})")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--min-chars", type=int, default=MIN_CHARS)
    demo.add_argument("--max-chars", type=int, default=MAX_CHARS)
    _feature_options(demo)

    asr = sub.add_parser("demo-asr", help="hours of other MSRA clauses spoken by many espeak-ng voices, for ASR "
                         "pretraining (manifests like aishell's)")
    asr.add_argument("--hours", type=float, help=f"hours of train audio (default {demo_asr.DEFAULT_HOURS:g})")
    asr.add_argument("--n", type=int, help="train utterances (instead of --hours)")
    asr.add_argument("--out", help="output folder (default: $SNLU_CACHE/demo-asr/<h<hours>|n<n>>-s<seed>[-snr<DB>])")
    asr.add_argument("--seed", type=int, default=0, help="picks the clauses, voices and noise (default 0)")
    asr.add_argument("--noise-snr", type=float, metavar="DB", help="add white noise at this SNR in dB (default: none)")
    asr.add_argument("--n-dev", type=int, default=demo_asr.N_DEV, help=f"dev utterances (default {demo_asr.N_DEV})")
    asr.add_argument("--n-test", type=int, default=demo_asr.N_TEST,
                     help=f"test utterances (default {demo_asr.N_TEST})")
    _feature_options(asr)

    cnerta = sub.add_parser("cnerta", help="check the released CNERTA files and write training manifests")
    cnerta.add_argument("--jsonl-dir", required=True, help="folder of the train/dev/test JSONL files")
    cnerta.add_argument("--audio-dir", required=True,
                        help="audio as <dir>/<id>.wav or AISHELL's <dir>/<split>/<speaker>/<id>.wav")
    cnerta.add_argument("--train", default="train.jsonl", help="train file name in --jsonl-dir")
    cnerta.add_argument("--dev", help="dev file name (default: dev.jsonl, else valid.jsonl)")
    cnerta.add_argument("--test", default="test.jsonl", help="test file name")
    cnerta.add_argument("--types", default="PER,LOC,ORG", help="entity types allowed ('' allows any)")
    _check_options(cnerta)

    aishell = sub.add_parser("aishell", help="AISHELL-1 transcripts as manifests (entity: []) for ASR pretraining")
    aishell.add_argument("--dir", required=True, help="the AISHELL-1 folder (transcript/, wav/)")
    _check_options(aishell)
    for q in (p, demo, asr, cnerta, aishell):  # before or after the corpus name
        q.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    load_builtins()  # the recipes' frontend computes CMVN and features
    return {"demo": demo, "demo-asr": asr, "cnerta": cnerta, "aishell": aishell}[args.corpus](args)


def demo(args: argparse.Namespace) -> int:
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
    if args.features:  # the demo's splits exactly as the cnerta dataset reads them
        splits = {s: read_cnerta(out / f"{s}.jsonl", AudioIndex(out / "wav")) for s in SPLITS}
        print(f"features: {write_features(out / 'features', splits, args.feature_workers)}")
    return 0


def asr(args: argparse.Namespace) -> int:
    demo_asr.check_args(args.hours, args.n, args.n_dev, args.n_test, args.noise_snr, demo_asr.MIN_CHARS,
                        demo_asr.MAX_CHARS)
    hours = args.hours if args.hours is not None or args.n is not None else demo_asr.DEFAULT_HOURS
    out = Path(args.out) if args.out else demo_asr.default_asr_dir(hours, args.n, args.seed, args.noise_snr)
    demo_asr.build_asr_corpus(out, hours=hours, n=args.n, n_dev=args.n_dev, n_test=args.n_test, seed=args.seed,
                              noise_snr=args.noise_snr, features=args.features, feature_workers=args.feature_workers)
    meta = json.loads((out / "asr.json").read_text(encoding="utf-8"))
    print(f"{out}: " + ", ".join(f"{s} {meta['counts'][s]} utterances ({meta['hours'][s]:.2f} h)" for s in SPLITS)
          + f"; {meta['train_chars']} distinct characters in train")
    if args.features:
        print(f"features: {out / 'features'} (train with data.feature_cache={out / 'features'})")
    print(f"train: snlu-train recipes/asr_pretrain.yaml data.train={out}/train.jsonl data.dev={out}/dev.jsonl "
          f"data.test={out}/test.jsonl" + (f" data.feature_cache={out}/features" if args.features else ""))
    return 0


def _options(args: argparse.Namespace, types: tuple[str, ...] | None = None) -> CheckOptions:
    return CheckOptions(types=types, resample=not args.refuse_resample, min_seconds=args.min_seconds,
                        max_seconds=args.max_seconds)


def _audio_index(root: str | Path, args: argparse.Namespace) -> AudioIndex:
    return AudioIndex(root, args.allow_truncated, "--allow-truncated")


def cnerta(args: argparse.Namespace) -> int:
    root = Path(args.jsonl_dir)
    dev = args.dev or next((n for n in ("dev.jsonl", "valid.jsonl") if (root / n).is_file()), "dev.jsonl")
    types = tuple(t.strip() for t in args.types.split(",") if t.strip()) or None
    validator = Validator(_audio_index(args.audio_dir, args), _options(args, types))
    results = {}
    for split, name in zip(SPLITS, (args.train, dev, args.test)):
        path = root / name
        results[split] = validator.check_split(split, path, enumerate(read_lines(path), start=1))
    return _finish(validator.report(results), Path(args.out), args)


def aishell(args: argparse.Namespace) -> int:
    transcript, lines, unmatched = aishell_lines(args.dir)
    validator = Validator(_audio_index(Path(args.dir) / "wav", args), _options(args))
    for problem in unmatched:
        validator.add(problem)
    results = {split: validator.check_split(split, transcript, lines[split]) for split in SPLITS}
    return _finish(validator.report(results), Path(args.out), args)


def _finish(report: Report, out: Path, args: argparse.Namespace) -> int:
    """Print the summary and the first problems, then write everything (raises under --strict)."""
    print(report.summary_table())
    for problem in report.problems[:SHOWN]:
        print(f"  {problem.severity}: {problem.message}")
    if len(report.problems) > SHOWN:
        print(f"  ... {len(report.problems) - SHOWN} more")
    print(f"report: {out / 'validation.md'}")
    stats = write_prepared(out, report, args.strict, args.features, args.feature_workers)
    for split, s in stats.items():
        entities = ", ".join(f"{t} {n}" for t, n in s["entities"].items()) or "no entities"
        print(f"{split}: {s['utterances']} utterances, {s['hours']:.2f} h, {entities} -> {out / f'{split}.jsonl'}")
    if args.features:
        print(f"features: {out / 'features'} (train with data.feature_cache={out / 'features'})")
    return 0


def entry() -> None:
    run_main(main)
