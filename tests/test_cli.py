import json
import os

import numpy as np
import pytest

from jaxcrn import load_crn, parse_crn
from jaxcrn._cli import main


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
IRIS_MODEL = os.path.join(ROOT, "experiments", "models", "iris.npz")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_example_table(capsys):
    code, out, err = run(capsys, "simulate", os.path.join(EXAMPLES, "reversible.crn"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["species", "initial", "final"]
    final = {ln.split()[0]: float(ln.split()[2]) for ln in lines[2:6]}
    # A + B <=> C -> D with A0 = 1, B0 = 2: all of A ends up in D
    assert final["D"] == pytest.approx(1.0, abs=1e-6)
    assert final["B"] == pytest.approx(1.0, abs=1e-6)
    assert "converged at t =" in out


def test_simulate_json_schema(capsys):
    code, out, _ = run(
        capsys,
        "simulate",
        os.path.join(EXAMPLES, "reversible.crn"),
        "--json",
        "--set",
        "B=3",
        "--t1",
        "80",
    )
    assert code == 0
    obj = json.loads(out)
    assert set(obj) >= {"t1", "final", "converged", "t_converged"}
    assert obj["t1"] == 80 and obj["converged"] is True
    assert obj["final"]["D"] == pytest.approx(1.0, abs=1e-6)
    assert obj["final"]["B"] == pytest.approx(2.0, abs=1e-6)


def test_simulate_inputs_json(capsys):
    code, out, _ = run(
        capsys,
        "simulate",
        os.path.join(EXAMPLES, "relu.crn"),
        "--inputs",
        os.path.join(EXAMPLES, "relu_inputs.csv"),
        "--json",
        "--t1",
        "60",
        "--solver",
        "tsit5",
    )
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [r["input"] for r in rows] == [[-1.5], [0.25], [2.0]]
    np.testing.assert_allclose([r["outputs"][0] for r in rows], [0, 0.25, 2], atol=1e-4)
    assert all(r["argmax"] == 0 and r["converged"] for r in rows)
    assert rows[0]["t_converged"] == 0.0  # relu(-1.5) = 0 from the start


@pytest.mark.parametrize(
    "content, message",
    [
        ("A + -> B\n", 'line 1: "A \\+ -> B": expected a species name after'),
        ("A -> B\ninit A = -2\n", "line 2"),
    ],
)
def test_bad_crn_file_exits_2_with_one_line_per_error(
    capsys, tmp_path, content, message
):
    import re

    path = tmp_path / "bad.crn"
    path.write_text(content)
    code, out, err = run(capsys, "simulate", path)
    assert code == 2 and out == ""
    assert re.search(message, err) and str(path) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_csv(capsys, tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("x\n1.0\nabc\n")
    code, _, err = run(
        capsys, "simulate", os.path.join(EXAMPLES, "relu.crn"), "--inputs", csv
    )
    assert code == 2 and "line 3: 'abc' is not a number" in err
    csv.write_text("1.0,2.0\n")
    code, _, err = run(
        capsys, "simulate", os.path.join(EXAMPLES, "relu.crn"), "--inputs", csv
    )
    assert code == 2 and "2 values, but the network has 1 inputs" in err


def test_bad_values(capsys):
    crn = os.path.join(EXAMPLES, "reversible.crn")
    assert run(capsys, "simulate", crn, "--set", "Q=1")[0] == 2
    assert run(capsys, "simulate", crn, "--set", "A=-1")[0] == 2
    code, _, err = run(capsys, "simulate", crn, "--t1", "-5")
    assert code == 2 and "--t1 must be a positive number" in err
    code, _, err = run(capsys, "simulate", "no/such/file.crn")
    assert code == 2 and "no such file" in err


def test_compile_and_export_never_overwrite(capsys, tmp_path):
    out = tmp_path / "iris.crn"
    code, text, err = run(capsys, "compile", IRIS_MODEL, "-o", out, "--reduce")
    assert code == 0, err
    assert "reactions (all)" in text and "non-competitive: yes" in text
    counts = {ln.split()[0]: ln.split()[-2:] for ln in text.splitlines()[2:4]}
    assert counts["species"] == ["54", "30"]
    assert text.splitlines()[3].split()[-2:] == ["40", "16"]
    crn = load_crn(out)
    assert len(crn.reactions) == 16 and len(crn.inputs) == 4
    before = out.read_text()
    code, _, err = run(capsys, "compile", IRIS_MODEL, "-o", out)
    assert code == 2 and "already exists" in err and out.read_text() == before
    xml = tmp_path / "iris.xml"
    assert run(capsys, "export", out, "--sbml", xml)[0] == 0
    assert run(capsys, "export", out, "--sbml", xml)[0] == 2
    assert run(capsys, "export", out, "--sbml", xml, "--force")[0] == 0
    assert xml.read_text().count("<reaction ") == 16


def test_verify_iris_subset(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = run(
        capsys,
        "verify",
        IRIS_MODEL,
        "iris",
        "--limit",
        "10",
        "--t1",
        "150",
        "--json",
        report,
        "--quiet",
        "--solver",
        "tsit5",
    )
    assert code == 0, err
    obj = json.loads(report.read_text())
    assert obj["n_examples"] == 10 and obj["layers"] == [4, 8, 3]
    for name in ("full", "reduced"):
        assert obj["crn"][name]["agreement"] == 10
        assert obj["crn"][name]["max_abs_error"] < 1e-3
    assert obj["crn"]["reduced"]["counts"]["reactions"] == 16
    assert "10/10" in out


def test_simulated_crn_file_matches_network(capsys, tmp_path):
    """`jaxcrn simulate net.crn --inputs x.csv` works on a compiled network."""
    from jaxcrn import datasets, forward, load_model

    crn_path = tmp_path / "iris.crn"
    run(capsys, "compile", IRIS_MODEL, "-o", crn_path)
    x = datasets.iris().test.x[[0, 60, 120]]
    csv = tmp_path / "x.csv"
    header = ",".join(s.name for s in parse_crn(crn_path.read_text()).inputs)
    rows = "\n".join(",".join(repr(float(v)) for v in r) for r in x)
    csv.write_text(header + "\n" + rows)
    code, out, _ = run(
        capsys,
        "simulate",
        crn_path,
        "--inputs",
        csv,
        "--json",
        "--t1",
        "150",
        "--solver",
        "tsit5",
    )
    assert code == 0
    rows = json.loads(out)["rows"]
    expected = forward(load_model(IRIS_MODEL), x)
    assert [r["argmax"] for r in rows] == expected.argmax(1).tolist()


def test_help_is_fast_and_imports_no_jax():
    """`jaxcrn --help` and `import jaxcrn` do not import JAX (the API is lazy)."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, jaxcrn; from jaxcrn._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'jax' not in sys.modules, 'jax imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
        "jaxcrn.CRN, jaxcrn.simulate_batch, jaxcrn.datasets\n"
        "assert 'jax' in sys.modules\n"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: jaxcrn" in proc.stdout
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxcrn", "--help"], capture_output=True)
    assert time.perf_counter() - start < 1.0


def test_public_api_resolves():
    import jaxcrn

    assert set(jaxcrn.__all__) <= set(dir(jaxcrn))
    for name in jaxcrn.__all__:
        assert getattr(jaxcrn, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxcrn.nope  # noqa: B018
