"""Processes a test starts, stopped however the test ends (passed, failed, timed out, Ctrl-C).

Each process starts in a session of its own, with a tag in its environment that its descendants inherit.
When the test is done with them, every process they started is killed too: the members of their sessions
and process groups, all their descendants, and every process carrying the tag, which finds those that have
sessions of their own and lost their parent (a sweep's trainers after the sweep died, torchrun's ranks after
torchrun died). They are frozen with SIGSTOP until no new one appears, then killed with SIGKILL, so nothing
can fork away meanwhile.

    def test_x(procs):                        # the fixture (imported by tests/conftest.py): killed at teardown
        p = procs.start([sys.executable, ...], stderr=subprocess.PIPE, text=True)

    r = run([sys.executable, ...], timeout=300)   # like subprocess.run(capture_output=True, text=True)
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

PROC = Path("/proc")
TAG = "SNLU_TEST_PROCESSES"  # the environment variable that marks a test's processes and their descendants


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


def tree(leader: int, reaped: bool = False, procs: dict[int, tuple[int, int, int]] | None = None) -> set[int]:
    """The live processes of ``leader``'s session and process group, and all their descendants.

    A session or group id stays in use (its number is not given to a new process) while any member lives,
    so members found by id are ``leader``'s, even after ``leader`` itself has exited. Once ``leader`` is
    ``reaped`` its own pid may belong to a new process: then only the members count.
    """
    procs = table() if procs is None else procs
    found = {pid for pid, (_, pgrp, session) in procs.items()
             if (not reaped if pid == leader else leader in (pgrp, session))}
    while True:
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in found} - found
        if not more:
            return found
        found |= more


def tagged(tag: str, procs: dict[int, tuple[int, int, int]] | None = None) -> set[int]:
    """The live processes whose environment holds ``TAG=tag`` (inherited from the process a test started, or
    from this one: a test that sets ``os.environ[TAG]`` tags what the code it calls starts), this one left out."""
    entry = f"\0{TAG}={tag}\0".encode()
    found = set()
    for pid in table() if procs is None else procs:
        if pid == os.getpid():
            continue
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        if entry in b"\0" + environ:
            found.add(pid)
    return found


def kill_all(find: Callable[[], set[int]]) -> set[int]:
    """Freeze what ``find`` returns (SIGSTOP) until it returns nothing new, then kill it all; the pids killed."""
    frozen: set[int] = set()
    while more := find() - frozen:  # look again after freezing: a process may have forked meanwhile
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
    """The processes one test started; :meth:`stop` (or leaving the ``with`` block) kills all they started."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex}"

    def start(self, cmd: Sequence[str], env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen(cmd, env=env, **kwargs)`` in a session of its own (a Ctrl-C of pytest's terminal
        does not reach it: the test's signals are the only ones it gets), tagged in its environment."""
        env = {**(os.environ if env is None else env), TAG: self.tag}
        proc = subprocess.Popen(list(cmd), env=env, start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def stop(self) -> set[int]:
        """Kill every started process with all it started (even where it has exited), reap them; the pids killed."""
        if PROC.is_dir():
            reaped = {proc.pid: proc.poll() is not None for proc in self.started}

            def members() -> set[int]:
                procs = table()
                return tagged(self.tag, procs).union(*(tree(pid, done, procs) for pid, done in reaped.items()))

            killed = kill_all(members)
        else:  # no /proc: the process groups are the best we can do
            killed = set()
            for proc in self.started:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.started:
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.started.clear()
        return killed

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(cmd: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)``, except that on a
    timeout (TimeoutExpired) or any other exception all it started is killed, not only ``cmd``'s process."""
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
