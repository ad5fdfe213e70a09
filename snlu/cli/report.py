"""``snlu-report SWEEP_DIR [--output-dir DIR] [--metric f1] [--alpha 0.05]``: aggregate a sweep.

Writes report.md (mean ± std over seeds of test and dev F1, per-type test F1, seeds, minutes per run, and
which variants differ from the best by more than the seed spread: two-sided paired t-test over seeds),
report.csv, runs.csv, scores.png and dev_curves.png into the sweep directory (or --output-dir), and prints
the table.
"""

from __future__ import annotations

import argparse

from snlu.cli.common import run_main
from snlu.core.logs import setup_logging
from snlu.experiments.report import report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snlu-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir", help="a snlu-sweep output directory (<variant>/seed<N>/metrics.json)")
    p.add_argument("--output-dir", help="where to write the report (default: the sweep directory)")
    p.add_argument("--metric", default="f1", help="main metric in metrics.json (default f1; cer for ASR sweeps)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired t-test")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    if not 0.0 < args.alpha < 1.0:
        p.error(f"--alpha: must be in (0, 1), got {args.alpha}")
    setup_logging()
    table, _ = report(args.sweep_dir, args.output_dir, args.metric, args.alpha)
    print(table, end="")
    return 0


def entry() -> None:
    run_main(main)
