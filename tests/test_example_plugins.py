"""The example plugins in plugins/ are real packages: pip builds and installs each, and once installed snlu
finds it through the ``snlu.plugins`` entry-point group without any recipe naming it. (Their own tests, in
plugins/*/tests, check their contracts and train their recipes.)"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import processes
import pytest

ROOT = Path(__file__).parents[1]
PLUGINS = {  # folder -> (module, registry, component)
    "gated_fusion": ("snlu_gated_fusion", "fusions", "gated"),
    "segment_pool": ("snlu_segment_pool", "audio_tokenizers", "segmean"),
}
PROBE = ("import json, snlu.plugins as p; from snlu.registry import REGISTRIES; p.load_builtins(); "
         "print(json.dumps({'loaded': p.LOADED, 'names': {k: r.names() for k, r in REGISTRIES.items()}}))")


def can_build_here() -> bool:
    """Whether the installed setuptools builds wheels by itself (>= 70.1, or with ``wheel``): then pip needs no
    isolated build environment, and downloads nothing."""
    try:
        version = tuple(int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.timeout(900)  # pip builds and installs two packages
def test_example_plugins_install_and_register_through_entry_points(tmp_path):
    site = tmp_path / "site"
    sources = tmp_path / "src"  # a copy: building in place would leave build/ and *.egg-info in plugins/
    for name in PLUGINS:
        shutil.copytree(ROOT / "plugins" / name, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
    isolation = ["--no-build-isolation"] if can_build_here() else []
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", *isolation,
           "--target", str(site), *(str(sources / name) for name in PLUGINS)]
    done = processes.run(pip, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    probe = processes.run([sys.executable, "-c", PROBE], timeout=120, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    for name, (module, kind, component) in PLUGINS.items():
        assert found["loaded"][name] == {"source": f"entry point {module}", "version": "0.1.0"}
        assert component in found["names"][kind]
    # without the installed packages on the path, nothing registers them
    env["PYTHONPATH"] = ""
    bare = processes.run([sys.executable, "-c", PROBE], timeout=120, cwd=tmp_path, env=env)
    assert "gated" not in json.loads(bare.stdout.strip().splitlines()[-1])["names"]["fusions"]
