import os

import jax
import pytest
from hypothesis import settings


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
