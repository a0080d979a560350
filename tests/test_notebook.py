"""docs/tutorial.ipynb: stored without outputs, and executed top to bottom in a fresh kernel (nbclient).

The fast suite runs it with fewer epochs, settings and images (its parameter cell replaced, as
papermill would); the slow suite runs it exactly as shipped."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
REDUCED = {"EPOCHS": 1, "SETTINGS": [(1, 1), (3, 3)], "LIMIT_TRAIN": 1000, "LIMIT_TEST": 500, "IMAGES": 300,
           "SEED": 0, "OUT": "runs/tutorial"}


def _tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def _text(cell) -> str:
    return "".join(o.get("text", "") if o.output_type == "stream" else "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NB, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert len(_tagged(nb, "parameters")) == 1 and len(_tagged(nb, "verify")) == 1
    params = _tagged(nb, "parameters")[0].source
    for name in REDUCED:  # the reduced run replaces exactly the shipped parameters
        assert f"\n{name} = " in "\n" + params, name


def run_notebook(workdir: Path, params: dict | None):
    nb = nbformat.read(NB, as_version=4)
    if params is not None:
        _tagged(nb, "parameters")[0].source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    client = nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    t0 = time.time()
    client.execute()
    return nb, time.time() - t0


def check_executed(nb, workdir: Path) -> None:
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    verify = _text(_tagged(nb, "verify")[0])
    assert "verify: PASS" in verify and "csim vs lowered graph: bit-exact" in verify, verify
    assert "lowered vs exported: 100.000% outputs bit-equal" in verify, verify
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 2  # accuracy/memory/energy bars and the design-space picture
    tables = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "XNOR-popcount bit ops" in tables and "Pareto-optimal" in tables
    assert (workdir / "runs" / "tutorial" / "build" / "report.json").is_file()


def test_notebook_runs_reduced(tmp_path):
    nb, seconds = run_notebook(tmp_path, REDUCED)
    check_executed(nb, tmp_path)
    print(f"reduced notebook run: {seconds:.0f} s")


@pytest.mark.slow
def test_notebook_runs_as_shipped(tmp_path):
    nb, seconds = run_notebook(tmp_path, None)
    check_executed(nb, tmp_path)
    print(f"notebook run as shipped: {seconds:.0f} s")
