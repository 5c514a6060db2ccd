"""The batch engine: one lane scheduler, its steppers, the plan, the kinetics layouts
on lane arrays, against closed forms, `jax.vmap(simulate)` and each other."""

import math
import os

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import (
    Rodas5P,
    Status,
    compile_crn,
    load_params,
    nn_to_crn,
    parse_crn,
    plan_batch,
    reduce_crn,
    simulate,
    simulate_batch,
)
from jaxcrn._kinetics import layered as layered_mod

from .helpers import compilations, forward, random_params


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = dict(rtol=1e-9, atol=1e-11)

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

# Robertson's stiff chemistry (rates 0.04, 3e7, 1e4), initial A varied
ROBERTSON = """
A -> B  [k=0.04]
2 B -> B + C  [k=3e7]
B + C -> A + C  [k=1e4]
input a = A
"""


@pytest.fixture(scope="module")
def iris_nets():
    params = load_params(os.path.join(ROOT, "experiments", "models", "iris.npz"))
    full = nn_to_crn(params)
    return params, compile_crn(full), compile_crn(reduce_crn(full))


DIMERISATION = "A + B <=> C [kf=1, kr=0.5]\ninput a = A\ninput b = B\noutput c = C"


@pytest.fixture(scope="module")
def dimerisation():  # A + B <-> C, general (a cycle), inputs on A and B
    return compile_crn(parse_crn(DIMERISATION))


@pytest.fixture(scope="module")
def robertson():
    return compile_crn(parse_crn(ROBERTSON))


# -- kinetics on lane arrays ----------------------------------------------------------


@eqx.filter_jit
def _rhs_and_solve(kin, rates, y, lam, b):
    return kin.rhs(y, rates), kin.solve(kin.factor(y, rates, lam), b)


@pytest.mark.slow
@pytest.mark.parametrize("max_runs", [layered_mod.MAX_RUNS, 0])
def test_layered_kinetics_on_lanes_match_one_sample(monkeypatch, max_runs):
    """The layered layout on `(species, lanes)` arrays equals its one-sample
    form and the dense layout, and block substitution solves `(lam I - J) x = b`
    with a different `lam` per lane, with slices and (max_runs=0) gathers."""
    monkeypatch.setattr(layered_mod, "MAX_RUNS", max_runs)
    crn = parse_crn(EARLY)
    net = compile_crn(crn, form="layered")
    if max_runs == 0:
        assert any(layered_mod._GATHER in w.slot_kind for w in net.kinetics.waves)
    dense = compile_crn(crn, form="dense")
    perm = np.array([dense.index(s) for s in net.species])
    rng = np.random.default_rng(0)
    lanes = 3
    ys = jnp.asarray(rng.uniform(0.1, 2.0, (net.n_species, lanes)))
    lam = jnp.asarray(rng.uniform(0.5, 5.0, (1, lanes)))
    b = jnp.asarray(rng.normal(size=ys.shape))
    dy, x = _rhs_and_solve(net.kinetics, net.rates, ys, lam, b)
    for i in range(lanes):
        ref = dense(0.0, jnp.zeros(net.n_species).at[perm].set(ys[:, i]), None)[perm]
        np.testing.assert_allclose(dy[:, i], ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dy[:, i], net(0.0, ys[:, i], None), rtol=1e-12)
        a = lam[0, i] * jnp.eye(net.n_species) - net.jacobian(ys[:, i])
        np.testing.assert_allclose(a @ x[:, i], b[:, i], rtol=1e-10, atol=1e-10)


def test_per_lane_rates_match_with_rates(dimerisation):
    """Rate constants `(reactions, lanes)`: each lane sees its own set."""
    kin = dimerisation.kinetics
    rng = np.random.default_rng(1)
    y = jnp.asarray(rng.uniform(0.1, 2.0, (3, 4)))
    rates = jnp.asarray(rng.uniform(0.1, 3.0, (2, 4)))
    dy = kin.rhs(y, rates)
    for i in range(4):
        one = dimerisation.with_rates(rates[:, i])
        np.testing.assert_allclose(dy[:, i], one(0.0, y[:, i], None), rtol=1e-13)


# -- the engine against independent answers --------------------------------------------


def test_vmap_simulate_agrees_with_simulate_batch(dimerisation):
    """A general network (a reversible binding): the batch engine and
    `jax.vmap(simulate)` (diffrax) agree on final states and saved outputs."""
    x = np.array([[1.0, 2.0], [0.5, 0.5], [3.0, 0.1], [0.0, 1.0]])
    res = simulate_batch(dimerisation, x, 10.0, saveat=11, keep_states=True, **TOL)
    y0 = jax.vmap(dimerisation.initial_state)(jnp.asarray(x))
    ref = jax.vmap(lambda y: simulate(dimerisation, y, 10.0, saveat=11, **TOL))(y0)
    np.testing.assert_allclose(res.y_final, ref.y_final, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.outputs, ref.outputs, rtol=1e-7, atol=1e-9)
    assert (res.status == Status.OK).all()
    # conservation: A + C and B + C constant
    a, b, c = (res.y_final[:, dimerisation.index(s)] for s in "ABC")
    np.testing.assert_allclose(a + c, x[:, 0], rtol=1e-9)
    np.testing.assert_allclose(b + c, x[:, 1], rtol=1e-9)


@pytest.mark.parametrize("solver", ["tsit5", "rodas5p", "ros34pw2", "bdf", None])
def test_decay_closed_form_every_stepper(solver):
    """X -> Y at k = 0.7: saved outputs (dense output of each stepper) and final
    values against the closed form."""
    net = compile_crn(parse_crn("X -> Y [k=0.7]\ninput x = X\noutput y = Y"))
    x = np.array([[1.0], [2.5]])
    res = simulate_batch(net, x, 8.0, saveat=33, solver=solver, **TOL)
    ts = np.linspace(0.0, 8.0, 33)
    want = x[:, :1] * (1 - np.exp(-0.7 * ts))[None, :]
    np.testing.assert_allclose(res.outputs[:, :, 0], want, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.ts[0], ts)


def test_species_saved_on_the_grid():
    """`save="species"`: every species on the grid; here A <=> B relaxes to the
    equilibrium ratio as A(t) = A0 (2 + exp(-3t)) / 3."""
    net = compile_crn(parse_crn("A <=> B [kf=1, kr=2]\ninput a = A"))
    res = simulate_batch(net, np.array([[1.0], [3.0]]), 2.0, saveat=5, **TOL)
    assert res.ys.shape == (2, 5, 2)
    ts = np.linspace(0.0, 2.0, 5)
    a = np.array([1.0, 3.0])[:, None] * (2 + np.exp(-3 * ts)) / 3
    np.testing.assert_allclose(res.ys[:, :, net.index("A")], a, rtol=1e-7)
    np.testing.assert_allclose(res.ys.sum(axis=2), [[1.0] * 5, [3.0] * 5], rtol=1e-9)


@pytest.mark.slow
def test_a_large_network_that_is_not_stiff_takes_explicit_steps():
    """The automatic choice starts with Tsit5 at any size (a network of hundreds of
    species that is not stiff needs no factorisation); the answer is the matrix
    exponential of the linear chain A0 <=> A1 <=> ... <=> A299."""
    from scipy.linalg import expm

    n = 300
    text = "\n".join(f"A{i} <=> A{i + 1} [kf=1, kr=0.5]" for i in range(n - 1))
    net = compile_crn(parse_crn(text + "\ninput a = A0"))
    plan = plan_batch(net, 2)
    assert net.n_species == n and plan.stepper == "tsit5 -> rodas5p"
    x = np.array([[1.0], [2.0]])
    res = simulate_batch(net, x, 3.0, saveat=None, keep_states=True, **TOL)
    assert np.all(np.asarray(res.status) == 0)
    a = np.zeros((n, n))
    for i in range(n - 1):  # A_i -> A_{i+1} at 1, back at 0.5
        a[i, i] -= 1.0
        a[i + 1, i] += 1.0
        a[i + 1, i + 1] -= 0.5
        a[i, i + 1] += 0.5
    order = [net.index(f"A{i}") for i in range(n)]
    exact = expm(3.0 * a)[:, 0][None, :] * x
    np.testing.assert_allclose(res.y_final[:, order], exact, rtol=1e-5, atol=1e-9)


def test_stiff_samples_continue_with_rodas5p(robertson):
    """Robertson's system: Tsit5 finds it stiff, and Rodas5P continues each sample
    from where Tsit5 stopped; the result equals Rodas5P from the start (to the
    tolerance) and conserves A + B + C."""
    plan = plan_batch(robertson, 4)
    assert plan.stepper == "tsit5 -> rodas5p" and plan.linear_solve == "sparse LU"
    x = np.array([[1.0], [0.5], [2.0], [1.5]])
    kw = dict(saveat=None, keep_states=True, rtol=1e-8, atol=1e-12)
    auto = simulate_batch(robertson, x, 40.0, **kw)
    rodas = simulate_batch(robertson, x, 40.0, solver="rodas5p", **kw)
    assert (auto.status == Status.OK).all() and (rodas.status == Status.OK).all()
    np.testing.assert_allclose(auto.y_final, rodas.y_final, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(auto.y_final.sum(axis=1), x[:, 0], rtol=1e-8)
    # an explicit method alone would need far more steps than the switch took
    assert np.max(auto.num_steps) < 2000


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a CPU-only lock")
def test_dense_lu_workers_take_turns_in_rodas5p():
    """The dense layout: two workers in Tsit5, their Rodas5P passes (a LAPACK LU,
    which can deadlock in two threads at once) one at a time; the same answer as
    Rodas5P from the start, in input order."""
    x = np.array([[1.0], [0.5], [2.0], [1.5]])
    kw = dict(saveat=None, keep_states=True, rtol=1e-8, atol=1e-12)
    rodas = simulate_batch(
        compile_crn(parse_crn(ROBERTSON)), x, 40.0, solver="rodas5p", **kw
    )
    dense = compile_crn(parse_crn(ROBERTSON), form="dense")
    plan = plan_batch(dense, 4, workers=2, lanes=1)
    assert plan.workers == 2 and plan.serial_stiff
    both = simulate_batch(dense, x, 40.0, workers=2, lanes=1, **kw)
    assert (both.status == Status.OK).all()
    np.testing.assert_allclose(both.y_final, rodas.y_final, rtol=1e-5, atol=1e-10)


def test_ros34pw2_keeps_order_3_with_any_matrix():
    """The W property that lets one factorisation serve many steps: with the exact
    Jacobian or with a perturbed one, the global error falls as h^3 (pendulum with
    friction, against RK4 with 100x smaller steps)."""
    from jaxcrn._solvers import ros34pw2

    def f(t, y):
        return np.array([y[1], -np.sin(y[0]) - 0.1 * y[1]])

    def jac(y):
        return np.array([[0.0, 1.0], [-np.cos(y[0]), -0.1]])

    def integrate(n, step):
        y, h = np.array([1.0, 0.0]), 2.0 / n
        for _ in range(n):
            y = step(y, h)
        return y

    def rk4(y, h):
        k1 = f(0, y)
        k2 = f(0, y + h / 2 * k1)
        k3 = f(0, y + h / 2 * k2)
        return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + f(0, y + h * k3))

    ref = integrate(16_000, rk4)
    for perturb in (0.0, 1.0):

        def w_step(y, h, perturb=perturb):
            a = jac(y) + perturb * np.array([[0.3, -0.5], [0.7, 0.2]])
            m = np.eye(2) / (ros34pw2.GAMMA * h) - a
            return ros34pw2.ros34pw2_stages(
                f, lambda b: np.linalg.solve(m, b), 0.0, h, y, f(0, y)
            )[0]

        errs = [np.linalg.norm(integrate(n, w_step) - ref) for n in (20, 40, 80)]
        orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all((orders > 2.8) & (orders < 3.3)), (perturb, orders)


def test_bdf_history_is_exact_for_polynomials():
    """The BDF stepper's history arithmetic (per-lane orders 1-5): for a
    polynomial of degree <= k sampled at spacing h, the backward differences
    rescaled by `change_d` are those at spacing f h, the step's interpolant
    reproduces the polynomial between the last two points, `predict` extrapolates
    it to the next point, and `update_d` with the correction that lands on the
    next point gives the differences there."""
    from jaxcrn._solvers import bdf

    rng = np.random.default_rng(7)
    orders = np.array([1, 2, 3, 4, 5, 3, 5])
    lanes, n = orders.size, 3
    coef = rng.normal(size=(6, n, lanes))
    coef *= np.arange(6)[:, None, None] <= orders[None, None, :]  # degree <= k
    h = rng.uniform(0.2, 1.0, lanes)
    f = rng.uniform(0.3, 2.5, lanes)
    t_n = 0.4

    def poly(t):  # (n, lanes) at per-lane times t
        return sum(coef[j] * t[None, :] ** j for j in range(6))

    def diffs(step):  # backward differences at t_n, spacing `step`, rows 0..7
        pts = [poly(t_n - i * step) for i in range(8)]
        d = np.zeros((bdf.ROWS, n, lanes))
        cur = pts
        for j in range(bdf.ROWS):
            d[j] = cur[0]
            cur = [cur[i] - cur[i + 1] for i in range(len(cur) - 1)]
        return d

    k = jnp.asarray(orders, jnp.int32)
    d = diffs(h)
    got = np.asarray(bdf.change_d(jnp.asarray(d), k, jnp.asarray(f)))
    want = diffs(f * h)
    for lane, order in enumerate(orders):
        np.testing.assert_allclose(
            got[: order + 1, :, lane], want[: order + 1, :, lane], atol=1e-10
        )
    theta = rng.uniform(0, 1, lanes)
    rows = [jnp.asarray(d[j]) for j in range(bdf.MAX_ORDER + 1)]
    dense = np.asarray(bdf.dense_eval(rows, k, jnp.asarray(theta)))
    np.testing.assert_allclose(dense, poly(t_n - h + theta * h), atol=1e-10)
    y_pred, _ = bdf.predict(jnp.asarray(d), k)
    np.testing.assert_allclose(np.asarray(y_pred), poly(t_n + h), atol=1e-10)
    # a step to t_n + h that lands on the polynomial: the correction is 0 and the
    # new differences are the polynomial's at t_n + h
    t_next = t_n + h
    new = np.asarray(bdf.update_d(jnp.asarray(d), jnp.zeros((n, lanes)), k))
    pts = [poly(t_next - i * h) for i in range(8)]
    for lane, order in enumerate(orders):
        cur = [p_[:, lane] for p_ in pts]
        for j in range(order + 1):
            np.testing.assert_allclose(new[j, :, lane], cur[0], atol=1e-9)
            cur = [cur[i] - cur[i + 1] for i in range(len(cur) - 1)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "solver, lanes, t1", [("ros34pw2", 2, 40.0), ("bdf", 2, 1e4), ("bdf", 8, 1e4)]
)
def test_steppers_that_reuse_factors_match_rodas5p(robertson, solver, lanes, t1):
    """The steppers whose factorisations serve several steps on Robertson's stiff
    system, lanes refilled (9 samples): ROS34PW2 (all lanes refactor together)
    and BDF (variable order; each lane refreshes its own factors, one of 2 lanes
    or 2 of 8 gathered), to t = 40 and 1e4: the same answers as Rodas5P, mass
    conserved, and the stiff tail in far fewer steps than an explicit method could
    take."""
    x = np.array([[1.0], [0.5], [2.0], [1.5], [0.8], [1.2], [0.3], [3.0], [0.9]])
    kw = dict(saveat=None, keep_states=True, rtol=1e-8, atol=1e-12, lanes=lanes)
    got = simulate_batch(robertson, x, t1, solver=solver, **kw)
    rodas = simulate_batch(robertson, x, t1, solver="rodas5p", **kw)
    assert plan_batch(robertson, 9, solver=solver).stepper == solver
    assert (got.status == Status.OK).all()
    np.testing.assert_allclose(got.y_final, rodas.y_final, rtol=2e-5, atol=1e-11)
    np.testing.assert_allclose(got.y_final.sum(axis=1), x[:, 0], rtol=1e-8)
    assert np.all(np.asarray(got.num_steps) < 2000)


@pytest.mark.slow
def test_diffrax_solver_adapter(dimerisation):
    """Any diffrax adaptive solver runs in the same scheduler (Kvaerno5: its root
    finder takes the step-size controller's tolerances, as in diffeqsolve). Two
    lanes on one worker for three samples: the solver's vmapped state (lane axis
    first) is kept per lane through accepted steps and refills."""
    x = np.array([[1.0, 2.0], [0.5, 0.5], [2.0, 0.1]])
    kw = dict(saveat=None, lanes=2, workers=1, **TOL)
    kvaerno = simulate_batch(dimerisation, x, 5.0, solver=diffrax.Kvaerno5(), **kw)
    own = simulate_batch(dimerisation, x, 5.0, solver=Rodas5P(), **kw)
    np.testing.assert_allclose(kvaerno.outputs_final, own.outputs_final, rtol=1e-6)
    assert plan_batch(dimerisation, 2, solver=diffrax.Kvaerno5()).stepper == (
        "diffrax:Kvaerno5"
    )


@pytest.mark.slow
def test_lanes_workers_chunks_change_nothing(iris_nets):
    """Per-sample step control: a sample's steps do not depend on how many lanes
    run beside it, on the threads or on the chunks, and its answer only to
    round-off (XLA vectorises arrays of other widths differently)."""
    _, _, reduced = iris_nets
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (11, 4)))
    kw = dict(saveat=6, rtol=1e-7, atol=1e-9)
    base = simulate_batch(reduced, x, 30.0, lanes=16, workers=1, **kw)
    for extra in (dict(lanes=2, workers=1), dict(lanes=3, workers=2, chunk_size=5)):
        other = simulate_batch(reduced, x, 30.0, **extra, **kw)
        np.testing.assert_array_equal(other.num_steps, base.num_steps)
        np.testing.assert_allclose(other.outputs, base.outputs, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_compiled_network_agrees_with_forward_pass(iris_nets):
    """IRIS, full and reduced CRN: the engine's argmax equals the network's, and the
    exact input layer changes nothing but speed."""
    params, full, reduced = iris_nets
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (8, 4)))
    fwd = forward(params, x)
    for net in (full, reduced):
        assert plan_batch(net, 8).exact_inputs
        a = simulate_batch(net, x, 60.0, saveat=None, keep_states=True, **TOL)
        b = simulate_batch(
            net, x, 60.0, saveat=None, keep_states=True, exact_inputs=False, **TOL
        )
        np.testing.assert_array_equal(a.outputs_final.argmax(1), fwd.argmax(1))
        np.testing.assert_allclose(a.y_final, b.y_final, rtol=1e-5, atol=1e-7)
        # input species hold X(0) exp(-t) at the end
        i = net.index("X0p") if x[0, 0] > 0 else net.index("X0n")
        np.testing.assert_allclose(a.y_final[0, i], abs(x[0, 0]) * np.exp(-60.0))


@pytest.mark.slow  # 8 s each, run by .ci/run's slow set
@pytest.mark.parametrize("solver", ["tsit5", "rodas5p"])
def test_exact_inputs_with_a_decay_rate_per_species(iris_nets, solver):
    """A rate ensemble gives every input species its own decay rate: the inputs
    stay exact (forcing per decay reaction, and its time derivative in Rodas5P),
    and equal the same rate sets integrated with the inputs in the state."""
    params, _, reduced = iris_nets
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 4))
    rates = np.exp(rng.uniform(np.log(0.2), np.log(5.0), (4, reduced.n_reactions)))
    plan = plan_batch(reduced, 4, rates=rates, solver=solver)
    assert plan.exact_inputs and not plan.common_decay
    assert "a decay rate per species" in str(plan)
    ts = np.linspace(0.0, 40.0, 9)
    kw = dict(rates=rates, saveat=ts, save="species", solver=solver, **TOL)
    a = simulate_batch(reduced, x, 40.0, **kw)
    b = simulate_batch(reduced, x, 40.0, exact_inputs=False, **kw)
    assert (a.status == 0).all() and (b.status == 0).all()
    np.testing.assert_allclose(a.ys, b.ys, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        a.outputs_final.argmax(1), forward(params, x).argmax(1)
    )
    # an input species holds X(0) exp(-K t), K the sum of its own decay rates
    s = reduced.structure
    i = reduced.index("X0p") if x[0, 0] > 0 else reduced.index("X0n")
    k = sum(rates[0, r] for r in range(s.n_reactions) if s.reactants[r] == (i,))
    np.testing.assert_allclose(a.ys[0, :, i], abs(x[0, 0]) * np.exp(-k * ts))


def test_per_sample_rates_and_states(dimerisation):
    """`rates` `(batch, reactions)` and `y0` `(batch, species)`: each sample equals
    a run of the network with those rates and initial state."""
    rng = np.random.default_rng(3)
    rates = rng.uniform(0.2, 3.0, (3, 2))
    y0 = rng.uniform(0.1, 2.0, (3, 3))
    x = np.zeros((3, 2))
    res = simulate_batch(
        dimerisation, x, 4.0, rates=rates, y0=y0, saveat=None, keep_states=True, **TOL
    )
    for i in range(3):
        net = dimerisation.with_rates(rates[i])
        ref = simulate(net, jnp.asarray(y0[i]), 4.0, saveat=None, **TOL)
        np.testing.assert_allclose(res.y_final[i], ref.y_final, rtol=1e-7)


def test_one_plan_runs_every_batch_size_on_one_program(dimerisation):
    """`simulate_batch(..., plan=)`: batches smaller than the plan's chunk (padded,
    the padding ending at once) and larger ones (several chunks) give the answers of
    a planned call and compile nothing new; a plan that does not fit is refused."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 2.0, (13, 2))
    rates = rng.uniform(0.5, 2.0, (13, 2))
    kw = dict(saveat=5, rtol=1e-8, atol=1e-11)
    ref = simulate_batch(dimerisation, x, 5.0, rates=rates, **kw)  # planned itself
    plan = plan_batch(dimerisation, 6, workers=2, rates=rates[:6])
    first = simulate_batch(dimerisation, x[:6], 5.0, rates=rates[:6], plan=plan, **kw)
    for n in (1, 4, 13):
        got, compiled = compilations(
            lambda n=n: simulate_batch(
                dimerisation, x[:n], 5.0, rates=rates[:n], plan=plan, **kw
            )
        )
        assert compiled == 0, n
        assert got.outputs.shape == ref.outputs[:n].shape
        np.testing.assert_array_equal(got.status, 0)
        np.testing.assert_array_equal(got.num_steps, ref.num_steps[:n])
        np.testing.assert_allclose(got.outputs, ref.outputs[:n], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(first.outputs, got.outputs[:6])
    with pytest.raises(ValueError, match="lanes cannot be passed with plan="):
        simulate_batch(dimerisation, x, 5.0, plan=plan, lanes=4)
    other = compile_crn(parse_crn("A -> B [k=1]\ninput a = A\noutput b = B"))
    with pytest.raises(ValueError, match="the plan is for another network"):
        simulate_batch(other, x[:, :1], 5.0, plan=plan_batch(dimerisation, 4))
    with pytest.raises(TypeError, match="plan"):
        simulate_batch(dimerisation, x, 5.0, plan={"lanes": 4})


def test_batch_sizes_of_one_size_class_share_a_program(dimerisation):
    """Without a plan, a batch smaller than a chunk is padded to a power of two per
    worker: batches of 9 to 16 samples per worker run the program the first one
    compiled (each new batch size cost 3-10 s of compiling before), with each
    sample's answer and steps as in a batch of its own, and the samples split evenly
    over the workers."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0.2, 2.0, (32, 2))
    kw = dict(saveat=4, rtol=1e-8, atol=1e-11, workers=2)
    first = simulate_batch(dimerisation, x[:20], 5.0, **kw)
    for n in (17, 25, 32):
        assert plan_batch(dimerisation, n, workers=2).share_size == 16
        got, compiled = compilations(
            lambda n=n: simulate_batch(dimerisation, x[:n], 5.0, **kw)
        )
        assert compiled == 0, n
        m = min(n, 20)
        np.testing.assert_array_equal(got.num_steps[:m], first.num_steps[:m])
        np.testing.assert_allclose(
            got.outputs[:m], first.outputs[:m], rtol=1e-12, atol=1e-14
        )
    alone = simulate_batch(dimerisation, x[24:25], 5.0, **kw)
    np.testing.assert_array_equal(alone.num_steps[0], got.num_steps[24])
    assert plan_batch(dimerisation, 33, workers=2).share_size == 32
    assert plan_batch(dimerisation, 5000, workers=2, chunk_size=1000).share_size == 500


# -- statuses and errors ---------------------------------------------------------------


def test_fast_kinetics_take_steps_far_below_1e_12():
    """`300 A -> S` from A = 1.1-2: the first reaction time is 1e-17-1e-90, so the
    first steps are that short. Both the initial step and the test for a failed
    step had floors in absolute time (1e-12, 5e-14) and every sample ended as
    non-finite at t = 0 where diffrax solved it; now each follows the closed form
    A(t) = (A0^(1-n) + n (n-1) k t)^(1/(1-n))."""
    n, k, t1 = 300, 2.0, 10.0
    net = compile_crn(parse_crn(f"{n} A -> S [k={k}]"))
    a0 = np.array([1.1, 1.5, 2.0])
    y0 = np.stack([a0, np.zeros(3)], axis=1)
    res = simulate_batch(net, None, t1, y0=y0, saveat=None, save="species")
    assert (res.status == Status.OK).all()
    a = np.exp(np.log(a0 ** (1 - n) + n * (n - 1) * k * t1) / (1 - n))
    np.testing.assert_allclose(res.y_final[:, 0], a, rtol=1e-5)
    np.testing.assert_allclose(res.y_final[:, 1], (a0 - a) / n, rtol=1e-5)


@pytest.mark.slow
def test_out_of_steps_and_overflow_are_flagged_per_sample(iris_nets):
    _, _, reduced = iris_nets
    x = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, -2.0, 1.0, 0.5]])
    res = simulate_batch(reduced, x, 50.0, max_steps=20, saveat=5, solver="rodas5p")
    assert res.status[1] == Status.MAX_STEPS
    bad = res.status != Status.OK
    assert np.isnan(res.outputs_final[bad]).all() and not res.converged[bad].any()
    huge = simulate_batch(reduced, np.array([[1e308, 0.0, 0.0, 1.0]]), 5.0)
    assert huge.status[0] == Status.NONFINITE


def test_early_stop_fills_the_grid():
    net = compile_crn(parse_crn("X -> Y\ninput x = X\noutput y = Y"))
    x = np.array([[1.0], [2.0]])
    res = simulate_batch(
        net,
        x,
        1000.0,
        stop_when_steady=True,
        steady_tol=1e-6,
        saveat=np.linspace(0.0, 1000.0, 101),
        **TOL,
    )
    for i, xi in enumerate(x[:, 0]):
        t_expected = np.log(xi * 1e6)  # |dY/dt| = x exp(-t) <= 1e-6
        assert t_expected <= res.t_final[i] < t_expected + 2.0
        assert res.converged[i] and res.t_converged[i] <= res.t_final[i]
        after = res.ts[i] > res.t_final[i]
        assert after.sum() > 90
        np.testing.assert_allclose(res.outputs[i, after, 0], res.outputs_final[i, 0])
        np.testing.assert_allclose(res.outputs_final[i, 0], xi, rtol=1e-5)


def test_plan_is_printable_and_rejects_unknown_values(iris_nets, dimerisation):
    _, _, reduced = iris_nets
    plan = plan_batch(reduced, 1000, workers=2)
    text = str(plan)
    assert "block substitution" in text and "exact inputs" in text and plan.exact_inputs
    assert plan.to_dict()["workers"] == 2
    if jax.default_backend() == "cpu":  # LAPACK from two threads can deadlock
        dense = compile_crn(parse_crn(DIMERISATION), form="dense")
        one = plan_batch(dense, 1000, workers=2, solver="rodas5p")
        assert one.linear_solve == "dense LU" and one.workers == 1
        big = compile_crn(
            parse_crn("\n".join(f"A{i} <=> A{i + 1}" for i in range(400))),
            form="dense",
        )
        auto = plan_batch(big, 1000, workers=2)  # Tsit5 wide, Rodas5P in cache
        assert auto.workers == 2 and auto.serial_stiff
        assert (
            auto.lanes == 32 and auto.stiff_lanes == 4 and "(4 in Rodas5P)" in str(auto)
        )
        # Tsit5 hands a sample over only far from t1, in proportion to what a
        # dense factorisation (n^3 / 3) costs against six right-hand sides (401
        # species, 800 reactions of one reactant, 1,600 net stoichiometry entries)
        ratio = (401**3 / 3) / (6 * (2 * 800 + 1600))
        assert auto.stiff_far == math.ceil(50 * ratio) > 50
        assert f"{ratio:.3g} Tsit5 steps" in auto.details["stiff switch"]
        from jaxcrn._batch.driver import _steppers

        assert _steppers(auto, None)[0].far == auto.stiff_far
    sparse = plan_batch(compile_crn(parse_crn(DIMERISATION)), 100)
    assert sparse.stiff_far == 50 and "stiff switch" not in sparse.details
    with pytest.raises(ValueError, match="'auto', 'tsit5', 'rodas5p'"):
        plan_batch(dimerisation, 10, solver="rodas")
    with pytest.raises(ValueError, match="lanes must be a positive integer"):
        plan_batch(dimerisation, 10, lanes=0)
    with pytest.raises(ValueError, match="exact_inputs=True is not possible"):
        plan_batch(dimerisation, 10, exact_inputs=True)
    with pytest.raises(ValueError, match=r"y0\[1, 2\] \(species C\) = -1.0"):
        simulate_batch(dimerisation, np.zeros((2, 2)), 1.0, y0=[[1, 1, 1], [1, 1, -1]])
    with pytest.raises(ValueError, match="same number of rows"):
        simulate_batch(dimerisation, np.zeros((2, 2)), 1.0, rates=np.ones((3, 2)))


def test_float32_network():
    """A float32 network stays float32 through the engine (no silent promotion)."""
    net = compile_crn(
        parse_crn("X -> Y + Z\nZ + W -> 0\ninit W = 1\ninput x = X\noutput y = Y - Z"),
        dtype=jnp.float32,
    )
    x = np.array([[0.5], [2.0]])
    res = simulate_batch(net, x, 20.0, saveat=5, keep_states=True, rtol=1e-5, atol=1e-7)
    assert res.outputs.dtype == res.y_final.dtype == np.float32
    # y = x - max(x - 1, 0): W annihilates up to 1 of Z
    np.testing.assert_allclose(res.outputs_final[:, 0], [0.5, 1.0], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("solver", [None, "bdf"])
def test_random_compiled_network_rates_independent(solver):
    """A random ternary network compiled and reduced: the CRN's outputs equal the
    network's under per-sample random rate sets too (rate independence), with the
    default plan and with BDF (layered block solves, exact inputs decaying at a
    rate per reaction, factors refreshed per lane)."""
    rng = np.random.default_rng(7)
    params = random_params((3, 4, 2), rng, ternary=True)
    net = compile_crn(reduce_crn(nn_to_crn(params)))
    x = rng.normal(size=(6, 3))
    rates = rng.uniform(0.5, 2.0, (6, net.n_reactions))
    plan = plan_batch(net, 6, rates=rates, solver=solver)
    assert plan.linear_solve == "block substitution" and plan.exact_inputs
    kw = dict(rates=rates, saveat=None, rtol=1e-8, atol=1e-10, solver=solver)
    res = simulate_batch(net, x, 400.0, **kw)
    np.testing.assert_allclose(res.outputs_final, forward(params, x), atol=2e-3)


@pytest.mark.slow  # 6 s
def test_near_the_mapping_limit_compiled_programs_are_released(monkeypatch):
    """Every compiled program keeps memory mappings, and XLA's compiler crashes
    when the process has none left (vm.max_map_count): near the limit, JAX's
    compiled programs are cleared with a warning, which `simulate_batch` checks
    for before it compiles. The mappings go down, and the programs compiled again
    give the same results."""
    from jaxcrn import _memory_maps as mm

    if mm.maps_in_use() is None:
        pytest.skip("no /proc/self/maps to count mappings in (not Linux)")
    net = compile_crn(parse_crn("A + B <=> C\nC -> D\ninit A = 1\ninit B = 2"))
    first = simulate_batch(net, None, 5.0, y0=np.tile(net.y_init, (3, 1)), **TOL)
    before = mm.maps_in_use()[0]
    # as if the limit were near: any count is above it, and a count is due
    monkeypatch.setattr(mm, "NEAR_LIMIT", 1e-9)
    mm._compiles[0] = mm.CHECK_EVERY
    with pytest.warns(RuntimeWarning, match=r"Cleared JAX's compiled programs.*vm\."):
        assert mm.release_if_near_limit()
    assert mm.maps_in_use()[0] < before
    mm._compiles[0] = mm.CHECK_EVERY
    with pytest.warns(RuntimeWarning, match=r"Cleared JAX's compiled programs"):
        again = simulate_batch(net, None, 5.0, y0=np.tile(net.y_init, (3, 1)), **TOL)
    np.testing.assert_array_equal(again.ys, first.ys)
    # far from the real limit, a due check clears nothing
    monkeypatch.setattr(mm, "NEAR_LIMIT", 0.75)
    mm._compiles[0] = mm.CHECK_EVERY
    used, limit = mm.maps_in_use()
    assert used < 0.75 * limit and not mm.release_if_near_limit()
