import json
import os

import numpy as np
import pytest

from jaxcrn import load_crn, parse_crn, to_sbml
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
    assert "steady state from t =" in out


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
    assert set(obj) == {
        "t1",
        "status",
        "final",
        "outputs",
        "steady_state",
        "t_steady",
        "solver_steps",
    }
    assert obj["t1"] == 80 and obj["steady_state"] is True and obj["status"] == "ok"
    assert 0 < obj["t_steady"] < 80
    assert obj["final"]["D"] == pytest.approx(1.0, abs=1e-6)
    assert obj["final"]["B"] == pytest.approx(2.0, abs=1e-6)


@pytest.mark.slow
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
    assert [r["line"] for r in rows] == [2, 3, 4]
    np.testing.assert_allclose([r["outputs"][0] for r in rows], [0, 0.25, 2], atol=1e-4)
    assert all(r["argmax"] == 0 and r["steady_state"] for r in rows)
    assert all(r["status"] == "ok" for r in rows)
    assert rows[0]["settling_time"] == 0.0  # relu(-1.5) = 0 from the start
    assert all(0 <= r["settling_time"] <= 60 for r in rows)
    assert "converged" not in rows[0] and "t_converged" not in rows[0]


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


@pytest.mark.slow
def test_valid_csv_with_a_byte_order_mark_and_crlf(capsys, tmp_path):
    """A CSV as Excel writes it (BOM, CRLF) simulates like the plain one."""
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    plain.write_text("x\n-1.5\n2\n")
    excel.write_bytes("\ufeffx\r\n-1.5\r\n2\r\n".encode())
    outs = []
    for csv in (plain, excel):
        code, out, err = run(capsys, "simulate", RELU, "--inputs", csv, "--json")
        assert code == 0, err
        outs.append([(r["line"], r["outputs"]) for r in json.loads(out)["rows"]])
    assert outs[0] == outs[1]
    assert outs[0][1][1][0] == pytest.approx(2.0, abs=1e-6)  # max(0, 2), line 3


def test_values_beyond_float32_are_refused(capsys, tmp_path):
    # --float32 sets JAX's precision for the whole process: both refusals in one new
    # process (each reports before anything is compiled)
    import subprocess
    import sys

    crn = tmp_path / "small.crn"
    crn.write_text("A -> B [k=1e-50]\ninit A = 1\noutput b = B\n")
    cases = [
        ([str(crn), "--float32"], "reaction 0 (A -> B [k=1e-50]) = 1e-50 is below"),
        ([os.path.join(EXAMPLES, "reversible.crn"), "--float32", "--set", "A=1e39"],
         "--set A = 1e+39 is above the range of float32"),
    ]  # fmt: skip
    script = (
        "import sys\nfrom jaxcrn._cli import main\n"
        f"for argv in {[a + ['--t1', '1'] for a, _ in cases]!r}:\n"
        "    code = main(['simulate', *argv])\n"
        "    print(f'@@ {code}', file=sys.stderr, flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    parts = proc.stderr.split("@@ ")
    assert len(parts) == 3, proc.stderr
    for (_, match), err, tail in zip(cases, parts[:2], parts[1:], strict=True):
        assert tail.startswith("2"), proc.stderr  # exit code 2: an error of the file
        assert match in err and "leave out --float32" in err
        assert "internal error" not in err
    # without --float32 (float64, as this process runs) the same file runs
    code, _, err = run(capsys, "simulate", crn, "--t1", "1")
    assert code == 0, err


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


def _iris_variant(tmp_path, name, edit_meta=None, edit_arrays=None):
    """The shipped IRIS model with its metadata or arrays edited, saved as NAME."""
    arrays = dict(np.load(IRIS_MODEL))
    meta = json.loads(str(arrays["metadata"][()]))
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    arrays["metadata"] = np.array(json.dumps(meta))
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["preprocessing"]["std"].__setitem__(0, 0.0), "'std'[0] is 0.0"),
        (lambda m: m["preprocessing"]["mean"].pop(), "'mean' has 3 values for 4"),
        (lambda m: m["preprocessing"]["mean"].__setitem__(1, "5.8"), "'mean'[1]"),
        (lambda m: m.__setitem__("preprocessing", [1, 2]), "is a list, not a map"),
    ],
)
def test_compile_refuses_malformed_preprocessing(capsys, tmp_path, edit, message):
    # dropped silently, raw inputs would be misclassified with no warning
    model = _iris_variant(tmp_path, "m.npz", edit_meta=edit)
    code, out, err = run(capsys, "compile", model, "-o", tmp_path / "m.crn")
    assert_clean_error(code, out, err, names=[model, message])
    assert not (tmp_path / "m.crn").exists()


def test_compile_keeps_float64_biases_exactly(capsys, tmp_path):
    # the model was once loaded in float32 here: 16777217 became 16777216
    def edit(arrays):
        arrays["b1"] = arrays["b1"].astype(np.float64)
        arrays["b1"][0] = 16777217.0
        arrays["b1"][1] = 0.1

    model = _iris_variant(tmp_path, "m.npz", edit_arrays=edit)
    code, _, err = run(capsys, "compile", model, "-o", tmp_path / "m.crn")
    assert code == 0, err
    init = dict(load_crn(tmp_path / "m.crn").init)
    assert init["Y0p"] == 16777217.0 and init["Y1p"] == 0.1  # the output biases


def test_export_of_what_sbml_cannot_hold_is_a_clean_error(capsys, tmp_path):
    crn = tmp_path / "s.crn"
    crn.write_text("A -> B [k=1e-310]\ninit A = 1\n")
    code, out, err = run(capsys, "export", crn, "--sbml", tmp_path / "s.xml")
    assert_clean_error(code, out, err, names=[crn, "subnormal"])
    assert not (tmp_path / "s.xml").exists()


def test_reproduce_checks_models_and_data_before_any_work(capsys, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    virus = os.path.join(ROOT, "experiments", "models", "virus.npz")
    with open(virus, "rb") as f:
        (models / "iris.npz").write_bytes(f.read())
    out = tmp_path / "r"
    argv = ["reproduce", "iris", "--models", models, "--no-figures", "--out", out]
    code, text, err = run(capsys, *argv)
    assert_clean_error(code, text, err, names=["iris.npz", "10 inputs and 4 outputs"])
    assert not out.exists()
    # the shapes fit, the metadata names another dataset: refused, not run on iris
    other = _iris_variant(tmp_path, "m.npz", lambda m: m.update(dataset="virus"))
    code, text, err = run(capsys, "verify", other, "iris", "--limit", "2")
    assert_clean_error(code, text, err, names=["was trained on virus", "not iris"])

    def swap(m):  # the model read its features in another order
        f = m["preprocessing"]["features"]
        f[0], f[1] = f[1], f[0]

    other = _iris_variant(tmp_path, "m2.npz", swap)
    code, text, err = run(capsys, "verify", other, "iris", "--limit", "2")
    assert_clean_error(code, text, err, names=["reads feature 0 as ['sepal width"])
    # a missing MNIST folder is found before iris and virus run
    argv = ["reproduce", "all", "--data", tmp_path / "none", "--no-figures"]
    code, text, err = run(capsys, *argv, "--out", out)
    assert_clean_error(code, text, err, names=["MNIST files not found"], lines=1)
    assert not out.exists()


@pytest.mark.slow
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
    assert obj["class_names"] == ["setosa", "versicolor", "virginica"]
    for name in ("full", "reduced"):
        assert obj["crn"][name]["agreement"] == 10
        assert obj["crn"][name]["max_abs_error"] < 1e-3
    assert obj["crn"]["reduced"]["counts"]["reactions"] == 16
    assert "10/10" in out


@pytest.mark.slow
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


# ------------------------------------------------------- issue 15, class by class

RELU = os.path.join(EXAMPLES, "relu.crn")
REVERSIBLE = os.path.join(EXAMPLES, "reversible.crn")


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a command gets as far as compiling a network: errors in the
    command line or the inputs must be found before anything runs."""
    import jaxcrn._network

    def refuse(*args, **kwargs):
        raise AssertionError("compile_crn was called")

    monkeypatch.setattr(jaxcrn._network, "compile_crn", refuse)


def assert_clean_error(code, out, err, *, names=(), lines=3):
    assert code == 2, err
    assert out == "" or json.loads(out)["error"]
    assert "Traceback" not in err and "internal error" not in err
    assert 1 <= len(err.strip().splitlines()) <= lines, err
    for name in names:
        assert str(name) in err, err


@pytest.mark.parametrize(
    "content, line",
    [
        ("x\n1.0\n\n\n2.0\nabc\n", 6),  # after blank lines
        ("\ufeffx\n1\n-\n", 3),  # a byte-order mark (Excel) before the header
        ("x\r\n1\r\n\r\n1;2\r\n", 4),  # CRLF; a semicolon-separated file
        ("x\n1\n" + "9" * 200_000 + "\n", 3),  # a cell over csv's field limit
        ('x\n1\n"2\n', 3),  # an unclosed quote runs to the end of the file
    ],
)
def test_csv_errors_name_the_right_line(capsys, tmp_path, no_simulation, content, line):
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8", newline="")
    code, out, err = run(capsys, "simulate", RELU, "--inputs", path)
    assert_clean_error(code, out, err, names=[path])
    assert f"line {line}:" in err, err


def test_csv_other_errors(capsys, tmp_path, no_simulation):
    path = tmp_path / "x.csv"
    cases = [
        (b"x\n1\n\xff\xfe\n", "line 3:", "invalid UTF-8: byte 0xff at byte offset 4"),
        (b"y\n1\n", "line 1:", "does not name the network's inputs (x)"),
        (b"x\n-1.5\n0\n", None, None),  # dual-rail: negative is fine (checked below)
        (b"\n\n", None, "has no input rows"),
        (b"x\n", None, "has a header but no input rows"),
        (b"x\n1e999\n", "line 2:", "too large"),
        (b"x\nnan\n", "line 2:", "'nan' is not a number"),
        (b"x\n\xd9\xa3\n", "line 2:", "is not a number"),  # an Arabic-Indic digit
    ]
    for data, where, what in cases:
        path.write_bytes(data)
        if what is None:
            continue
        code, out, err = run(capsys, "simulate", RELU, "--inputs", path)
        assert_clean_error(code, out, err, names=[path])
        assert what in err and (where is None or where in err), err
    code, out, err = run(capsys, "simulate", RELU, "--inputs", tmp_path)
    assert_clean_error(code, out, err)
    assert "is a directory, not a CSV file" in err


def test_negative_single_rail_input_names_the_line(capsys, tmp_path, no_simulation):
    crn = tmp_path / "single.crn"
    crn.write_text("X -> Y\ninput x = X\noutput y = Y\n")
    path = tmp_path / "x.csv"
    path.write_text("x\n1\n\n-2\n")
    code, out, err = run(capsys, "simulate", crn, "--inputs", path)
    assert_clean_error(code, out, err, names=[path])
    assert "line 4: input x = -2 is negative, but x sets one species (X)" in err


@pytest.mark.parametrize(
    "content",
    ["", "\n \n\t\n", "# only a comment\n", "\ufeff# a BOM and a comment\r\n"],
)
def test_empty_crn_files(capsys, tmp_path, no_simulation, content):
    path = tmp_path / "empty.crn"
    path.write_text(content, encoding="utf-8")
    for argv in (["simulate", path], ["export", path, "--sbml", tmp_path / "o.xml"]):
        code, out, err = run(capsys, *argv)
        assert_clean_error(code, out, err, names=[path])
        assert "declares no species: it holds nothing" in err
    assert os.listdir(tmp_path) == ["empty.crn"]


def test_files_that_are_not_what_the_command_reads(capsys, tmp_path, no_simulation):
    null = tmp_path / "null.crn"
    null.write_text("0 -> 0\n")
    code, out, err = run(capsys, "simulate", null)
    assert_clean_error(code, out, err, names=[null, "reactions between empty"])
    code, out, err = run(capsys, "simulate", IRIS_MODEL)
    assert_clean_error(code, out, err, names=["zip archive", "jaxcrn compile"])
    sbml = tmp_path / "model.xml"
    sbml.write_text(to_sbml(parse_crn("A -> B")))
    code, out, err = run(capsys, "simulate", sbml)
    assert_clean_error(code, out, err, names=["an SBML model", "jaxcrn import"])
    gz = tmp_path / "net.crn.gz"
    gz.write_bytes(__import__("gzip").compress(b"A -> B\n"))
    code, out, err = run(capsys, "simulate", gz)
    assert_clean_error(code, out, err, names=["gzip-compressed"])
    semi = tmp_path / "x.csv"
    semi.write_text("x;y\n1;2\n")
    code, out, err = run(capsys, "simulate", RELU, "--inputs", semi)
    assert_clean_error(code, out, err, names=["separated by semicolons"])
    code, out, err = run(capsys, "export", REVERSIBLE, "--sbml", "-")
    assert_clean_error(code, out, err, names=["'-' is not standard output"])
    assert not os.path.exists("-")
    for argv, message in (
        (["simulate", REVERSIBLE, "--rtol", "10"], "--rtol must be below 1"),
        (["simulate", REVERSIBLE, "--scan", "random:\u00b2"], "positive whole"),
        (["simulate", REVERSIBLE, "--plot", ".png"], "name the file before"),
    ):
        code, out, err = run(capsys, *argv)
        assert_clean_error(code, out, err, names=[message])
    empty = tmp_path / "empty.xml"
    empty.write_text(to_sbml(parse_crn("")))
    code, out, err = run(capsys, "import", empty, "-o", tmp_path / "e.crn")
    assert_clean_error(code, out, err, names=[empty, "has no species"])
    assert not (tmp_path / "e.crn").exists()
    # no abbreviations: --js is not taken for --json
    code, out, err = run(capsys, "simulate", REVERSIBLE, "--js")
    assert code == 2 and "unrecognized arguments: --js" in err


def test_crn_line_numbers_and_bytes(capsys, tmp_path, no_simulation):
    path = tmp_path / "net.crn"
    path.write_text("A -> B # form\ffeed \u2028 and \x85\nB -> 2nd\n", encoding="utf-8")
    code, out, err = run(capsys, "simulate", path)
    assert_clean_error(code, out, err, names=[path])
    assert "line 2:" in err and "write '2 nd'" in err
    path.write_bytes(b"A -> B\nB -> C\xff\n")
    code, out, err = run(capsys, "simulate", path)
    assert_clean_error(code, out, err, names=[path])
    assert "line 2:" in err and "byte offset 13" in err
    code, out, err = run(capsys, "simulate", tmp_path)
    assert_clean_error(code, out, err)
    assert "is a directory, not a .crn file" in err


@pytest.mark.slow
def test_unusual_but_valid_crn_file(capsys, tmp_path):
    """CRLF, a byte-order mark, tabs, comments after options, a long name and a
    large coefficient: all fine, and the result is right."""
    name = "S" + "_long" * 100
    path = tmp_path / "unusual.crn"
    path.write_bytes(
        (
            "\ufeff# made on Windows\r\n"
            f"300 A\t->\t{name}  [k=2]   # comment after the options\r\n"
            "init\tA = 1.5e0\r\n"
        ).encode()
    )
    code, out, err = run(capsys, "simulate", path, "--json", "--t1", "10")
    assert code == 0, err
    final = json.loads(out)["final"]
    # d[A]/dt = -300 * 2 * A^300 from 1.5: A^-299 = 1.5^-299 + 299 * 600 t
    a = (1.5**-299 + 299 * 600 * 10.0) ** (-1 / 299)
    assert final["A"] == pytest.approx(a, rel=1e-4)
    assert final[name] == pytest.approx((1.5 - a) / 300, rel=1e-4)


def test_argparse_errors_are_one_line_and_a_hint(capsys):
    for argv in (
        ["simulate", REVERSIBLE, "--t1", "abc"],
        ["simulate"],
        ["nonsense"],
        [],
        ["verify", "m.npz", "cifar"],
        ["simulate", REVERSIBLE, "--solver", "euler"],
        ["compile", "m.npz"],  # -o is required
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 2 and ": error: " in lines[0], err
        assert "--help" in lines[1] and "usage:" not in err
    code, out, _ = run(capsys, "simulate", REVERSIBLE, "--json", "--t1", "x")
    assert (
        code == 2 and "invalid float value" in json.loads(out)["error"]["messages"][0]
    )


@pytest.mark.parametrize(
    "argv, match",
    [
        (
            ["verify", IRIS_MODEL, "iris", "--lanes", "0"],
            "--lanes must be an integer from 1 to 2147483647, got 0",
        ),
        (
            ["verify", IRIS_MODEL, "iris", "--limit", "0"],
            "--limit must be an integer from 1",
        ),
        (
            ["simulate", REVERSIBLE, "--chunk-size", "0"],
            "--chunk-size must be an integer from 1",
        ),
        (["simulate", REVERSIBLE, "--rtol", "nan"], "--rtol must be a positive"),
        (["simulate", REVERSIBLE, "--t1", "inf"], "--t1 must be a positive"),
        (["simulate", REVERSIBLE, "--eps", "0"], "--eps must be a positive"),
        (["simulate", REVERSIBLE, "--set", "A=1e999"], "finite and >= 0"),
        (["simulate", REVERSIBLE, "--set", "A=\u0661"], "is not a number"),
        (
            ["simulate", REVERSIBLE, "--set", "A=2", "--set", "A=3"],
            "A is already set to 2; set each species once",
        ),
        (["simulate", REVERSIBLE, "--plot", "p.xyz"], "unsupported format '.xyz'"),
        (["simulate", REVERSIBLE, "--preprocess"], "--preprocess applies to --inputs"),
        (
            ["reproduce", "iris", "--lanes", "0"],
            "--lanes must be an integer from 1 to 2147483647, got 0",
        ),
        (["demo", "--t1", "-1"], "--t1 must be a positive"),
        # integers beyond what the engine's int32 counters and the generators hold
        (
            ["simulate", REVERSIBLE, "--scan", "random:2", "--max-steps", "2147483648"],
            "--max-steps must be an integer from 1 to 2147483647, got 2147483648",
        ),
        (
            ["simulate", REVERSIBLE, "--scan", "random:2", "--seed", "-1"],
            "--seed must be an integer from 0 to 4294967295, got -1",
        ),
        (["verify", IRIS_MODEL, "iris", "--rates", "1", "--seed", "-1"], "--seed must"),
        (["verify", IRIS_MODEL, "iris", "--max-steps", "2147483648"], "--max-steps"),
        (["train", "iris", "--seed", str(2**64)], "--seed must be an integer from 0"),
        (["train", "iris", "--threshold", "2"], "--threshold must be in (0, 1]"),
        (["train", "iris", "--dropout-in", "1"], "--dropout-in must be a rate in"),
        (["train", "iris", "--dropout-hidden", "nan"], "--dropout-hidden must be"),
    ],
)
def test_bad_values_before_anything_runs(capsys, no_simulation, argv, match):
    code, out, err = run(capsys, *argv)
    assert_clean_error(code, out, err)
    assert match in err


def test_json_stdout_is_always_one_object(capsys, tmp_path):
    png = tmp_path / "p.png"
    code, out, err = run(capsys, "simulate", REVERSIBLE, "--json", "--plot", png)
    assert code == 0, err
    assert json.loads(out)["status"] == "ok"  # one object, nothing else
    assert f"wrote {png}" in err and png.stat().st_size > 0
    code, out, err = run(capsys, "simulate", tmp_path / "no.crn", "--json")
    assert code == 2 and json.loads(out)["error"]["messages"] == [
        f"{tmp_path / 'no.crn'}: no such file."
    ]


def test_plot_paths(capsys, tmp_path, no_simulation):
    (tmp_path / "out.png").write_bytes(b"mine")
    code, out, err = run(capsys, "simulate", REVERSIBLE, "--plot", tmp_path / "out")
    assert_clean_error(code, out, err)
    assert "out.png already exists; pass --force" in err
    assert (tmp_path / "out.png").read_bytes() == b"mine"
    for force in ([], ["--force"]):
        code, out, err = run(capsys, "simulate", REVERSIBLE, "--plot", tmp_path, *force)
        assert_clean_error(code, out, err)
        assert "is a directory" in err
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_output_files_checked_first(capsys, tmp_path, no_simulation):
    out, xml = tmp_path / "net.crn", tmp_path / "net.xml"
    code, o, err = run(capsys, "compile", IRIS_MODEL, "-o", out, "--sbml", out)
    assert_clean_error(code, o, err)
    assert "named twice" in err
    code, o, err = run(capsys, "compile", IRIS_MODEL, "-o", tmp_path, "--force")
    assert_clean_error(code, o, err)
    assert "is a directory" in err
    code, o, err = run(capsys, "compile", IRIS_MODEL, "-o", tmp_path / "no/x.crn")
    assert_clean_error(code, o, err)
    assert "does not exist" in err
    assert os.listdir(tmp_path) == []  # nothing written, no temporaries
    assert run(capsys, "compile", IRIS_MODEL, "-o", out, "--sbml", xml)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["net.crn", "net.xml"]
    before = out.read_text()
    code, o, err = run(capsys, "export", out, "--sbml", out, "--force")
    # even with --force: the .crn would be gone for good, replaced by its SBML
    assert_clean_error(code, o, err)
    assert "also an input of this command" in err and out.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["net.crn", "net.xml"]


@pytest.mark.slow
def test_overflow_is_nonfinite_with_a_summary(capsys, tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("x\n1e308\n2\n")
    code, out, err = run(capsys, "simulate", RELU, "--inputs", csv, "--json")
    assert code == 1
    rows = json.loads(out)["rows"]
    assert [r["status"] for r in rows] == ["nonfinite", "ok"]
    assert rows[0]["outputs"] == [None] and rows[1]["outputs"][0] == pytest.approx(2)
    assert "1 of 2 samples failed" in err
    assert f"nonfinite ({csv} line 2)" in err and "overflowed" in err
    code, out, err = run(
        capsys, "simulate", REVERSIBLE, "--set", "A=1e308", "--set", "B=1e308"
    )
    assert code == 1
    assert "failed (nonfinite" in out and "nonfinite: the state overflowed" in err


def test_tiny_negative_concentrations_print_as_zero():
    from jaxcrn._cli._common import clip_concentrations

    y = clip_concentrations([-1e-26, -1e-3, 1.0, np.nan], atol=1e-9, rtol=1e-6)
    np.testing.assert_array_equal(y[:3], [0.0, -1e-3, 1.0])
    assert np.isnan(y[3])


def test_train_saves_without_o_and_checks_first(capsys, tmp_path, monkeypatch):
    import jaxcrn._nn

    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.npz").write_bytes(b"earlier work")

    def refuse(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(jaxcrn._nn, "train", refuse)
    code, out, err = run(capsys, "train", "iris", "--quiet")
    assert_clean_error(code, out, err)
    assert "iris.npz already exists; pass --force" in err
    code, out, err = run(
        capsys, "train", "iris", "-o", "a.npz", "--checkpoint", "a.npz"
    )
    assert_clean_error(code, out, err)
    assert "named twice" in err
    assert os.listdir(tmp_path) == ["iris.npz"]


def test_demo_checks_its_figure_first(capsys, tmp_path, monkeypatch):
    import jaxcrn._nn

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "iris_traces.png").write_bytes(b"mine")
    monkeypatch.setattr(jaxcrn._nn, "train", lambda *a, **k: 1 / 0)
    code, out, err = run(capsys, "demo")
    assert_clean_error(code, out, err)
    assert "demo/iris_traces.png already exists; pass --force" in err
    (tmp_path / "file").write_text("")
    code, out, err = run(capsys, "demo", "--out", tmp_path / "file" / "sub")
    assert_clean_error(code, out, err)
    assert "is not a folder" in err


@pytest.mark.slow
def test_preprocessing_is_recorded_and_applied(capsys, tmp_path):
    from jaxcrn import datasets

    crn = tmp_path / "iris.crn"
    code, out, err = run(capsys, "compile", IRIS_MODEL, "-o", crn, "--reduce")
    assert code == 0 and "preprocessing x = (raw - mean) / std is recorded" in out
    signals = load_crn(crn).inputs
    meta = datasets.iris().preprocessing
    assert [s.mean for s in signals] == meta["mean"]
    assert [s.std for s in signals] == meta["std"]
    raw = tmp_path / "raw.csv"  # three raw IRIS rows, one per class
    raw.write_text("x0,x1,x2,x3\n5.1,3.5,1.4,0.2\n7.0,3.2,4.7,1.4\n6.3,3.3,6.0,2.5\n")
    argv = ["simulate", crn, "--inputs", raw, "--json", "--t1", "150"]
    code, out, err = run(capsys, *argv, "--solver", "tsit5")
    assert code == 0 and "does not look preprocessed" in err and "--preprocess" in err
    code, out, err = run(capsys, *argv, "--solver", "tsit5", "--preprocess")
    assert code == 0 and err == ""
    obj = json.loads(out)
    assert obj["preprocessed"] and [r["argmax"] for r in obj["rows"]] == [0, 1, 2]
    code, out, err = run(capsys, "simulate", RELU, "--inputs", raw, "--preprocess")
    assert_clean_error(code, out, err)


def test_help_documents_every_option_and_ends_with_examples(capsys):
    import argparse

    from jaxcrn._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 7
    for name, p in sub.choices.items():
        text = p.format_help()
        examples = text.split("\nexamples:\n")[1].splitlines()
        assert 2 <= len(examples) <= 4, name
        for line in examples:  # each example is a valid command line
            argv = line.split("#")[0].split()
            assert argv[:2] == ["jaxcrn", name]
            argv = [a.replace("$JAXCRN_DATA", "/data") for a in argv[1:]]
            parser.parse_args(argv)
        for action in p._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = action.nargs == 0 and not isinstance(
                action, argparse.BooleanOptionalAction
            )
            helptext = p._get_formatter()._get_help_string(action)
            assert flag or "default" in helptext or action.required, (name, action)
    code, out, _ = run(capsys, "simulate", "--help")
    assert (
        code == 0
        and "comma-separated numbers" in out
        and out.rstrip().endswith("--plot relu.png")
    )


def test_an_unexpected_exception_is_one_line(capsys, monkeypatch):
    from jaxcrn._cli import export

    monkeypatch.setattr(export, "run", lambda args: [][1])
    code, out, err = run(capsys, "export", REVERSIBLE, "--sbml", "x.xml")
    assert code == 1
    assert err.splitlines()[0].startswith("jaxcrn export: internal error: IndexError")
    assert len(err.splitlines()) == 2 and "Traceback" not in err
    monkeypatch.setenv("JAXCRN_TRACEBACK", "1")
    with pytest.raises(IndexError):
        main(["export", REVERSIBLE, "--sbml", "x.xml"])


_CACHE_RUN = """
import json, sys
import jax.monitoring
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(1)
    if event == "/jax/compilation_cache/cache_hits" else None
)
from jaxcrn._cli import main
code = main(sys.argv[1:])
print(json.dumps({"exit": code, "cache_hits": len(hits)}), file=sys.stderr)
"""


def _cli_subprocess(env, *argv):
    """Run the command line in a fresh process with `env` over this one's (None
    removes a variable); returns its stdout and how many programs it read back
    from the compilation cache."""
    import subprocess
    import sys

    full = dict(os.environ)
    full.pop("XLA_FLAGS", None)  # the command line as users run it
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = str(value)
    proc = subprocess.run(
        [sys.executable, "-c", _CACHE_RUN, *map(str, argv)],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["exit"] == 0, proc.stderr
    return proc.stdout, report["cache_hits"]


@pytest.mark.slow
def test_the_command_line_keeps_compiled_programs_for_the_next_command(tmp_path):
    """By default a command writes its compiled programs to the user's cache folder
    ($XDG_CACHE_HOME/jaxcrn/xla); the next one reads them back (cache hits) and
    prints the same results; with JAXCRN_CACHE=off nothing is written."""
    argv = ("simulate", os.path.join(EXAMPLES, "relu.crn"), "--inputs",
            os.path.join(EXAMPLES, "relu_inputs.csv"), "--json")  # fmt: skip
    default = {"JAXCRN_CACHE": None, "XDG_CACHE_HOME": tmp_path / "user"}
    first, hits_first = _cli_subprocess(default, *argv)
    cache = tmp_path / "user" / "jaxcrn" / "xla"
    assert hits_first == 0 and any(p.name.endswith("-cache") for p in cache.iterdir())
    second, hits_second = _cli_subprocess(default, *argv)
    assert hits_second >= 1
    assert json.loads(second) == json.loads(first)
    off = {"JAXCRN_CACHE": "off", "XDG_CACHE_HOME": tmp_path / "other"}
    third, hits_off = _cli_subprocess(off, *argv)
    assert hits_off == 0 and json.loads(third) == json.loads(first)
    assert not (tmp_path / "other").exists()


def test_an_unusable_cache_folder_is_a_warning(capsys, tmp_path, monkeypatch):
    """JAXCRN_CACHE naming a file: one warning line, and the command runs."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    monkeypatch.setenv("JAXCRN_CACHE", str(not_a_folder))
    code, out, err = run(capsys, "simulate", os.path.join(EXAMPLES, "reversible.crn"))
    assert code == 0, err
    assert "final" in out.splitlines()[0]
    (warning,) = [ln for ln in err.splitlines() if "warning" in ln]
    assert str(not_a_folder) in warning and "is a file, not a folder" in warning
    assert "JAXCRN_CACHE=off" in warning


def test_use_compilation_cache_names_a_bad_folder(tmp_path, monkeypatch):
    from jaxcrn import use_compilation_cache

    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        use_compilation_cache(f)
    with pytest.raises(ValueError, match="cannot be made"):
        use_compilation_cache(f / "inside")
    monkeypatch.setenv("JAXCRN_CACHE", "off")
    assert use_compilation_cache() is None


def test_use_compilation_cache_on_and_off(tmp_path):
    """On: a program compiled in this process is written to the folder; off again:
    the next one is not."""
    import jax
    import jax.numpy as jnp

    from jaxcrn import use_compilation_cache

    def program(n):  # a fresh program each call, slow enough to be kept
        return jax.jit(lambda x: jnp.linalg.svd(x + n)[0].sum())

    folder = use_compilation_cache(tmp_path / "xla")
    try:
        assert jax.config.jax_compilation_cache_dir == str(folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        program(1.0)(jnp.ones((7, 7))).block_until_ready()
        kept = {p.name for p in folder.iterdir() if p.name.endswith("-cache")}
        assert kept
    finally:
        assert use_compilation_cache(False) is None
    program(2.0)(jnp.ones((8, 8))).block_until_ready()
    assert {p.name for p in folder.iterdir() if p.name.endswith("-cache")} == kept
    assert jax.config.jax_compilation_cache_dir is None
