"""What every command shares: one-line errors for the library's own error types."""

from __future__ import annotations

import sys
from collections.abc import Callable

from snlu.errors import SnluError


def one_line(error: Exception) -> str:
    """The message of ``error``; for one re-raised from a data-loader worker (which wraps it in the
    worker's traceback), the original message alone."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith("snlu.errors.") else last
    return text


def run_main(main: Callable[[], int | None], debug: bool = False) -> None:
    """Run ``main``; a SnluError prints one line (no traceback unless ``--debug``) and exits 2."""
    debug = debug or "--debug" in sys.argv
    try:
        code = main()
    except SnluError as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
