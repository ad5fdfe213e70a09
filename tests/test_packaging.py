"""snlu as pip builds it: the wheel holds the recipes (snlu/recipes is a link to recipes/, whose files the build
copies), and an installed wheel runs a packaged recipe by name, and a user's recipe inheriting one, from a
folder of the user's own."""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

import processes
import pytest
from test_example_plugins import can_build_here

ROOT = Path(__file__).parents[1]


@pytest.mark.timeout(900)  # pip builds and installs the package
@pytest.mark.skipif(not can_build_here(), reason="pip would need an isolated build environment (a download)")
def test_the_wheel_ships_the_recipes_and_runs_them_by_name(tmp_path):
    source = tmp_path / "src"  # a copy: building in place would leave build/ and *.egg-info behind
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("snlu", "recipes"):
        shutil.copytree(ROOT / folder, source / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    assert (source / "snlu" / "recipes").is_symlink()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = processes.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                           str(source)], timeout=600, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("snlu-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {n.removeprefix("snlu/recipes/"): z.read(n) for n in z.namelist() if n.startswith("snlu/recipes/")}
    recipes = {p.relative_to(ROOT / "recipes").as_posix(): p.read_bytes() for p in (ROOT / "recipes").rglob("*.yaml")}
    assert shipped == recipes  # every recipe, as a file of its own

    site = tmp_path / "site"
    installed = processes.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], timeout=600,
                              cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.yaml").write_text("defaults: [fusion_raw_all.yaml]\ntrain: {epochs: 3}\n")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    code = ("import sys, snlu; print(snlu.__file__); from snlu.cli.train import entry; sys.argv[0] = 'snlu-train'; "
            "entry()")
    for args, expected in ((["fusion_raw_all"], "epochs: 20"), (["mine.yaml"], "epochs: 3")):
        r = processes.run([sys.executable, "-c", code, *args, "--print-config"], timeout=300, cwd=user, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.splitlines()[0] == str(site / "snlu" / "__init__.py")  # the wheel's snlu, not this tree's
        assert expected in r.stdout and "name: raw" in r.stdout
        assert f"the packaged {site / 'snlu' / 'recipes' / 'fusion_raw_all.yaml'}" in r.stderr
