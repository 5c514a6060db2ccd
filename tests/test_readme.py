"""The README's examples are run, and what they print is what the README says."""

import contextlib
import io
import json
import os
import re

import pytest

from jaxcrn._cli import main


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as _f:
    README = _f.read()


def _block(lang: str, containing: str) -> str:
    for body in re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S):
        if containing in body:
            return body
    raise AssertionError(f"README has no ```{lang} block with {containing!r}")


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _same_printout(got: str, shown: str, atol: float = 1e-9, rtol: float = 1e-6):
    """The text is the same and so is every integer; the decimals agree within the
    solver's tolerances (the defaults' `atol`, `rtol`): a residual far below `atol`,
    such as 5.66e-12 of a species that has run out, changes in its sixth digit
    when the compiler fuses a multiply-add differently (the suite compiles at
    XLA's optimisation level 0, see conftest.py)."""
    assert _NUMBER.sub("#", got.strip()) == _NUMBER.sub("#", shown.strip())
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(shown), strict=True):
        if re.fullmatch(r"[-+]?\d+", b):
            assert a == b
        else:
            assert abs(float(a) - float(b)) <= atol + rtol * abs(float(b)), (a, b)


def test_same_printout_tells_numbers_apart():
    _same_printout("A 1  5.66284e-12\n62 steps", "A 1  5.66285e-12\n62 steps")
    for got in (
        "A 1  5.7e-9\n62 steps",
        "A 1  5.66e-12\n63 steps",
        "B 1  5.66e-12\n62 steps",
    ):
        with pytest.raises(AssertionError):
            _same_printout(got, "A 1  5.66285e-12\n62 steps")


def test_cli_example_prints_what_the_readme_shows(capsys, monkeypatch):
    block = _block("console", "$ jaxcrn simulate examples/reversible.crn")
    cat, rest = block.split("$ jaxcrn simulate examples/reversible.crn\n")
    shown_file = cat.split("$ cat examples/reversible.crn\n")[1]
    with open(os.path.join(ROOT, "examples", "reversible.crn")) as f:
        assert f.read() == shown_file
    monkeypatch.chdir(ROOT)
    assert main(["simulate", "examples/reversible.crn"]) == 0
    _same_printout(capsys.readouterr().out, rest)


@pytest.mark.slow
def test_python_example_prints_what_its_comments_say(monkeypatch):
    code = _block("python", "jaxcrn.simulate_batch")
    expected = [
        m.group(1).strip()
        for line in code.splitlines()
        if line.startswith("print(") and (m := re.search(r"#\s*(.*)$", line))
    ]
    monkeypatch.chdir(ROOT)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "README.md", "exec"), {})
    printed = buf.getvalue().splitlines()
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected):
        # comments may add words after the value ("16 reactions")
        got = got.strip()
        assert got == want or want.startswith(got + " "), (got, want)


def _without_wall_times(text: str) -> list[str]:
    out = []
    for line in text.strip().splitlines():
        if line.startswith(("full CRN", "reduced CRN")):
            line = line.rsplit(None, 1)[0]  # the 'wall s' column
        out.append(re.sub(r"\(\d+ s in all\)", "(N s in all)", line.rstrip()))
    return out


@pytest.mark.slow
def test_demo_block_is_what_the_demo_prints(capsys, monkeypatch, tmp_path):
    """The README's `jaxcrn demo --no-train` block, produced by
    experiments/readme_demo.py, is what the command prints (wall times aside)."""
    block = _block("console", "$ jaxcrn demo --no-train")
    shown = block.split("$ jaxcrn demo --no-train\n")[1]
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-train", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert _without_wall_times(out) == _without_wall_times(shown)
    assert os.listdir(tmp_path / "demo") == ["iris_traces.png"]


def test_readme_states_the_format_rules():
    """The naming rule for coefficients is documented where the format is."""
    section = README.split("## The `.crn` format")[1].split("\n## ")[0]
    assert "`3PG`" in section and "never read as `3 PG`" in section
    assert "`2 X`, `2*X`, `2 * X`" in section
    assert "byte-order mark" in section and "U+2028" in section


@pytest.mark.slow
@pytest.mark.parametrize(
    "section", ["## Ensembles and scale-out", "## Differentiable chemistry"]
)
def test_python_sessions_print_what_the_readme_shows(section, monkeypatch):
    """The README's ```pycon sessions run as doctests, section by section."""
    import doctest

    start = README.index(section)
    end = README.find("\n## ", start + len(section))
    text = README[start:end]
    blocks = re.findall(r"```pycon\n(.*?)```", text, flags=re.S)
    assert blocks, f"README section {section!r} has no ```pycon block"
    monkeypatch.chdir(ROOT)
    globs: dict = {}
    if section.startswith("## Differentiable"):  # continues the ensembles session
        exec("import jax, numpy as np, jaxcrn", globs)
    parser, out = doctest.DocTestParser(), []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for body in blocks:
        test = parser.get_doctest(body, globs, section, "README.md", 0)
        result = runner.run(test, out=out.append)
        assert result.failed == 0, "".join(out)


# -- the Performance section's tables are the benchmark records ---------------------

_UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


def _table_rows(section_start: str, header_start: str):
    """The body rows of the first table after `section_start` whose header row
    starts with `header_start`, as lists of cells."""
    text = README.split(section_start, 1)[1]
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*") for c in line.strip().strip("|").split("|")])
    return lines[i], rows


def _shown(cell: str) -> tuple[float, float]:
    """A cell's leading number in SI units and half a unit of its last digit."""
    m = re.match(r"([0-9][0-9,]*(?:\.([0-9]+))?)\s*(µs|ms|s|x)?", cell)
    assert m, f"no number in README cell {cell!r}"
    digits = len(m.group(2) or "")
    scale = _UNITS.get(m.group(3) or "x", 1.0)
    return float(m.group(1).replace(",", "")) * scale, 0.5 * 10.0**-digits * scale


def _last_jaxcrn_records(name: str, key) -> dict:
    with open(os.path.join(ROOT, "results", name)) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {key(r): r for r in records if r["tool"] == "jaxcrn"}


def _agrees(cell: str, value: float, what: str):
    shown, half = _shown(cell)
    assert abs(shown - value) <= half * (1 + 1e-9), (
        f"README shows {cell!r} for {what}; the record says {value:.4g}"
    )


def test_performance_general_table_is_the_records():
    """Every general-CRN row: jaxcrn's time, its median steps and its ratio to the
    best peer are the last jaxcrn record of that CRN in
    results/peers_general.jsonl, rounded as shown."""
    header, rows = _table_rows("**General CRNs**", "| CRN |")
    cols = [c.strip() for c in header.strip().strip("|").split("|")]
    records = _last_jaxcrn_records("peers_general.jsonl", lambda r: r["model"])
    assert len(rows) >= 12
    for cells in rows:
        row = dict(zip(cols, cells, strict=True))
        r = records[row["CRN"]]
        _agrees(row["jaxcrn"], r["per_sample_s"], f"{row['CRN']} time")
        _agrees(row["jaxcrn vs best peer"], r["speedup_vs_best_peer"], row["CRN"])
        if row["steps (median)"]:
            _agrees(row["steps (median)"], r["steps_median"], f"{row['CRN']} steps")


@pytest.mark.parametrize(
    "section, records_file, n_rows",
    [
        ("**At matched accuracy**", "precision_general.jsonl", 12),
        ("**Stiff signalling cascades of hundreds", "peers_cascades.jsonl", 4),
    ],
)
def test_performance_matched_accuracy_table_is_the_records(
    section, records_file, n_rows
):
    """Every row of a work-precision table: the three ratios are
    `peers.matched_accuracy` of the last run in its records file, and so are the
    errors and jaxcrn's rtol at the peer's error."""
    from .helpers import load_benchmark

    peers = load_benchmark("peers")
    header, rows = _table_rows(section, "| CRN |")
    cols = [c.strip() for c in header.strip().strip("|").split("|")]
    with open(os.path.join(ROOT, "results", records_file)) as f:
        records = [json.loads(line) for line in f if line.strip()]
    last = records[-1]["run"]
    matched = {
        r["model"]: r
        for r in peers.matched_accuracy([r for r in records if r["run"] == last], 1e-6)
    }
    assert len(rows) >= n_rows and len(rows) == len(matched)
    for cells in rows:
        row = dict(zip(cols, cells, strict=True))
        m = matched[row["CRN"]]
        name = row["CRN"]
        assert row["best peer at rtol 1e-6"].startswith(m["peer"]), name
        for col, key in (
            ("its error", "peer_err"),
            ("jaxcrn's error at rtol 1e-6", "jaxcrn_err"),
        ):
            assert float(row[col]) == pytest.approx(m[key], rel=0.051), (name, col)
        _agrees(row["ratio at rtol 1e-6"], m["nominal_speedup"], name)
        assert float(row["jaxcrn's rtol at the peer's error"]) == pytest.approx(
            m["at_peer_accuracy_jaxcrn_rtol"]
        ), name
        _agrees(row["ratio at the peer's error"], m["at_peer_accuracy"], name)
        shown = row["ratio at jaxcrn's error"]
        assert shown.startswith(">") == m["at_jaxcrn_accuracy_is_lower_bound"], name
        _agrees(shown.lstrip("> "), m["at_jaxcrn_accuracy"], name)


def test_performance_compiled_table_is_the_records():
    """Every compiled-network row: jaxcrn's time and its ratio to the best peer are
    the last jaxcrn record of that model, weights and CRN in results/peers.jsonl."""
    header, rows = _table_rows("**Compiled networks**", "| model |")
    cols = [c.strip() for c in header.strip().strip("|").split("|")]
    records = _last_jaxcrn_records(
        "peers.jsonl", lambda r: (r["model"], r["weights"], r["crn"])
    )
    assert len(rows) >= 9
    for cells in rows:
        row = dict(zip(cols, cells, strict=True))
        r = records[(row["model"], row["weights"], row["CRN"])]
        what = f"{row['model']} {row['weights']} {row['CRN']}"
        _agrees(row["jaxcrn"], r["per_sample_s"], f"{what} time")
        _agrees(row["jaxcrn vs best peer"], r["speedup_vs_best_peer"], what)
