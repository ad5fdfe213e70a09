"""Dev curves of several runs in one figure: the main metric of each epoch's dev evaluation (history.json), one
line per run, for comparing recipe variants (docs/speech.md's ASR ablation).

    python benchmarks/dev_curves.py RUN_DIR[=LABEL] ... --out docs/images/asr_ablation.png [--metric cer]
        [--series LABEL=v1,v2,...]   # a curve given by its values (a run whose folder is gone)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def dev_curve(run: Path, metric: str) -> list[float]:
    """The dev ``metric`` of each epoch of ``run`` (its history.json), in epoch order."""
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    return [epoch["dev"][metric] for epoch in history if metric in epoch.get("dev", {})]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="RUN_DIR or RUN_DIR=LABEL")
    p.add_argument("--series", action="append", default=[], help="LABEL=v1,v2,... (values per epoch)")
    p.add_argument("--metric", default="cer")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    a = p.parse_args()
    curves: list[tuple[str, list[float]]] = []
    for s in a.series:
        label, _, values = s.partition("=")
        curves.append((label, [float(v) for v in values.split(",")]))
    for item in a.runs:
        path, _, label = item.partition("=")
        curves.append((label or Path(path).name, dev_curve(Path(path), a.metric)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, values in curves:
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        print(f"{label:50s} " + " ".join(f"{v:.3f}" for v in values))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"dev {a.metric}")
    ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
