"""Shared test helpers (strategies and small networks)."""

import importlib.util
import os
import sys

import numpy as np
from hypothesis import strategies as st

from jaxcrn import CRN, Reaction, Signal


NAMES = ["A", "B", "C", "X_1", "Yp", "Yn", "_tmp", "Zz9"]


@st.composite
def small_crn_specs(draw):
    """Random CRN specifications (plain tuples; build them with `build_crn`).

    The strategy returns plain data because jaxcrn's classes are runtime
    type-checked (jaxtyping + beartype sample containers with `random`, which
    Hypothesis forbids inside strategies)."""
    n_species = draw(st.integers(1, len(NAMES)))
    names = draw(st.permutations(NAMES))[:n_species]

    def complex_():
        k = draw(st.integers(0, min(3, n_species)))
        chosen = draw(st.permutations(names))[:k]
        return tuple((s, draw(st.integers(1, 3))) for s in chosen)

    rate = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)
    reactions = tuple(
        (complex_(), complex_(), draw(rate)) for _ in range(draw(st.integers(0, 5)))
    )
    init_names = draw(st.permutations(names))[: draw(st.integers(0, n_species))]
    value = st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False)
    init = tuple((s, draw(value)) for s in init_names)
    known = {s for r, p, _ in reactions for s, _ in r + p} | {s for s, _ in init}
    known = sorted(known)
    inputs, outputs = [], []
    if len(known) >= 2 and draw(st.booleans()):
        inputs.append(("x0", known[0], known[1]))
    if known and draw(st.booleans()):
        outputs.append(("y0", known[-1], None))
    return reactions, init, tuple(inputs), tuple(outputs)


def build_crn(spec) -> CRN:
    reactions, init, inputs, outputs = spec
    return CRN(
        tuple(Reaction(r, p, k) for r, p, k in reactions),
        init,
        tuple(Signal(*s) for s in inputs),
        tuple(Signal(*s) for s in outputs),
    )


def random_params(sizes, rng, *, ternary=False, bias_scale=0.5):
    """Random (W, b) pairs with W in {-1, +1} (or {-1, 0, +1})."""
    vals = [-1.0, 0.0, 1.0] if ternary else [-1.0, 1.0]
    return [
        (rng.choice(vals, size=(a, b)), rng.normal(size=b) * bias_scale)
        for a, b in zip(sizes[:-1], sizes[1:], strict=False)
    ]


def forward(params, x):
    x = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = np.maximum(x, 0.0)
    return x


def npy_bytes(descr: str, shape: tuple, data: bytes = b"", version=(1, 0)) -> bytes:
    """A `.npy` file whose header says `descr` and `shape`, followed by `data`
    (which need not match: for corrupt files)."""
    import io

    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue() + data


def npz_bytes(members: dict, *, compress: bool = False) -> bytes:
    """A zip archive of `{name: bytes}` (names as given, e.g. 'W0.npy')."""
    import io
    import zipfile

    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def array_npy(a) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


class Payload:
    """Unpickling this creates the folder `path`: code run by a model file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def compilations(fn):
    """`fn()` and how many XLA programs it compiled."""
    import jax.monitoring

    count = [0]

    def on(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(on)
    try:
        out = fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(on)
    return out, count[0]


BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)


def load_benchmark(name: str, *, register: bool = False):
    """The script `benchmarks/<name>.py` as a module. Its folder is on `sys.path`
    while it loads (its own imports); with `register` the module is also
    `sys.modules[name]` and the folder stays on the path, so that worker processes
    it spawns can import it by name."""
    folder = os.path.abspath(BENCHMARKS)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(folder, name + ".py")
        )
        module = importlib.util.module_from_spec(spec)
        if register:
            sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        if not register:
            sys.path.remove(folder)
    return module


def forget_benchmark(name: str) -> None:
    """Undo `load_benchmark(name, register=True)`."""
    sys.modules.pop(name, None)
    sys.path.remove(os.path.abspath(BENCHMARKS))
