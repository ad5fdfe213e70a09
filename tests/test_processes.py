"""tests/processes.py: the processes a test starts, with all they start (in its session or in sessions of
their own, orphaned or not), are gone when the test ends: on an error, a subprocess timeout, an assertion
failure, and a pytest-timeout of a hanging test (run by a separate pytest, through pytester)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import Processes, run, table

pytestmark = pytest.mark.signals

# A process that starts two children, one in a session of its own (as the sweep's trainers and torchrun's
# ranks are) and one in the parent's session, writes the three pids to argv[1], then waits.
TREE = r"""
import os, subprocess, sys, time
sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
own, same = subprocess.Popen(sleep, start_new_session=True), subprocess.Popen(sleep)
open(sys.argv[1] + ".tmp", "w").write(f"{os.getpid()} {own.pid} {same.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def pids_in(path: Path, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)
    return [int(x) for x in path.read_text().split()]


def alive(pids: list[int], timeout: float = 30) -> list[int]:
    """Those of ``pids`` still running (not even a zombie) after waiting up to ``timeout`` for them to go."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if p in table()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill(pids: list[int]) -> None:
    """Clean up after a failed check: these are the test's own processes."""
    for pid in alive(pids, timeout=0):
        os.kill(pid, signal.SIGKILL)


def test_an_error_in_the_block_kills_the_whole_tree(tmp_path):
    pids: list[int] = []
    try:
        with pytest.raises(RuntimeError, match="the test failed"), Processes() as procs:
            procs.start([sys.executable, "-c", TREE, str(tmp_path / "pids")])
            pids = pids_in(tmp_path / "pids")
            assert alive(pids, timeout=0) == pids  # three processes, in two sessions
            raise RuntimeError("the test failed")
        assert alive(pids) == []
    finally:
        kill(pids)


# A process that starts a child in a session of its own, writes its pid to argv[1] and exits at once: the
# child is an orphan outside the test's session (as a sweep's trainers are after the sweep was killed).
ORPHANING = r"""
import subprocess, sys
orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(sys.argv[1], "w").write(str(orphan.pid))
"""


def test_an_orphan_in_a_session_of_its_own_is_found_by_its_environment(tmp_path):
    pids: list[int] = []
    try:
        with Processes() as procs:
            procs.start([sys.executable, "-c", ORPHANING, str(tmp_path / "pid")]).wait(timeout=120)
            pids = pids_in(tmp_path / "pid", timeout=0)
            assert alive(pids, timeout=0) == pids and table()[pids[0]][2] == pids[0]  # its own session
        assert alive(pids) == []
    finally:
        kill(pids)


def test_run_kills_the_whole_tree_on_a_timeout(tmp_path):
    pids: list[int] = []
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            run([sys.executable, "-c", TREE, str(tmp_path / "pids")], timeout=10)
        pids = pids_in(tmp_path / "pids", timeout=0)
        assert len(pids) == 3 and alive(pids) == []
    finally:
        kill(pids)


def test_run_returns_like_subprocess_run():
    r = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


FAILING_TESTS = """
import sys, time
from pathlib import Path
import pytest

TREE = TREE_CODE

def start(procs, name):
    path = Path(OUT_DIR) / name
    procs.start([sys.executable, "-c", TREE, str(path)])
    while not path.exists():
        time.sleep(0.05)

def test_fails(procs):
    start(procs, "fails.pids")
    assert False, "deliberately"

@pytest.mark.timeout(15)
def test_hangs(procs):
    start(procs, "hangs.pids")
    time.sleep(600)
"""


def test_a_failing_or_hanging_test_leaves_no_process_behind(pytester):
    out = pytester.path
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                          "from processes import procs  # noqa: F401\n")
    pytester.makepyfile(test_children=FAILING_TESTS.replace("TREE_CODE", repr(TREE)).replace("OUT_DIR", repr(str(out))))
    pids = []
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
        pids = [p for name in ("fails", "hangs") for p in pids_in(out / f"{name}.pids", timeout=0)]
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(["*AssertionError: deliberately*", "*Timeout (>15.0s) from pytest-timeout*"])
        assert len(pids) == 6 and alive(pids) == []
    finally:
        kill(pids)
