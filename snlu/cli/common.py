"""What every command shares: one-line errors for the library's own error types, and Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

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
    """Run ``main``; a SnluError prints one line (no traceback unless ``--debug``) and exits 2; SIGINT (Ctrl-C)
    prints ``interrupted`` and exits 130, also where the command was started with SIGINT ignored."""
    debug = debug or "--debug" in sys.argv
    try:
        with sigint_interrupts():
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


@contextlib.contextmanager
def sigint_interrupts() -> Iterator[None]:
    """While active (in the main thread), SIGINT raises KeyboardInterrupt, whatever the parent process had set.

    A process started with SIGINT ignored (a background job of a script, ``... &``) keeps ignoring it, as
    Python then installs no Ctrl-C handler; but snlu-sweep stops a run by sending its snlu-train one SIGINT,
    at any time, so every command installs the handler itself. The previous handler comes back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if old is not None:  # None: set outside Python, cannot be restored
            signal.signal(signal.SIGINT, old)
