"""Every docstring `Example:` in the package runs as a doctest (the slower modules'
in the slow set that .ci/run runs, the others in the default suite), under this
directory's conftest: float64, the same XLA flags as the tests."""

import doctest
import importlib
import pkgutil

import pytest

import jaxcrn


def _modules() -> list[str]:
    names = ["jaxcrn"]
    for info in pkgutil.walk_packages(jaxcrn.__path__, "jaxcrn."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


# the slower modules' examples (fitting, gradients, training) run in .ci/run's slow set
SLOW = {
    "jaxcrn._differentiable",
    "jaxcrn._fit",
    "jaxcrn._simulate",
    "jaxcrn._trainable",
    "jaxcrn._verify",
    "jaxcrn.plot",
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in _modules()],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    failures = []
    for test in finder.find(module, name):  # globals: the module's, as pytest does
        if test.examples:
            out: list[str] = []
            result = runner.run(test, out=out.append, clear_globs=True)
            if result.failed:
                failures.append("".join(out))
    assert not failures, "\n".join(failures)
