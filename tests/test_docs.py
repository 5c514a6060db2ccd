"""The documentation's examples (```pycon blocks in docs/*.md) run as doctests, so
every number the pages show comes from running the code."""

import doctest
import glob
import os

import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def test_pages_exist():
    names = {os.path.basename(p) for p in PAGES}
    assert {
        "index.md",
        "crn-format.md",
        "compiler.md",
        "batch-engine.md",
        "ensembles.md",
        "differentiable.md",
        "results.md",
        "sbml.md",
        "cli.md",
        "api.md",
    } <= names


# pages whose examples compile several solvers (a minute between them on 2 cores)
# run with the slow tests (`.ci/run` runs them)
SLOW_PAGES = {
    "differentiable.md",
    "ensembles.md",
    "compiler.md",
    "index.md",
    "batch-engine.md",
}


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.slow)
        if os.path.basename(p) in SLOW_PAGES
        else p
        for p in PAGES
    ],
    ids=os.path.basename,
)
def test_examples_on_the_page(page, monkeypatch):
    monkeypatch.chdir(ROOT)
    with open(page, encoding="utf-8") as f:
        text = f.read()
    test = doctest.DocTestParser().get_doctest(text, {}, page, page, 0)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    out: list[str] = []
    result = runner.run(test, out=out.append)
    assert result.failed == 0, "".join(out)
