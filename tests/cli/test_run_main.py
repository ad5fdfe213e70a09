"""What every command shares: a SnluError is one line and exit 2; Ctrl-C is ``interrupted`` and exit 130,
also for a command started with SIGINT ignored (as a shell starts a background job of a script)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from snlu.cli.common import run_main
from snlu.core.errors import SnluError


def test_an_snlu_error_is_one_line_and_exit_2(capsys):
    def main() -> int:
        raise SnluError("recipe.yaml: train.epochs: expected an integer")

    with pytest.raises(SystemExit) as e:
        run_main(main)
    assert e.value.code == 2 and capsys.readouterr().err == "error: recipe.yaml: train.epochs: expected an integer\n"


@pytest.mark.signals
@pytest.mark.parametrize("before", [signal.SIG_IGN, signal.default_int_handler], ids=["ignored", "default"])
def test_sigint_interrupts_whatever_the_parent_set(capsys, before):
    def main() -> int:
        os.kill(os.getpid(), signal.SIGINT)  # snlu-sweep stopping its snlu-train, or Ctrl-C
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # an ignored SIGINT ends here, with exit status 0
            time.sleep(0.1)
        return 0

    old = signal.signal(signal.SIGINT, before)
    try:
        with pytest.raises(SystemExit) as e:
            run_main(main)
        assert e.value.code == 130 and capsys.readouterr().err == "interrupted\n"
        assert signal.getsignal(signal.SIGINT) is before  # put back afterwards
    finally:
        signal.signal(signal.SIGINT, old)


def test_any_other_error_is_one_line_and_exit_2(capsys):
    def main() -> int:
        raise RuntimeError("Found no NVIDIA driver on your system.\nPlease check that you have an NVIDIA GPU")

    with pytest.raises(SystemExit) as e:
        run_main(main)
    assert e.value.code == 2 and capsys.readouterr().err == (
        "error: RuntimeError: Found no NVIDIA driver on your system. (--debug shows the traceback)\n")

    def in_a_worker() -> int:  # as torch re-raises a data-loader worker's error
        raise ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                         "last):\n  File \"x.py\", line 1\nValueError: bad sample")

    with pytest.raises(SystemExit) as e:
        run_main(in_a_worker)
    assert capsys.readouterr().err == "error: ValueError: bad sample (--debug shows the traceback)\n"
