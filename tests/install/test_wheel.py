"""The installed package is self-contained: a wheel carries the HLS kernel library (the link
abcn_hw/backend/hls_include -> hls/include/abcn), the backend glue, the bundled dataset and the licence,
and a project generated from the installed copy uses the installed kernels."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_kernel_link_matches_the_library():
    from abcn_hw.backend.project import KERNEL_DIR

    lib = ROOT / "hls" / "include" / "abcn"
    names = sorted(p.name for p in lib.glob("*.hpp"))
    assert names and "abcn.hpp" in names
    assert sorted(p.name for p in KERNEL_DIR.glob("*.hpp")) == names
    for n in names:
        assert (KERNEL_DIR / n).read_bytes() == (lib / n).read_bytes(), n


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a clean copy of the sources (no stale build/ of the working tree)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("abcn_hw", "hls"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=skip)
    assert (src / "abcn_hw" / "backend" / "hls_include").is_symlink()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("abcn_hw-*.whl")
    return whl


def test_wheel_contains_kernels_data_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for hpp in (ROOT / "hls" / "include" / "abcn").glob("*.hpp"):
        assert f"abcn_hw/backend/hls_include/{hpp.name}" in names, hpp.name
    assert "abcn_hw/backend/templates/abcn_backend.hpp" in names
    assert any(n.startswith("abcn_hw/data/mnist_subset/") and n.endswith(".gz") for n in names)
    assert any(n.endswith("PROVENANCE.md") for n in names)
    assert any(n.endswith("/licenses/LICENSE") or n.endswith("/LICENSE") for n in names)


def test_compile_from_installed_copy(wheel, tmp_path):
    """Unpack the wheel as an installed package and compile a model with it: the generated project
    carries the installed kernel files, byte for byte."""
    sys.path.insert(0, str(ROOT / "tests" / "backend"))
    try:
        from _models import abc_net
    finally:
        sys.path.pop(0)
    spec = dict(convs=[(4, 3, 1, 0)], m=[1, 2], n=[None, 2], hw=6, pool=None, classes=3)
    model, _ = abc_net(spec, str(tmp_path / "m.onnx"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import abcn_hw.backend.project as p\n"
        "from abcn_hw.backend import compile\n"
        "assert str(p.KERNEL_DIR).startswith(sys.argv[1]), p.KERNEL_DIR\n"
        "assert not p.KERNEL_DIR.is_symlink()\n"
        "compile(sys.argv[2], sys.argv[3])\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(site), model, str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    installed = site / "abcn_hw" / "backend" / "hls_include"
    for hpp in installed.glob("*.hpp"):
        assert (tmp_path / "b" / "include" / "abcn" / hpp.name).read_bytes() == hpp.read_bytes()
    assert (tmp_path / "b" / "include" / "abcn" / "abcn.hpp").is_file()
