"""Test configuration.

The test networks are tiny, so the suite's time goes into XLA compiling hundreds of
small programs rather than running them. Unless `XLA_FLAGS` already sets them, the
suite compiles with XLA's backend (LLVM) optimisation level 0 and without XLA's
CPU fusion emitters (fusions are emitted by XLA's older loop emitter instead):
together about 40% less wall time on 2 cores than level 0 alone (127 s against
78.5 s for the default suite, one run each). Code generation changes, the
arithmetic does not (XLA's fast-math is off at every level; results may differ in
the last bit where LLVM fuses multiply-adds, far below every tolerance here), and
the suite passes either way. `XLA_FLAGS="--xla_backend_optimization_level=2
--xla_cpu_use_fusion_emitters=true" pytest` tests at XLA's defaults.
"""

import os


# The command line keeps compiled programs in ~/.cache/jaxcrn/xla; the tests that
# run it in this process or in subprocesses do not, unless JAXCRN_CACHE is set
# (tests/test_cli.py tests the cache in a folder of its own).
os.environ.setdefault("JAXCRN_CACHE", "off")

for _flag, _value in (
    ("xla_backend_optimization_level", "0"),
    ("xla_cpu_use_fusion_emitters", "false"),
):
    if _flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --{_flag}={_value}"
        ).strip()

import jax  # noqa: E402 (XLA_FLAGS is read when the backend starts)
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def shared_datasets():
    """`../shared/datasets` (or $JAXCRN_DATA) if it exists, else skip."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.environ.get("JAXCRN_DATA"),
        os.path.join(here, "..", "..", "shared", "datasets"),
    ]
    for c in candidates:
        if c and os.path.isdir(c):
            return os.path.abspath(c)
    pytest.skip("shared datasets not found; set JAXCRN_DATA to the datasets folder")
