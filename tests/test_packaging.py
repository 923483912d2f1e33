"""An installed wheel carries what a checkout has beside its code: the default ladder, the bundled
ladders and goldsets, found by name from any folder (issue 16: they were only found in a checkout)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.environment import SHARE, SOURCE_ROOT

SHIPPED = ("ladder.toml", "ladders", "goldsets")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the source (so the checkout gets no build folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "harness", "backends", *SHIPPED):
        path = SOURCE_ROOT / name
        copy = shutil.copytree if path.is_dir() else shutil.copy
        copy(path, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if path.is_dir() else {}))
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)]
    subprocess.run(pip, check=True, capture_output=True, text=True)
    return next(out.glob("tunebench-*.whl"))


def test_the_wheel_carries_every_shipped_file(wheel):
    data = "/".join(("data", *SHARE))
    inside = {n.split(f"{data}/", 1)[1] for n in zipfile.ZipFile(wheel).namelist() if f"{data}/" in n}
    expected = {"ladder.toml"} | {p.relative_to(SOURCE_ROOT).as_posix() for d in SHIPPED[1:] for p in (SOURCE_ROOT / d).rglob("*") if p.is_file()}
    assert expected - inside == set(), "add them to [tool.setuptools.data-files] in pyproject.toml"


def test_an_installed_wheel_finds_its_ladders_and_goldsets_by_name(wheel, tmp_path):
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(site.getsitepackages()[0] + "\n")  # torch & co. from this environment
    # --ignore-installed: without it pip uninstalls this environment's tunebench first
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(env), str(wheel)], check=True, capture_output=True)
    code = (
        "import harness; from harness.data.resolve import resolve_goldset; from harness.ladder.schema import find_ladder, resolve_ladder\n"
        "print(harness.__file__); print(len(resolve_goldset('demo').corpus)); print(find_ladder('demo')); print(resolve_ladder(None).source)"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a PYTHONPATH checkout would shadow the wheel
    out = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True, env=clean).stdout.splitlines()
    share = env.joinpath(*SHARE)
    assert out[0].startswith(purelib), "the test must import the installed wheel, not the checkout"
    assert out[1] == "312"
    assert Path(out[2]) == share / "ladders" / "demo.toml"
    assert Path(out[3]) == share / "ladder.toml"
