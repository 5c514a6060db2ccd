"""The README's examples are run, and what they print is what the README says."""

import contextlib
import io
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


def test_cli_example_prints_what_the_readme_shows(capsys, monkeypatch):
    block = _block("console", "$ jaxcrn simulate examples/reversible.crn")
    cat, rest = block.split("$ jaxcrn simulate examples/reversible.crn\n")
    shown_file = cat.split("$ cat examples/reversible.crn\n")[1]
    with open(os.path.join(ROOT, "examples", "reversible.crn")) as f:
        assert f.read() == shown_file
    monkeypatch.chdir(ROOT)
    assert main(["simulate", "examples/reversible.crn"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == rest.strip()


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
