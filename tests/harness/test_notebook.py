"""notebooks/smoke_analysis.ipynb, executed (nbclient, python3 kernel) on a fresh smoke run: it loads the
runs through harness.pipeline.results (the one results function) and prints the same table as the report."""

import nbformat
import pytest
from conftest import cli
from nbclient import NotebookClient

pytestmark = pytest.mark.slow


def test_notebook_reproduces_the_smoke_table_and_figure(root, tmp_path, monkeypatch):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # the CLI's variable
    monkeypatch.setenv("HARNESS_SUITE", "smoke")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    nb = nbformat.read(root / "notebooks" / "smoke_analysis.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root / "notebooks")}}).execute()

    def outputs(tag: str) -> list:
        return next(c for c in nb.cells if tag in c.metadata.get("tags", [])).outputs

    printed = "".join(o.get("text", "") for o in outputs("table") if o.output_type == "stream").strip()
    report = (tmp_path / "reports" / "smoke" / "report.md").read_text()
    section = report.split("## Exact match by test length (addition)\n\n")[1].split("\n\n")[0]
    assert printed == section and printed.count("\n") == 3  # header, rule, abs, rel_k
    assert any("image/png" in o.get("data", {}) for o in outputs("figure"))
