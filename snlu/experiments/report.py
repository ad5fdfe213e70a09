"""Sweep reports: mean ± std over seeds per variant, as Markdown and CSV, with plots.

A sweep directory holds ``<variant>/seed<N>/`` run directories (``snlu-sweep``'s layout); a run counts
once its ``metrics.json`` exists (moved-aside attempts, ``seed<N>.old-*``, never count). Per variant:
mean and sample std (n - 1) over seeds of the test and dev main metric and of the per-type test F1, the
number of seeds, and the mean training time per run. The best variant has the best mean test metric;
every other variant is compared with it by a two-sided paired t-test over the seeds both have
(:mod:`snlu.experiments.stats`), and marked ``*`` when p < alpha: a difference larger than the seed
spread explains.

Writes ``report.md``, ``report.csv`` (one row per variant), ``runs.csv`` (one row per run),
``scores.png`` (bars: mean dev and test metric per variant, std error bars, one dot per seed) and
``dev_curves.png`` (dev metric per epoch of every run from its ``history.json``, the seed mean bold).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from snlu.core.errors import SnluError
from snlu.experiments import stats
from snlu.experiments.sweep import RECORD
from snlu.experiments.sweep_file import COMPLETE

log = logging.getLogger("snlu")
RUN_DIR = re.compile(r"^seed(\d+)$")
LOWER_IS_BETTER = {"cer"}


@dataclasses.dataclass
class RunResult:
    variant: str
    seed: int
    dir: Path
    metrics: dict[str, Any]  # metrics.json: {"dev": {...}, "test": {...}, "minutes": m}
    history: list[dict[str, Any]]  # history.json (empty when missing)


@dataclasses.dataclass
class VariantStats:
    variant: str
    seeds: list[int]
    test: list[float]  # per seed, in the order of ``seeds``
    dev: list[float]
    per_type: dict[str, list[float]]  # test F1 per entity type, per seed (NaN where a run lacks the type)
    minutes: list[float]
    best: bool = False
    test_pairs: stats.TTest | None = None  # paired test of this variant against the best one
    significant: bool | None = None  # None: no test (the best variant itself, or fewer than 2 shared seeds)


def collect(sweep_dir: str | Path) -> tuple[list[RunResult], list[str]]:
    """Complete runs (in the sweep's variant order, then by seed) and the names of incomplete ones."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise SnluError(f"{root}: no such sweep directory")
    results, incomplete = [], []
    for run in sorted(p for p in root.glob("*/seed*") if p.is_dir() and RUN_DIR.match(p.name)):
        variant, seed = run.parent.name, int(RUN_DIR.match(run.name).group(1))
        if not (run / COMPLETE).is_file():
            incomplete.append(f"{variant}/{run.name}")
            continue
        metrics = json.loads((run / COMPLETE).read_text(encoding="utf-8"))
        history = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else []
        results.append(RunResult(variant, seed, run, metrics, history))
    order = _variant_order(root)
    results.sort(key=lambda r: (order.get(r.variant, len(order)), r.variant, r.seed))
    return results, incomplete


def _variant_order(root: Path) -> dict[str, int]:
    """The sweep file's variant order when snlu-sweep recorded it (else alphabetical)."""
    try:
        return {v: i for i, v in enumerate(json.loads((root / RECORD).read_text()).get("variants", []))}
    except (OSError, ValueError):
        return {}


def aggregate(results: list[RunResult], metric: str = "f1", alpha: float = 0.05) -> list[VariantStats]:
    """Per-variant statistics; the best variant and the paired tests against it."""
    by_variant: dict[str, list[RunResult]] = {}
    for r in results:
        if metric not in r.metrics.get("test", {}):
            raise SnluError(f"{r.dir / COMPLETE}: no test '{metric}' (choose the metric with --metric)")
        by_variant.setdefault(r.variant, []).append(r)
    rows = []
    types = sorted({t for r in results for t in r.metrics["test"].get("per_type", {})})
    for variant, runs in by_variant.items():
        runs = sorted(runs, key=lambda r: r.seed)
        rows.append(VariantStats(
            variant=variant,
            seeds=[r.seed for r in runs],
            test=[float(r.metrics["test"][metric]) for r in runs],
            dev=[float(r.metrics.get("dev", {}).get(metric, math.nan)) for r in runs],
            per_type={t: [float(r.metrics["test"].get("per_type", {}).get(t, {}).get("f1", math.nan)) for r in runs]
                      for t in types},
            minutes=[float(r.metrics.get("minutes", math.nan)) for r in runs],
        ))
    if not rows:
        return rows
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best = max(rows, key=lambda v: sign * stats.mean(v.test))
    best.best = True
    for v in rows:
        if v is best:
            continue
        shared = sorted(set(v.seeds) & set(best.seeds))
        a = [v.test[v.seeds.index(s)] for s in shared]
        b = [best.test[best.seeds.index(s)] for s in shared]
        v.test_pairs = stats.paired_t_test(a, b)
        v.significant = None if math.isnan(v.test_pairs.p) else v.test_pairs.p < alpha
    return rows


# ----------------------------------------------------------------------------- outputs


def fmt(xs: list[float], digits: int = 4) -> str:
    """``0.8100 ± 0.0100`` (mean ± sample std); the mean alone for one value."""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return "—"
    m, s = stats.mean(xs), stats.std(xs)
    return f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(rows: list[VariantStats], metric: str, alpha: float, incomplete: list[str] | None = None) -> str:
    types = list(rows[0].per_type) if rows else []
    name = label(metric)
    head = ["variant", "seeds", f"test {name}", f"dev {name}", *[f"{t} F1" for t in types],
            f"Δ test {name} vs best", "p (paired t)", "min/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in rows:
        if v.best:
            delta, p = "**best**", ""
        elif v.test_pairs is None or math.isnan(v.test_pairs.p):
            delta, p = f"{stats.mean(v.test) - stats.mean(_best(rows).test):+.4f}", "n/a"
        else:
            delta = f"{stats.mean(v.test) - stats.mean(_best(rows).test):+.4f}{' *' if v.significant else ''}"
            p = f"{v.test_pairs.p:.3g}"
        cells = [v.variant, str(len(v.seeds)), fmt(v.test), fmt(v.dev), *[fmt(v.per_type[t]) for t in types],
                 delta, p, fmt(v.minutes, 1)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± sample std over seeds. Δ: difference of the mean test {name} from the best variant's; "
                  f"`*`: a two-sided paired t-test over the seeds both variants ran (pairs = same seed) gives "
                  f"p < {alpha} — a difference larger than the seed spread. n/a: fewer than 2 shared seeds."]
    if incomplete:
        lines += ["", f"Not counted ({len(incomplete)} incomplete or failed): {', '.join(incomplete)}."]
    return "\n".join(lines) + "\n"


def label(metric: str) -> str:
    return metric.upper() if metric in ("f1", "cer") else metric


def _best(rows: list[VariantStats]) -> VariantStats:
    return next(v for v in rows if v.best)


def write_csv(rows: list[VariantStats], metric: str, path: Path) -> None:
    types = list(rows[0].per_type) if rows else []
    head = ["variant", "n_seeds", "seeds", f"test_{metric}_mean", f"test_{metric}_std", f"dev_{metric}_mean",
            f"dev_{metric}_std"]
    for t in types:
        head += [f"test_{t}_f1_mean", f"test_{t}_f1_std"]
    head += ["minutes_mean", "best", f"delta_test_{metric}", "paired_n", "paired_t", "p_value", "significant"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(head)
        for v in rows:
            row: list[Any] = [v.variant, len(v.seeds), " ".join(map(str, v.seeds)), stats.mean(v.test),
                              stats.std(v.test), stats.mean(v.dev), stats.std(v.dev)]
            for t in types:
                row += [stats.mean(v.per_type[t]), stats.std(v.per_type[t])]
            tt = v.test_pairs
            row += [stats.mean(v.minutes), v.best, stats.mean(v.test) - stats.mean(_best(rows).test),
                    tt.n if tt else "", tt.t if tt else "", tt.p if tt else "",
                    "" if v.significant is None else v.significant]
            w.writerow(["" if isinstance(x, float) and math.isnan(x) else x for x in row])


def write_runs_csv(results: list[RunResult], metric: str, path: Path) -> None:
    types = sorted({t for r in results for t in r.metrics["test"].get("per_type", {})})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", f"dev_{metric}", f"test_{metric}", *[f"test_{t}_f1" for t in types],
                    "minutes", "epochs", "dir"])
        for r in results:
            pt = r.metrics["test"].get("per_type", {})
            w.writerow([r.variant, r.seed, r.metrics.get("dev", {}).get(metric, ""), r.metrics["test"][metric],
                        *[pt.get(t, {}).get("f1", "") for t in types], r.metrics.get("minutes", ""),
                        len(r.history), r.dir.as_posix()])


def plot_scores(rows: list[VariantStats], metric: str, path: Path) -> None:
    """Bars of the mean dev and test metric per variant with std error bars and one dot per seed."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no global state

    fig = Figure(figsize=(max(6.0, 0.75 * len(rows) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    width, xs = 0.38, range(len(rows))
    everything = []
    for k, (split, color) in enumerate((("dev", "tab:blue"), ("test", "tab:orange"))):
        means = [stats.mean(getattr(v, split)) for v in rows]
        errs = [0.0 if math.isnan(s) else s for s in (stats.std(getattr(v, split)) for v in rows)]
        pos = [x + (k - 0.5) * width for x in xs]
        ax.bar(pos, means, width, yerr=errs, capsize=3, color=color, alpha=0.75, label=f"{split} (mean ± std)")
        for x, v in zip(pos, rows):
            values = getattr(v, split)
            ax.plot([x] * len(values), values, "k.", ms=4)
            everything += values
        if split == "test":
            for x, m, e, v in zip(pos, means, errs, rows):
                if v.significant:
                    ax.annotate("*", (x, m + e), ha="center", va="bottom", fontsize=12)
    values = [x for x in everything if not math.isnan(x)]
    if values and min(values) > 0.3:  # differences of a point: zoom in, and say so on the axis
        low = math.floor((min(values) - 0.05) * 20) / 20
        ax.set_ylim(bottom=max(0.0, low))
        ax.set_ylabel(f"{label(metric)} (axis from {max(0.0, low):.2f})")
    else:
        ax.set_ylabel(label(metric))
    ax.set_xticks(list(xs), [v.variant for v in rows], rotation=30 if len(rows) > 4 else 0, ha="right"
                  if len(rows) > 4 else "center")
    ax.set_title(f"{label(metric)} per variant (dots: seeds; *: test differs from the best)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def plot_dev_curves(results: list[RunResult], metric: str, path: Path) -> None:
    """Dev metric per epoch: thin lines for the runs, a bold line for each variant's mean over its seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    variants = list(dict.fromkeys(r.variant for r in results))
    colors = [f"C{i % 10}" for i in range(len(variants))]
    for variant, color in zip(variants, colors):
        curves = [[h.get("dev", {}).get(metric, math.nan) for h in r.history] for r in results
                  if r.variant == variant and r.history]
        for c in curves:
            ax.plot(range(1, len(c) + 1), c, color=color, alpha=0.3, lw=0.8)
        if curves:
            n = min(len(c) for c in curves)  # the epochs every seed has
            ax.plot(range(1, n + 1), [stats.mean([c[e] for c in curves]) for e in range(n)], color=color, lw=2,
                    marker="o", ms=3, label=f"{variant} ({len(curves)} seeds)")
    ax.set(xlabel="epoch", ylabel=f"dev {label(metric)}")
    ax.set_title(f"dev {label(metric)} per epoch (thin: each seed; bold: their mean)", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if variants:
        ax.legend(fontsize=8, ncol=2 if len(variants) > 8 else 1)
    fig.savefig(path, dpi=100)


def report(sweep_dir: str | Path, out_dir: str | Path | None = None, metric: str = "f1",
           alpha: float = 0.05) -> tuple[str, list[VariantStats]]:
    """Aggregate ``sweep_dir`` into ``out_dir`` (default: the sweep directory); the Markdown and the rows."""
    results, incomplete = collect(sweep_dir)
    if not results:
        raise SnluError(f"{sweep_dir}: no complete runs (<variant>/seed<N>/{COMPLETE}) to report on")
    rows = aggregate(results, metric, alpha)
    out = Path(out_dir or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, metric, alpha, incomplete)
    doc = (f"# Sweep report: {Path(sweep_dir).as_posix()}\n\n{len(results)} runs of {len(rows)} variants.\n\n"
           f"{table}\n![scores per variant](scores.png)\n\n![dev curves](dev_curves.png)\n")
    (out / "report.md").write_text(doc, encoding="utf-8")
    write_csv(rows, metric, out / "report.csv")
    write_runs_csv(results, metric, out / "runs.csv")
    plot_scores(rows, metric, out / "scores.png")
    plot_dev_curves(results, metric, out / "dev_curves.png")
    log.info("wrote report.md, report.csv, runs.csv, scores.png, dev_curves.png in %s", out)
    return table, rows
