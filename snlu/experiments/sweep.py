"""Ablation sweeps: one base recipe, variants (grids and/or a named list of overrides), several seeds.

A sweep file (YAML; recipe paths are relative to it)::

    recipe: ../fusion_raw_all.yaml      # every variant starts from this recipe
    seeds: [1, 2, 3]                    # each variant runs once per seed (the recipe's `seed`)
    overrides: [train.epochs=5]         # key=value for every run of every variant
    vars: {asr_run: runs/asr}           # `{asr_run}` in any override; snlu-sweep --var asr_run=DIR changes it
    grid:                               # each combination is a variant (a list of mappings: several grids)
      fusion.name: [raw, tokenized, concat]
      audio_tokenizer.name: [all, dpmask]
    variants:                           # named variants: their own overrides, optionally another recipe
      text_only: {recipe: ../text_only.yaml}
      audio_crf_coef=0: {overrides: [loss.audio_crf_coef=0]}

A grid variant is named by its values on the axes with several values, joined by ``-``: the value alone
for a ``*.name`` axis, ``leaf=value`` otherwise (``raw-all``, ``fusion_layer=2e-05``). A run's overrides
are the file's ``overrides``, then the variant's, then those of the command line, then ``seed=N``.

Each run is ``python -m snlu.cli.train RECIPE OVERRIDES --output-dir SWEEP_DIR/<variant>/seed<N>`` in
its own process (a crash stays in its run), its output in ``SWEEP_DIR/logs/<variant>.seed<N>.log``. A run
is complete when its ``metrics.json`` exists: a restarted sweep skips complete runs, and moves an
incomplete run directory aside (``<dir>.old-<timestamp>``, logged) before starting it again. A failed run
is reported and the others go on. ``SWEEP_DIR/sweep.json`` records every run's definition and outcome; a
restart refuses to mix in complete runs that were made with other settings.

Stopping: while :meth:`SweepRunner.run` runs (in the main thread), SIGINT (Ctrl-C) and SIGTERM stop the sweep,
whatever the parent process had set (a background job of a script starts with SIGINT ignored): no new runs,
and each running one gets exactly one SIGINT (snlu-train writes a checkpoint and stops); a second signal
passes another SIGINT on (the runs stop at once). Run the same sweep again to continue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from snlu.core.errors import SnluError
from snlu.experiments.sweep_file import COMPLETE, Run, Sweep
from snlu.rundir import move_aside

log = logging.getLogger("snlu")
RECORD = "sweep.json"


# ----------------------------------------------------------------------------- running


def train_command(run: Run) -> list[str]:
    """The training process of one run."""
    return [sys.executable, "-m", "snlu.cli.train", str(run.variant.recipe), *run.overrides,
            "--output-dir", str(run.dir)]


@dataclasses.dataclass
class Outcome:
    run: Run
    status: str  # complete (before this sweep), done, failed, interrupted, not started
    returncode: int | None = None
    minutes: float | None = None
    error: str = ""


class SweepRunner:
    """Runs the incomplete runs of ``sweep`` in ``out``, ``jobs`` processes at a time."""

    def __init__(self, sweep: Sweep, out: str | Path, jobs: int = 1,
                 command: Callable[[Run], list[str]] = train_command):
        if jobs < 1:
            raise SnluError(f"--jobs: must be >= 1, got {jobs}")
        self.sweep, self.out, self.jobs, self.command = sweep, Path(out), jobs, command
        self.runs = sweep.runs(self.out)
        self.lock = threading.Lock()
        self.procs: dict[Run, subprocess.Popen] = {}
        self.stopping = False
        self.record: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ what would happen

    def plan(self) -> list[tuple[Run, str]]:
        """``(run, state)`` for every run: complete, incomplete (will be moved aside) or new."""
        return [(r, "complete" if r.complete else "incomplete" if r.started else "new") for r in self.runs]

    def describe(self) -> str:
        lines = [f"{self.sweep.path}: {len(self.sweep.variants)} variants x {len(self.sweep.seeds)} seeds = "
                 f"{len(self.runs)} runs in {self.out}"]
        for run, state in self.plan():
            note = "  (moved aside, then started again)" if state == "incomplete" else ""
            lines.append(f"  [{state}] {run.name}: {shlex.join(self.command(run))}{note}")
        return "\n".join(lines)

    def check_record(self) -> None:
        """Refuse to continue a sweep whose complete runs were made with other settings than the file's now."""
        path = self.out / RECORD
        if not path.is_file():
            return
        old = {r["name"]: r for r in json.loads(path.read_text(encoding="utf-8")).get("runs", [])}
        changed = []
        for run in self.runs:
            before = old.get(run.name)
            now = self.definition(run)
            if run.complete and before and (before["recipe"], before["overrides"]) != (now["recipe"], now["overrides"]):
                changed.append(f"{run.name} (was {before['recipe']} {' '.join(before['overrides'])}; "
                               f"now {now['recipe']} {' '.join(now['overrides'])})")
        if changed:
            raise SnluError(f"{self.out}: {len(changed)} complete runs were made with other settings than the sweep's "
                            f"now: {'; '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}. Use another "
                            f"--output-dir, or move those run directories away to run them again")

    def definition(self, run: Run) -> dict[str, Any]:
        # the recipe relative to the sweep file: the record stays valid when the repository moves
        return {"name": run.name, "variant": run.variant.name, "seed": run.seed,
                "dir": os.path.relpath(run.dir, self.out),
                "recipe": os.path.relpath(run.variant.recipe, self.sweep.path.resolve().parent),
                "overrides": run.overrides}

    # ------------------------------------------------------------------ running

    def run(self) -> list[Outcome]:
        """Run what is not complete; one outcome per run, in the sweep's order."""
        self.check_record()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(exist_ok=True)
        outcomes = {r: Outcome(r, "complete") for r in self.runs if r.complete}
        for r in self.runs:
            self.record[r.name] = {**self.definition(r), "status": "complete" if r in outcomes else "pending"}
        self.save_record()
        todo = [r for r in self.runs if r not in outcomes]
        log.info("sweep %s: %d runs, %d complete already (skipped), %d to run, %d at a time -> %s",
                 self.sweep.path, len(self.runs), len(outcomes), len(todo), self.jobs, self.out)
        with interrupt_on_signals():
            pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sweep")
            futures = {pool.submit(self.execute, r, i + 1, len(todo)): r for i, r in enumerate(todo)}
            try:
                for fut in as_completed(futures):
                    outcomes[futures[fut]] = fut.result()
            except BaseException:  # Ctrl-C, SIGTERM, or a bug here: stop the runs, never leave them behind
                self.interrupt(pool)
                raise
            pool.shutdown()
        return [outcomes[r] for r in self.runs]

    def interrupt(self, pool: ThreadPoolExecutor) -> None:
        """Ctrl-C: no new runs; each running one gets one SIGINT (it writes a checkpoint and stops)."""
        with self.lock:  # a run starting now either is in self.procs already, or sees `stopping` (execute)
            self.stopping = True
            log.warning("interrupted: stopping %d running runs; run the same command again to continue the sweep",
                        len(self.procs))
        self.signal(signal.SIGINT)
        while True:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                return
            except KeyboardInterrupt:  # again: the trainers stop at once
                self.signal(signal.SIGINT)

    def signal(self, signum: int) -> None:
        with self.lock:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signum)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("TQDM_DISABLE", "1")  # progress bars would fill the log files; train.log has the epochs
        if self.jobs > 1:  # parallel runs would each start a thread per core
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.jobs)))
        return env

    def execute(self, run: Run, i: int, n: int) -> Outcome:
        """One run in its own process, its output in the run's log file."""
        if self.stopping:
            return Outcome(run, "not started")
        tag = f"[{i}/{n}] {run.name}"
        if run.started:
            log.warning("%s: incomplete (no %s): moving it aside to start again", tag, COMPLETE)
            move_aside(run.dir, why=f"sweep {run.name}")
        log_path = self.out / "logs" / f"{run.variant.name}.seed{run.seed}.log"
        cmd = self.command(run)
        log.info("%s: started (log %s)", tag, log_path)
        started = time.perf_counter()
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(f"=== {datetime.datetime.now().isoformat(timespec='seconds')} {shlex.join(cmd)}\n")
            f.flush()
            with self.lock:  # started and registered at once: interrupt() signals every run it starts
                if self.stopping:
                    return Outcome(run, "not started")
                # a session of its own: a Ctrl-C reaches the sweep only, which passes exactly one SIGINT on
                proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=self.env(), start_new_session=True)
                self.procs[run] = proc
            rc = proc.wait()
            with self.lock:
                del self.procs[run]
        minutes = (time.perf_counter() - started) / 60
        if rc == 0 and run.complete:
            out = Outcome(run, "done", rc, minutes)
            log.info("%s: done in %.1f min: %s", tag, minutes, summary(run.dir / COMPLETE))
        else:
            why = last_error(log_path) if rc else f"exited 0 without writing {COMPLETE}"
            out = Outcome(run, "interrupted" if self.stopping else "failed", rc, minutes, why)
            log.error("%s: %s (exit %s) after %.1f min: %s (log %s)", tag, out.status, rc, minutes, why, log_path)
        with self.lock:
            self.record[run.name].update(status=out.status, returncode=rc, minutes=round(minutes, 2),
                                         error=out.error, log=os.path.relpath(log_path, self.out))
            self.save_record()
        return out

    def save_record(self) -> None:
        data = {"sweep": str(self.sweep.path.resolve()), "source": self.sweep.path.read_text(encoding="utf-8"),
                "variants": [v.name for v in self.sweep.variants], "seeds": self.sweep.seeds,
                "runs": list(self.record.values())}
        tmp = self.out / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.out / RECORD)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, whatever the parent process had set.

    Explicit, because a process started with SIGINT ignored (a background job of a script) keeps ignoring
    it: Python installs its Ctrl-C handler only where SIGINT has its default action. SIGTERM (a scheduler
    stopping the job) stops the sweep as Ctrl-C does. The previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return

    def handle(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            if handler is not None:  # None: set outside Python, cannot be restored
                signal.signal(sig, handler)


def summary(metrics_path: Path) -> str:
    """``dev f1 0.5123, test f1 0.4987`` (or the CER of an ASR run) from a metrics.json."""
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    key = "f1" if "f1" in metrics.get("test", {}) else "cer"
    return ", ".join(f"{split} {key} {metrics[split][key]:.4f}" for split in ("dev", "test")
                     if key in metrics.get(split, {}))


def last_error(log_path: Path) -> str:
    """The ``error: ...`` line a failed snlu-train printed, else its last line."""
    lines = [x.strip() for x in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:") or "Error" in x.split(":", 1)[0]]
    return (errors or lines or ["no output"])[-1][:300]
