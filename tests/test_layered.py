"""The species-major layered engine (`method="layered"`): kinetics, solves, engine."""

import os

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import (
    ForcedNetwork,
    Rodas5P,
    Status,
    _batched,
    compile_crn,
    load_params,
    nn_to_crn,
    parse_crn,
    reduce_crn,
    simulate_batch,
)
from jaxcrn._layered_engine import can_force, layered_kinetics_for

from .helpers import forward, random_params


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = dict(rtol=1e-8, atol=1e-10)

# every feature of the aligned layout: pairs, singles with and without reactions,
# mixed first/second roles within a wavefront, a catalyst read from an earlier
# wavefront, a second-order reaction 2 Q -> Z, an initial concentration
EARLY = """
X1p -> A1p + A2n
X1n -> A1n + A2p
X2 -> A1p + 2 A2p
A1p -> M1 + H1p
M1 + A1n -> H1n
A2p -> M2 + H2p
M2 + A2n -> H2n
H1p -> Yp
C + H1n -> C + Yn + Q  [k=2]
H2p -> Yn + Yp + 2 Q
2 Q -> Z  [k=0.5]
H2n -> Yp
init A1p = 0.5
init C = 2
input x1 = X1p - X1n
input x2 = X2
output y = Yp - Yn
output z = Z
"""


@pytest.fixture(scope="module")
def iris_nets():
    params = load_params(os.path.join(ROOT, "experiments", "models", "iris.npz"))
    full = nn_to_crn(params)
    return params, compile_crn(full), compile_crn(reduce_crn(full))


def _networks(iris_nets):
    _, full, reduced = iris_nets
    rng = np.random.default_rng(3)
    ternary = compile_crn(
        reduce_crn(nn_to_crn(random_params((3, 5, 2), rng, ternary=True)))
    )
    return {
        "early": compile_crn(parse_crn(EARLY)),
        "iris_reduced": reduced,
        "ternary_reduced": ternary,
    }


@eqx.filter_jit
def _reference(net, forced, ys, t):
    """dy/dt, its Jacobian on the engine's state rows, and the input forcing, from
    the network's own (one-sample) vector field, for each row of `ys`."""
    fr = net.kinetics.waves[0].size if forced else 0

    def one(y):
        vf = ForcedNetwork.build(net, y) if forced else net

        def f(z):
            return vf(t, jnp.concatenate([y[:fr], z]), None)[fr:]

        c = vf.c * jnp.exp(-vf.decay * t) if forced else jnp.zeros_like(y)
        return f(y[fr:]), jax.jacfwd(f)(y[fr:]), c

    return jax.vmap(one)(ys)


@eqx.filter_jit
def _batched_rhs_and_solve(bk, kr, y, forcing, lam, b):
    return bk.rhs(y, kr, forcing), bk.solve(bk.factor(y, kr, lam), b)


def test_batched_rhs_and_solve_match_the_network(iris_nets, monkeypatch):
    """The species-major right-hand side equals the network's, and the block
    forward substitution solves (lam I - J) x = b to round-off, with slices and
    (max_runs=0) with gathers everywhere, with and without the exact input layer."""
    rng = np.random.default_rng(0)
    nets = _networks(iris_nets)
    cases = [
        ("early", False, _batched.MAX_RUNS),
        ("early", False, 0),
        ("iris_reduced", True, _batched.MAX_RUNS),
        ("ternary_reduced", False, 0),
    ]
    for name, forced, max_runs in cases:
        monkeypatch.setattr(_batched, "MAX_RUNS", max_runs)
        net = nets[name]
        assert can_force(net) or not forced
        bk = _batched.batched_kinetics(net.kinetics, forced=forced, dtype=jnp.float64)
        if max_runs == 0:
            assert any(_batched._GATHER in w.slot_kind for w in bk.waves), name
        kr = bk.internal_rates(net.rates)
        lanes = 3
        ys = jnp.asarray(rng.uniform(0.1, 2.0, (lanes, net.n_species)))
        f_ref, jac, c = _reference(net, forced, ys, 0.7)
        y_state = ys[:, bk.first_rows :].T
        forcing = None
        if forced:
            lo = bk.first_rows + bk.force_lo
            forcing = c[:, lo : lo + bk.force_hi - bk.force_lo].T
        lam = jnp.asarray(rng.uniform(0.5, 5.0, (1, lanes)))
        b = jnp.asarray(rng.normal(size=y_state.shape))
        dy, x = _batched_rhs_and_solve(bk, kr, y_state, forcing, lam, b)
        np.testing.assert_allclose(dy.T, f_ref, rtol=1e-12, atol=1e-12)
        for i in range(lanes):
            a = lam[0, i] * jnp.eye(bk.n_state) - jac[i]
            np.testing.assert_allclose(a @ x[:, i], b[:, i], rtol=1e-10, atol=1e-10)


def test_layered_matches_lanes_engine(iris_nets):
    """Both engines solve the same ODE: final and saved outputs, final states,
    status agree to the tolerance; the layered engine (forced, Tsit5) agrees with
    the forward pass of the network."""
    params, _, reduced = iris_nets
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (12, 4)))
    kw = dict(progress=False, saveat=26, keep_states=True, **TOL)
    for net in (reduced,):
        a = simulate_batch(net, x, 40.0, method="layered", **kw)
        b = simulate_batch(net, x, 40.0, method="lanes", **kw)
        assert (a.status == Status.OK).all() and (b.status == Status.OK).all()
        np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a.y_final, b.y_final, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a.outputs_final, forward(params, x), atol=0.05)
        assert (np.argmax(a.outputs_final, 1) == np.argmax(forward(params, x), 1)).all()


def test_lanes_workers_and_chunks_change_nothing(iris_nets, monkeypatch):
    """Every lane has its own step-size control: how many lanes, threads and
    chunks share the work does not change any sample's steps or answer. And
    `engine_settings` (what benchmarks record) reports the lanes, threads and
    chunks that really run."""
    from jaxcrn import _layered_engine
    from jaxcrn._simulate import engine_settings

    seen = []
    real = _layered_engine.integrate_layered

    def spy(*args, **kw):
        seen.append(kw["lanes"])
        return real(*args, **kw)

    monkeypatch.setattr(_layered_engine, "integrate_layered", spy)
    _, _, reduced = iris_nets
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (10, 4)))
    kw = dict(progress=False, saveat=None, **TOL)
    results = []
    for extra in (dict(workers=1), dict(workers=3, lanes=2, chunk_size=4), dict()):
        seen.clear()
        results.append(
            simulate_batch(reduced, x, 30.0, method="layered", **extra, **kw)
        )
        plan = engine_settings(reduced, x.shape[0], **extra)
        assert plan["engine"] == "layered"
        chunks = -(-x.shape[0] // plan["chunk_size"])
        assert seen == [plan["lanes"]] * (plan["workers"] * chunks), (extra, plan)
    for other in results[1:]:
        np.testing.assert_array_equal(other.num_steps, results[0].num_steps)
        np.testing.assert_allclose(
            other.outputs_final, results[0].outputs_final, rtol=1e-13, atol=1e-13
        )


def test_stiff_samples_are_rerun_with_rodas5p(iris_nets):
    """Large inputs make the annihilation reactions fast (stiff). The automatic
    solver starts with Tsit5, detects the stiffness and re-runs those samples with
    Rodas5P: same answers and step counts as Rodas5P from the start."""
    params, _, reduced = iris_nets
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (4, 4))) * 300.0
    kw = dict(progress=False, saveat=None, method="layered", rtol=1e-7, atol=1e-9)
    auto = simulate_batch(reduced, x, 20.0, **kw)
    rodas = simulate_batch(reduced, x, 20.0, solver=Rodas5P(), **kw)
    tsit5 = simulate_batch(reduced, x, 20.0, solver=diffrax.Tsit5(), **kw)
    assert (auto.status == Status.OK).all()
    np.testing.assert_array_equal(auto.num_steps, rodas.num_steps)
    np.testing.assert_allclose(auto.outputs_final, rodas.outputs_final, rtol=1e-12)
    np.testing.assert_allclose(auto.outputs_final, tsit5.outputs_final, rtol=1e-5)
    assert np.median(tsit5.num_steps) > 5 * np.median(rodas.num_steps)
    fwd = forward(params, x)
    np.testing.assert_allclose(auto.outputs_final, fwd, rtol=1e-4)


def test_out_of_steps_is_flagged_per_sample(iris_nets):
    _, _, reduced = iris_nets
    x = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, -2.0, 1.0, 0.5]])
    res = simulate_batch(
        reduced, x, 50.0, method="layered", max_steps=20, saveat=5, progress=False
    )
    assert (res.status == Status.MAX_STEPS).sum() >= 1
    bad = res.status != Status.OK
    assert np.isnan(res.outputs_final[bad]).all() and not res.converged[bad].any()
    assert np.isnan(res.outputs[bad][:, -1]).all()


def test_layered_method_errors():
    dense = compile_crn(parse_crn("A + B -> C\ninit A = 1"), form="dense")
    with pytest.raises(ValueError, match="method='layered' needs"):
        simulate_batch(dense, np.zeros((1, 0)), 1.0, method="layered", progress=False)
    net = compile_crn(parse_crn("X -> Y\ninput x = X\noutput y = Y"))
    assert layered_kinetics_for(net, False) is not None
    with pytest.raises(ValueError, match="method='layered' needs"):
        simulate_batch(
            net, np.ones((1, 1)), 1.0, method="layered", solver=diffrax.Dopri5()
        )
    with pytest.raises(ValueError, match="workers must be >= 1"):
        simulate_batch(net, np.ones((1, 1)), 1.0, workers=0, progress=False)


def test_float32_network():
    """A float32 network stays float32 through the engine (no silent promotion)."""
    net = compile_crn(
        parse_crn("X -> Y + Z\nZ + W -> 0\ninit W = 1\ninput x = X\noutput y = Y - Z"),
        dtype=jnp.float32,
    )
    x = np.array([[0.5], [2.0]])
    res = simulate_batch(
        net, x, 20.0, saveat=5, keep_states=True, rtol=1e-5, atol=1e-7, progress=False
    )
    assert res.outputs.dtype == res.y_final.dtype == np.float32
    # y = x - max(x - 1, 0): W annihilates up to 1 of Z
    np.testing.assert_allclose(res.outputs_final[:, 0], [0.5, 1.0], rtol=1e-4)
