"""What every command shares: one-line errors for the library's own error types, Ctrl-C, and the command
line of the commands that take files and ``key=value`` overrides (anywhere on the line, among the options)."""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from snlu.core.errors import ConfigError, SnluError

# An override's key: a dotted recipe key path (``train.epochs``, ``data.train``, ``plugins[0]``); no '/',
# so a file path that happens to contain '=' (a sweep run's ``lr=2e-05/`` folder) stays a path.
OVERRIDE_KEY = re.compile(r"[\w\-\[\]]+(\.[\w\-\[\]]+)*")


def one_line(error: Exception) -> str:
    """The message of ``error``; for one re-raised from a data-loader worker (which wraps it in the
    worker's traceback), the original message alone."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith("snlu.core.errors.") else last
    return text


def unexpected(error: Exception) -> str:
    """One line for an exception that is not snlu's own: its type and first line, and where the rest is."""
    text = one_line(error).strip()
    first, name = text.splitlines()[0] if text else "", type(error).__name__
    if not first.startswith(f"{name}: "):  # (a data-loader worker's error already names its type)
        first = f"{name}: {first}" if first else name
    return f"{first} (--debug shows the traceback)"


def is_override(item: str) -> bool:
    """Whether a command-line word is a ``key=value`` override (rather than a file)."""
    key, sep, _ = item.partition("=")
    return bool(sep) and OVERRIDE_KEY.fullmatch(key) is not None


def parse_intermixed(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``p.parse_args``, but positionals (files, ``key=value`` overrides) may come before, between and
    after the options: ``RECIPE --print-config k=v`` and ``--print-config RECIPE k=v`` both work. An
    option's own value (``--output-dir runs/a=b``, ``--var lr=1e-3``) is never taken as an override."""
    return p.parse_intermixed_args(argv)


def split_positionals(items: list[str], what: str, most: int | None = 1) -> tuple[list[str], list[str]]:
    """The positional words split into files (``what``: "recipe", "sweep") and overrides, each in
    order. A word that is neither (no '=', no such file, not a .yaml name, not a packaged recipe's name such as
    ``fusion_raw_all``), or a file beyond the first ``most``, is a one-line error."""
    from snlu.config import packaged_recipe  # (here: the exported models' torch-free commands import this module)

    files = [x for x in items if not is_override(x)]
    overrides = [x for x in items if is_override(x)]
    known = {f for f in files if Path(f).is_file() or packaged_recipe(f) is not None}
    named = sorted(files, key=lambda f: f not in known)  # existing files first: the others are typos
    odd = [f for f in named if f not in known and Path(f).suffix not in (".yaml", ".yml")]
    if odd:
        raise ConfigError(f"'{odd[0]}': neither a {what} file nor a key=value override (e.g. train.epochs=2)")
    if most is not None and len(named) > most:
        raise ConfigError(f"'{named[most]}': expected a key=value override (e.g. train.epochs=2): "
                          f"one {what} only{f', {named[0]}' if most else ''}")
    return files, overrides


def run_main(main: Callable[[], int | None], debug: bool = False) -> None:
    """Run ``main``; an error prints one line (no traceback unless ``--debug``) and exits 2: a SnluError its
    message, any other exception (raised by a component or a library while building or training) its type and
    first line; SIGINT (Ctrl-C) prints ``interrupted`` and exits 130, also where the command was started with
    SIGINT ignored."""
    debug = debug or "--debug" in sys.argv
    try:
        with sigint_interrupts():
            code = main()
    except SnluError as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        if debug:
            raise
        print(f"error: {unexpected(e)}", file=sys.stderr)
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
