"""The ``snlu-predict`` and ``snlu-eval`` console scripts: an exported folder (snlu-export's) runs through
snlu/cli/exported.py, torch-free; any other model folder through the eager commands (snlu/cli/predict.py,
snlu/cli/eval.py), imported only then.

    python -m snlu.cli.entry predict|eval MODEL_DIR --data ...
"""

from __future__ import annotations

import sys

from snlu.cli.common import run_main
from snlu.cli.exported import eval_main, exported_model_in, predict_main


def predict_entry() -> None:
    """The ``snlu-predict`` console script: here for an exported folder, else the eager command."""
    if exported_model_in(sys.argv[1:]):
        run_main(predict_main)
    from snlu.cli.predict import entry

    entry()


def eval_entry() -> None:
    """The ``snlu-eval`` console script: here for an exported folder, else the eager command."""
    if exported_model_in(sys.argv[1:]):
        run_main(eval_main)
    from snlu.cli.eval import entry

    entry()


if __name__ == "__main__":  # python -m snlu.cli.entry predict|eval ARGS
    command = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if command not in ("predict", "eval"):
        sys.exit("usage: python -m snlu.cli.entry predict|eval EXPORTED_DIR --data ... (see snlu-predict -h)")
    (predict_entry if command == "predict" else eval_entry)()
