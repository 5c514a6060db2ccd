import json
import os

import pytest

from jaxcrn._cli import main


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_reproduce_iris_subset_schema(tmp_path, capsys):
    code = main(
        [
            "reproduce",
            "iris",
            "--limit",
            "10",
            "--out",
            str(tmp_path),
            "--quiet",
            "--no-figures",
            "--models",
            os.path.join(ROOT, "experiments", "models"),
            "--solver",
            "tsit5",
            "--t1",
            "150",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    r = json.loads((tmp_path / "iris.json").read_text())
    for key in (
        "dataset",
        "layers",
        "n_examples",
        "nn_accuracy",
        "crn_accuracy",
        "agreement",
        "max_abs_error",
        "counts",
        "t1",
        "wall_s",
        "convergence",
    ):
        assert key in r
    assert r["layers"] == [4, 8, 3] and r["n_examples"] == 10
    for k in ("full", "reduced"):
        assert r["agreement"][k] == 10
        assert set(r["counts"][k]) >= {
            "species",
            "reactions",
            "bimolecular",
            "max_product_stoichiometry",
        }
        conv = r["convergence"][k]
        assert set(conv["eps_0.001"]) >= {"median", "p90", "max"}
        assert conv["argmax_stable"]["median"] is not None
    assert r["counts"]["full"]["reactions"] == 40
    assert r["counts"]["reduced"]["reactions"] == 16
    table = (tmp_path / "table.md").read_text()
    assert "| CRN-NN argmax agreement" in table and "10/10 / 10/10" in table
    # results are never overwritten without --force
    assert main(["reproduce", "iris", "--out", str(tmp_path), "--quiet"]) == 2


@pytest.mark.slow
def test_demo_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith(("full CRN", "reduced CRN"))]
    assert len(rows) == 2 and all("150/150" in ln for ln in rows)
    assert (tmp_path / "demo" / "iris_traces.png").exists()
    assert "wrote demo/iris_traces.png" in out
    before = (tmp_path / "demo" / "iris_traces.png").read_bytes()
    assert main(["demo", "--no-train", "--quiet"]) == 2  # never overwrites
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / "demo" / "iris_traces.png").read_bytes() == before
    assert main(["demo", "--no-train", "--quiet", "--force"]) == 0
    assert os.listdir(tmp_path / "demo") == ["iris_traces.png"]


@pytest.mark.slow
def test_notebook_runs_top_to_bottom():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(
        os.path.join(ROOT, "experiments", "notebooks", "quickstart.ipynb"), 4
    )
    assert len(nb.cells) <= 12
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    ).execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "argmax agreement 150/150" in text
