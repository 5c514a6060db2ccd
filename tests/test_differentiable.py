"""simulate_differentiable: gradients over a batch against central finite differences
(rates, initial concentrations, inputs, save times; a general CRN and a compiled
one; every adjoint), the batch against a loop of `simulate`, and bad input."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import (
    compile_crn,
    nn_to_crn,
    parse_crn,
    simulate,
    simulate_differentiable,
)


TOL = dict(rtol=1e-10, atol=1e-12)
EPS = 1e-5  # central differences: error ~EPS^2 + rtol/EPS
T1 = jnp.asarray(3.0)
TS = jnp.array([0.5, 1.0, 2.0, 3.0])
# per-sample rate constants and initial concentrations (A, B, C, D)
RATES = jnp.array([[1.0, 0.5, 0.3], [2.0, 0.2, 0.6], [0.7, 1.1, 0.1]])
Y0 = jnp.array([[1.0, 2.0, 0.3, 0.1], [0.5, 1.0, 0.2, 0.2], [2.0, 0.4, 1.0, 0.3]])
WEIGHTS = jnp.array([1.0, -0.5, 2.0, 0.25])


@pytest.fixture(scope="module")
def general():  # A + B <=> C, C -> D: bimolecular and reversible, dense layout
    return compile_crn(parse_crn("A + B <=> C [kf=1, kr=0.5]\nC -> D [k=0.3]"))


@pytest.fixture(scope="module")
def compiled():  # a 2-2-1 ReLU network as a CRN (layered layout, dual-rail inputs)
    w0, b0 = np.array([[1.0, -1.0], [1.0, 1.0]]), np.array([0.5, -0.25])
    w1, b1 = np.array([[1.0], [-1.0]]), np.array([0.1])
    return compile_crn(nn_to_crn([(w0, b0), (w1, b1)]))


def _loss(net, rates, y0, solver, adjoint):
    res = simulate_differentiable(
        net,
        None,
        T1,
        y0=y0,
        rates=rates,
        saveat=TS,
        solver=solver,
        adjoint=adjoint,
        **TOL,
    )
    # every species at every saved time, each sample weighted differently
    return jnp.sum(
        res.ys * WEIGHTS[None, None, :] * jnp.arange(1.0, 4.0)[:, None, None]
    )


@eqx.filter_jit
def loss(net, rates, y0, solver):  # the forward pass is the same for every adjoint
    return _loss(net, rates, y0, solver, "checkpoint")


@eqx.filter_jit
def loss_grad(net, rates, y0, solver, adjoint):
    return jax.grad(_loss, argnums=(1, 2))(net, rates, y0, solver, adjoint)


@eqx.filter_jit
def loss_jacfwd(net, rates, y0, solver, adjoint):
    return jax.jacfwd(_loss, argnums=(1, 2))(net, rates, y0, solver, adjoint)


def _check_against_differences(f, g_rates, g_y0, rng):
    # every rate constant of every sample, one at a time
    for b in range(RATES.shape[0]):
        for r in range(RATES.shape[1]):
            e = jnp.zeros_like(RATES).at[b, r].set(EPS)
            fd = (f(RATES + e, Y0) - f(RATES - e, Y0)) / (2 * EPS)
            np.testing.assert_allclose(g_rates[b, r], fd, rtol=1e-5, atol=1e-7)
    # initial concentrations along two random directions (all stay positive)
    for _ in range(2):
        v = jnp.asarray(rng.uniform(-0.1, 0.1, size=Y0.shape))
        fd = (f(RATES, Y0 + EPS * v) - f(RATES, Y0 - EPS * v)) / (2 * EPS)
        np.testing.assert_allclose(jnp.sum(g_y0 * v), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "solver, adjoint",
    [
        # Rodas5P, reverse mode: 9 s, run by .ci/run's slow gradient checks
        pytest.param(None, "checkpoint", marks=pytest.mark.slow),
        pytest.param(diffrax.Tsit5(), "backsolve", marks=pytest.mark.slow),
        (diffrax.Tsit5(), "forward"),
    ],
)
def test_gradients_match_central_differences(general, solver, adjoint):
    f = lambda k, y: loss(general, k, y, solver)
    grad = loss_jacfwd if adjoint == "forward" else loss_grad
    g_rates, g_y0 = grad(general, RATES, Y0, solver, adjoint)
    assert g_rates.shape == RATES.shape and g_y0.shape == Y0.shape
    assert bool(jnp.all(jnp.isfinite(g_rates)) & jnp.all(jnp.isfinite(g_y0)))
    _check_against_differences(f, g_rates, g_y0, np.random.default_rng(0))


@eqx.filter_jit
def _compiled_outputs(net, x, rates):
    res = simulate_differentiable(
        net, x, T1, rates=rates, saveat=TS, save_species=False, offset=0.2, **TOL
    )
    return jnp.sum(res.outputs[..., 0] * jnp.arange(1.0, 5.0)[None, :])


@pytest.mark.slow
def test_compiled_crn_gradients_wrt_inputs_and_rates(compiled):
    x = jnp.array([[0.7, -0.4], [-1.2, 0.9], [0.3, 0.5]])
    rates = jnp.linspace(0.6, 1.4, compiled.n_reactions)  # shared by the batch
    f = lambda x, k: _compiled_outputs(compiled, x, k)
    g_x, g_k = eqx.filter_jit(jax.grad(f, argnums=(0, 1)))(x, rates)
    assert g_x.shape == x.shape and g_k.shape == rates.shape
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            e = jnp.zeros_like(x).at[b, i].set(EPS)
            fd = (f(x + e, rates) - f(x - e, rates)) / (2 * EPS)
            np.testing.assert_allclose(g_x[b, i], fd, rtol=1e-5, atol=1e-7)
    v = jnp.asarray(np.random.default_rng(1).normal(size=rates.shape))
    fd = (f(x, rates + EPS * v) - f(x, rates - EPS * v)) / (2 * EPS)
    np.testing.assert_allclose(jnp.sum(g_k * v), fd, rtol=1e-5, atol=1e-7)
    assert float(jnp.max(jnp.abs(g_k))) > 1e-3  # the rates matter at finite time


@pytest.mark.slow
def test_backsolve_through_a_compiled_crn(compiled):
    """The backsolve adjoint through the layered layout (whose kinetics once held
    empty tuples, which diffrax's adjoint cannot stop gradients through) equals the
    checkpointed gradient."""
    x = jnp.array([[0.7, -0.4], [0.3, 0.5]])

    def loss(k, adjoint):
        res = simulate_differentiable(
            compiled, x, T1, rates=k, adjoint=adjoint, solver=diffrax.Tsit5(), **TOL
        )
        return jnp.sum(res.outputs_final)

    g = {a: jax.grad(loss)(compiled.rates, a) for a in ("checkpoint", "backsolve")}
    np.testing.assert_allclose(g["backsolve"], g["checkpoint"], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_gradient_wrt_save_times_is_the_vector_field(general):
    def c_at(ts):
        res = simulate_differentiable(
            general, None, T1, y0=Y0, saveat=ts, solver=diffrax.Tsit5(), **TOL
        )
        return res.ys[..., 2]  # (batch, times)

    ts = jnp.broadcast_to(TS, (Y0.shape[0], TS.shape[0]))
    jac = eqx.filter_jit(jax.jacrev(c_at))(ts)  # (batch, times, batch, times)
    res = simulate_differentiable(
        general, None, T1, y0=Y0, saveat=ts, solver=diffrax.Tsit5(), **TOL
    )
    dcdt = jax.vmap(jax.vmap(lambda y: general(0.0, y, None)[2]))(res.ys)
    b, t = np.arange(ts.shape[0]), np.arange(ts.shape[1])
    diag = np.asarray(jac)[b[:, None], t[None, :], b[:, None], t[None, :]]
    np.testing.assert_allclose(diag, dcdt, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_batch_matches_a_loop_of_simulate(general):
    res = simulate_differentiable(
        general, None, T1, y0=Y0, rates=RATES, saveat=TS, solver=diffrax.Tsit5(), **TOL
    )
    assert res.ys.shape == (3, 4, 4) and res.y_final.shape == (3, 4)
    for b in range(3):
        one = simulate(
            general.with_rates(RATES[b]),
            Y0[b],
            T1,
            saveat=TS,
            solver=diffrax.Tsit5(),
            **TOL,
        )
        np.testing.assert_allclose(res.ys[b], one.ys, rtol=1e-12, atol=1e-14)
        assert int(res.status[b]) == int(one.status)
    # nothing batched: one sample, no batch axis
    single = simulate_differentiable(
        general, None, T1, y0=Y0[0], saveat=TS, solver=diffrax.Tsit5(), **TOL
    )
    assert single.ys.shape == (4, 4)


def test_bad_arguments_are_named(general, compiled):
    with pytest.raises(ValueError, match="disagree on the batch size"):
        simulate_differentiable(general, None, T1, y0=Y0, rates=RATES[:2])
    with pytest.raises(ValueError, match=r"rates has shape \(2,\); expected \(3,\)"):
        simulate_differentiable(general, None, T1, rates=jnp.ones(2))
    with pytest.raises(ValueError, match="adjoint='adjoint' is not one of"):
        simulate_differentiable(general, None, T1, adjoint="adjoint")
    with pytest.raises(ValueError, match="pass inputs of shape"):
        simulate_differentiable(compiled, None, T1)
    with pytest.raises(ValueError, match="declares no inputs"):
        simulate_differentiable(general, jnp.ones((2, 1)), T1)
    with pytest.raises(ValueError, match="cannot be used with diffrax.Backsolve"):
        simulate(
            general,
            Y0[0],
            T1,
            stop_when_steady=True,
            adjoint=diffrax.BacksolveAdjoint(),
            solver=diffrax.Tsit5(),
        )
