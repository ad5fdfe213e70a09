"""The glibc mmap-threshold fix (checked in a subprocess: it changes the allocator of the process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from snlu.training.memory import fix_mmap_threshold; print(fix_mmap_threshold())"


def run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_sets_threshold_on_glibc():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert run(env) == str((os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"))


def test_environment_setting_wins():
    assert run({**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}) == "False"
