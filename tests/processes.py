"""Processes a test starts, stopped however the test ends (passed, failed, timed out, Ctrl-C).

Each process starts in a session of its own; when the test is done with it, it is killed together with
every process it started: the members of its session (or process group) and all their descendants, which
may have sessions of their own (the sweep's trainers, torchrun's ranks). The tree is frozen with SIGSTOP
until no new member appears, then killed with SIGKILL, so nothing can fork away meanwhile.

    def test_x(procs):                        # the fixture (imported by tests/conftest.py): killed at teardown
        p = procs.start([sys.executable, ...], stderr=subprocess.PIPE, text=True)

    r = run([sys.executable, ...], timeout=300)   # like subprocess.run(capture_output=True, text=True)
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

PROC = Path("/proc")


def table() -> dict[int, tuple[int, int, int]]:
    """``pid -> (parent pid, process group, session)`` of every live process (zombies left out)."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        state, ppid, pgrp, session = text.rsplit(")", 1)[1].split()[:4]  # the name may hold spaces and ')'
        if state not in "ZX":
            out[int(entry.name)] = (int(ppid), int(pgrp), int(session))
    return out


def tree(leader: int, reaped: bool = False) -> set[int]:
    """The live processes of ``leader``'s session and process group, and all their descendants.

    A session or group id stays in use (its number is not given to a new process) while any member lives,
    so members found by id are ``leader``'s, even after ``leader`` itself has exited. Once ``leader`` is
    ``reaped`` its own pid may belong to a new process: then only the members count.
    """
    procs = table()
    found = {pid for pid, (_, pgrp, session) in procs.items()
             if (not reaped if pid == leader else leader in (pgrp, session))}
    while True:
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in found} - found
        if not more:
            return found
        found |= more


def kill_tree(leader: int, reaped: bool = False) -> set[int]:
    """Kill ``leader`` and every process it started (see :func:`tree`); the pids killed."""
    if not PROC.is_dir():  # no /proc: the process group is the best we can do
        try:
            os.killpg(leader, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return set()
    frozen: set[int] = set()
    while more := tree(leader, reaped) - frozen:  # freeze, then look again: a process may have forked meanwhile
        for pid in more:
            _send(pid, signal.SIGSTOP)
        frozen |= more
    for pid in frozen:
        _send(pid, signal.SIGKILL)
    return frozen


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # exited meanwhile
        pass


class Processes:
    """The processes one test started; :meth:`stop` (or leaving the ``with`` block) kills each one's tree."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen(cmd, **kwargs)`` in a session of its own (a Ctrl-C of pytest's terminal does not
        reach it: the test's signals are the only ones it gets)."""
        proc = subprocess.Popen(list(cmd), start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        """Kill every started process with all it started (even where the leader has exited), and reap them."""
        for proc in self.started:
            kill_tree(proc.pid, reaped=proc.poll() is not None)
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.started.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(cmd: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)``, except that on a
    timeout (TimeoutExpired) or any other exception the whole tree is killed, not only ``cmd``'s process."""
    with Processes() as procs:
        proc = procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Start a test's processes with ``procs.start(cmd, **popen_kwargs)``: at teardown (after a failure or a
    pytest-timeout too) each is killed with every process it started."""
    with Processes() as started:
        yield started
