import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from jaxcrn import (
    Experiment,
    Status,
    ToleranceWarning,
    compile_crn,
    convergence_times,
    parse_crn,
    simulate,
    simulate_batch,
    simulate_differentiable,
)
from jaxcrn.scan import cross

from .helpers import compilations


TOL = dict(rtol=1e-9, atol=1e-11)


@pytest.fixture(scope="module")
def decay():  # A -> B, k = 0.7
    return compile_crn(parse_crn("A -> B [k=0.7]\ninit A = 2"))


@pytest.fixture(scope="module")
def dimerisation():  # A + B <-> C, k+ = 1, k- = 0.5
    return compile_crn(parse_crn("A + B <=> C [kf=1, kr=0.5]"))


@eqx.filter_jit
def final_state(network, y0, t1):
    return simulate(network, y0, t1, **TOL).y_final


def test_decay_closed_form(decay):
    ts = jnp.linspace(0.0, 40.0, 401)
    res = simulate(
        decay, decay.y_init, jnp.asarray(40.0), saveat=ts, steady_tol=1e-6, **TOL
    )
    expected = 2.0 * np.exp(-0.7 * np.asarray(ts))
    np.testing.assert_allclose(res.ys[:, 0], expected, rtol=1e-7, atol=1e-11)
    np.testing.assert_allclose(res.ys[:, 1], 2.0 - expected, rtol=1e-7, atol=1e-12)
    assert res.status == Status.OK and int(res.num_steps) > 0
    # t_converged on the grid: |dA/dt| = 1.4 exp(-0.7 t) <= 1e-6 from t = 20.2 on
    t_expected = np.log(1.4e6) / 0.7
    assert t_expected <= float(res.t_converged) <= t_expected + 0.1 + 1e-9


@pytest.mark.parametrize("solver", [None, diffrax.Kvaerno5()])
def test_equilibrium(dimerisation, solver):
    y0 = jnp.array([1.0, 2.0, 0.0])
    res = simulate(dimerisation, y0, jnp.asarray(60.0), solver=solver, **TOL)
    y = res.y_final
    np.testing.assert_allclose(y[0] * y[1] / y[2], 0.5, rtol=1e-5)
    assert bool(res.converged)


@given(y0=arrays(np.float64, 3, elements=st.floats(0.0, 10.0)))
def test_conservation_laws(dimerisation, y0):
    y = final_state(dimerisation, jnp.asarray(y0), jnp.asarray(5.0))
    np.testing.assert_allclose(y[0] + y[2], y0[0] + y0[2], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(y[1] + y[2], y0[1] + y0[2], rtol=1e-8, atol=1e-10)
    assert bool(jnp.all(y >= -1e-10))


@pytest.mark.parametrize("k", [1e12, pytest.param(1e20, marks=pytest.mark.slow)])
def test_fast_reactions_conserve_mass_at_the_default_initial_step(k):
    # diffrax 0.7 starts any solve at dt0 = 0.01 when none is given; a Rosenbrock
    # step with k h = 1e10 or more then decays A in one step and loses ~eps k h of
    # the mass in rounding (B = 1.0000055 at k = 1e12, 0.99996 at k = 1e20, exit 0):
    # the initial step is Hairer's, as in the batch engine, within rtol of exact
    net = compile_crn(parse_crn(f"A -> B [k={k:g}]\ninit A = 1"))
    for run in (
        lambda: simulate(net, net.y_init, jnp.asarray(1.0), rtol=1e-6, atol=1e-9),
        lambda: simulate_batch(net, None, 1.0, y0=np.asarray(net.y_init)[None]),
    ):
        y = np.asarray(run().y_final).reshape(-1)
        assert abs(y[0] + y[1] - 1.0) <= 1e-6 and abs(y[0]) <= 1e-9


SEEDS = {
    # A + B -> 2 B from B = eps: the logistic curve, N = 1 + eps
    "autocatalysis": (
        "A + B -> 2 B\ninit A = 1\ninit B = 1e-12",
        "B",
        lambda t: (
            (1 + 1e-12) / (1 + (1 + 1e-12 - 1e-12) / 1e-12 * np.exp(-(1 + 1e-12) * t))
        ),
    ),
    # a cycle of catalysts, no species catalysing itself: X = eps cosh t
    "catalytic cycle": (
        "X -> X + Y\nY -> Y + X\ninit X = 1e-12",
        "X",
        lambda t: 1e-12 * np.cosh(t),
    ),
    # a cycle of conversions that multiply, no catalyst: A = eps (e^t + e^-3t) / 2
    "conversion cycle": (
        "A -> 2 B\nB -> 2 A\ninit A = 1e-12",
        "A",
        lambda t: 0.5e-12 * (np.exp(t) + np.exp(-3 * t)),
    ),
}


@pytest.mark.parametrize(
    "case, ways",
    # the default suite checks catalysis both ways; the cycles and the other
    # solvers and layouts are slow (run by .ci/run): each way compiles afresh
    [("autocatalysis", ("simulate", "batch auto"))]
    + [
        pytest.param(case, ("simulate", "batch auto"), marks=pytest.mark.slow)
        for case in sorted(SEEDS)
        if case != "autocatalysis"
    ]
    + [
        pytest.param(
            case,
            ("simulate tsit5", "batch tsit5", "batch rodas5p", "batch dense"),
            marks=pytest.mark.slow,
        )
        for case in sorted(SEEDS)
    ],
)
def test_growth_from_a_seed_below_the_tolerances(case, ways):
    # a long step, implicit (damped) or explicit (a polynomial), misses growth that
    # the error estimate cannot see below atol: B stayed at 4e-11 instead of 1
    text, name, exact = SEEDS[case]
    ts = np.array([10.0, 25.0, 27.6, 30.0])

    def run(way):
        kind, _, how = way.partition(" ")
        net = compile_crn(parse_crn(text), form="dense" if how == "dense" else "auto")
        how = None if how == "dense" else how
        i = net.index(name)
        if kind == "simulate":
            solver = diffrax.Tsit5() if how == "tsit5" else None
            return simulate(
                net, net.y_init, jnp.asarray(30.0), saveat=jnp.asarray(ts),
                solver=solver,
            ).ys[:, i]  # fmt: skip
        return simulate_batch(
            net, None, 30.0, y0=np.asarray(net.y_init)[None], saveat=ts,
            save="species", solver=how,
        ).ys[0, :, i]  # fmt: skip

    for label in ways:
        np.testing.assert_allclose(
            np.asarray(run(label)), exact(ts), rtol=1e-4, err_msg=f"{case}, {label}"
        )


def test_a_seed_that_has_yet_to_grow_is_not_a_steady_state():
    # max |dy/dt| = 1e-12 <= steady_tol at t = 0: the early stop ended there
    net = compile_crn(parse_crn("A + B -> 2 B\ninit A = 1\ninit B = 1e-12"))
    single = simulate(net, net.y_init, jnp.asarray(100.0), stop_when_steady=True)
    batch = simulate_batch(
        net, None, 100.0, y0=np.asarray(net.y_init)[None], stop_when_steady=True
    )
    for y, t in (
        (single.y_final, single.t_final),
        (batch.y_final[0], batch.t_final[0]),
    ):
        np.testing.assert_allclose(np.asarray(y), [0.0, 1.0], atol=1e-5)
        assert 27.6 < float(t) < 100.0  # B crosses 1/2 at t = ln(1e12) = 27.6


@pytest.mark.slow
def test_growth_bound_is_none_without_catalysis_and_bounds_the_spectrum():
    for text in (
        "A -> B",
        "A + B <=> C",
        "A <=> B\nB -> C\nC -> A",
        "G -> G + M\nM -> M + P\nM -> 0\nP -> 0",
    ):
        net = compile_crn(parse_crn(text))
        assert net.kinetics.growth_terms is None, text
    rng = np.random.default_rng(0)
    for text in (
        "A + B -> 2 B\nB -> 0 [k=0.3]",
        "2 X + Y -> 3 X [k=2]\nX -> 0 [k=0.5]\n0 -> Y",
        "X + Y -> 2 Y\nY + Z -> 2 Z\nZ + X -> 2 X",
        "X -> X + Y [k=2]\nY -> Y + Z [k=3]\nZ -> Z + X [k=5]\nX -> 0\nY -> 0",
        "A -> 2 B\nB -> 2 A [k=3]\nB -> 0 [k=0.5]",
    ):
        net = compile_crn(parse_crn(text))
        y = jnp.asarray(rng.uniform(0.01, 2.0, (net.n_species, 8)))
        g = np.asarray(net.kinetics.growth_rate(y, net.rates))
        jac = np.asarray(net.kinetics.jacobian(y, net.rates))
        alpha = [np.linalg.eigvals(jac[:, :, j]).real.max() for j in range(8)]
        assert np.all(g >= np.maximum(alpha, 0) - 1e-12), (text, g, alpha)


def test_vmap_matches_loop(dimerisation):
    y0s = jnp.asarray(np.random.default_rng(0).uniform(0, 3, (5, 3)))
    t1 = jnp.asarray(4.0)
    batched = jax.vmap(final_state, in_axes=(None, 0, None))(dimerisation, y0s, t1)
    looped = jnp.stack([final_state(dimerisation, y, t1) for y in y0s])
    np.testing.assert_allclose(batched, looped, rtol=1e-10, atol=1e-12)


def _c_final(rates, y0, network):
    return simulate(network.with_rates(rates), y0, jnp.asarray(2.0), **TOL).y_final[2]


@pytest.mark.slow
def test_grad_matches_central_differences(dimerisation):
    rates = jnp.array([1.0, 0.5])
    y0 = jnp.array([1.0, 2.0, 0.3])
    f = eqx.filter_jit(_c_final)
    g_rates, g_y0 = jax.grad(f, argnums=(0, 1))(rates, y0, dimerisation)
    eps = 1e-6
    for i in range(2):
        e = jnp.zeros(2).at[i].set(eps)
        fd = (f(rates + e, y0, dimerisation) - f(rates - e, y0, dimerisation)) / 2 / eps
        np.testing.assert_allclose(g_rates[i], fd, rtol=1e-4)
    for i in range(3):
        e = jnp.zeros(3).at[i].set(eps)
        fd = (f(rates, y0 + e, dimerisation) - f(rates, y0 - e, dimerisation)) / 2 / eps
        np.testing.assert_allclose(g_y0[i], fd, rtol=1e-4, atol=1e-9)


def test_no_recompilation(dimerisation):
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(network, y0, t1):
        return simulate(network, y0, t1, **TOL).y_final

    for k, t1 in enumerate([1.0, 2.0, 3.0]):
        net = dimerisation.with_rates(jnp.array([1.0 + k, 0.5]))
        run(net, jnp.array([1.0, 2.0, float(k)]), jnp.asarray(t1))


def test_max_steps_is_flagged_not_raised(dimerisation):
    y0s = jnp.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    res = jax.vmap(
        lambda y: simulate(dimerisation, y, jnp.asarray(50.0), max_steps=12, **TOL)
    )(y0s)
    assert res.status.tolist() == [Status.MAX_STEPS, Status.OK]
    assert res.converged.tolist() == [False, True]
    assert bool(jnp.isnan(res.y_final[0]).all())
    assert (
        bool(jnp.isnan(res.outputs_final[0]).all()) or res.outputs_final.shape[1] == 0
    )


def test_negative_single_rail_input_is_flagged():
    net = compile_crn(parse_crn("X -> Y\ninput x = X\noutput y = Y"))
    y0 = net.initial_state(jnp.array([-1.0]))
    res = simulate(net, y0, jnp.asarray(1.0), **TOL)
    assert int(res.status) == Status.NONFINITE and not bool(res.converged)
    with pytest.raises(ValueError, match="single species"):
        simulate_batch(net, np.array([[1.0], [-1.0]]), 1.0, progress=False)


def test_negative_concentration_is_an_error(dimerisation):
    # a concrete y0 is named before anything is compiled; under vmap (traced) the
    # program checks it when it runs
    y0 = jnp.array([1.0, -2.0, 0.0])
    with pytest.raises(ValueError, match=r"y0\[1\] \(\w+\) = -2: y0 has a negative"):
        simulate(dimerisation, y0, 1.0, **TOL)
    with pytest.raises(eqx.EquinoxRuntimeError, match="negative concentration"):
        jax.vmap(lambda y: simulate(dimerisation, y, 1.0, **TOL).y_final)(y0[None])


def test_a_new_end_time_compiles_nothing(dimerisation):
    y0 = jnp.array([1.0, 0.5, 0.0])
    first = simulate(dimerisation, y0, 1.0, saveat=5, **TOL)
    second, compiled = compilations(
        lambda: simulate(dimerisation, y0, 2.0, saveat=5, **TOL)
    )
    assert compiled == 0
    assert float(second.t_final) == 2.0 and float(first.t_final) == 1.0
    for res in (first, second):  # A + C and B + C are conserved
        assert int(res.status) == Status.OK
        a, b, c = np.asarray(res.y_final)
        np.testing.assert_allclose([a + c, b + c], [1.0, 0.5], rtol=1e-8)
    assert np.asarray(second.y_final)[2] > np.asarray(first.y_final)[2]  # C grows


_A_TO_B = "A -> B\ninit A = 1"


@pytest.mark.parametrize(
    "call, match",
    [
        # each of these returned a result with status OK (an unsorted saveat gave
        # B(3) = 0.867 instead of 0.950, rtol=-1 a value 1e-3 off), or crashed
        (dict(saveat=np.array([3.0, 1.0, 5.0])), r"saveat\[1\] = 1 is earlier"),
        (dict(saveat=np.array([-1.0, 1.0])), r"saveat\[0\] = -1 is before t = 0"),
        (dict(saveat=np.array([1.0, 10.0])), r"saveat\[1\] = 10 is after t1 = 5"),
        (dict(saveat=np.array([1.0, np.nan])), r"saveat\[1\] = nan is not finite"),
        (dict(rtol=-1.0), r"rtol must be a relative tolerance in \(0, 1\), got -1.0"),
        (dict(atol=float("nan")), "atol must be an absolute tolerance >= 0, got nan"),
        (dict(steady_tol=float("inf")), "steady_tol must be a positive finite"),
        (dict(max_steps=2**40), "max_steps must be an integer from 1 to 2147483647"),
        (dict(max_steps=0), "max_steps must be an integer from 1"),
        (dict(offset=-1.0), "offset must be a concentration >= 0, got -1.0"),
        (dict(t1=float("nan")), "t1 must be a positive finite end time"),
    ],
)
def test_meaningless_arguments_are_named(call, match):
    net = compile_crn(parse_crn(_A_TO_B))
    kw = dict(call)
    t1 = kw.pop("t1", 5.0)
    with pytest.raises(ValueError, match=match):
        simulate_batch(net, None, t1, y0=np.asarray(net.y_init)[None], **kw)
    if "offset" not in kw:  # simulate takes a state, not inputs
        with pytest.raises((ValueError, eqx.EquinoxRuntimeError)):
            if "saveat" in kw:
                kw["saveat"] = jnp.asarray(kw["saveat"])
            simulate(net, net.y_init, jnp.asarray(t1), **kw)


@pytest.fixture
def as_users_run_it():
    """The suite type-checks jaxcrn's annotations at run time (jaxtyping's import
    hook), which refuses some bad arguments before jaxcrn sees them. Users run
    without it; these tests check jaxcrn's own errors."""
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


def test_strings_and_complex_values_are_refused_not_cast(as_users_run_it):
    # NumPy reads "5" as 5.0 and casts 1 + 1j to 1.0 with only a warning: each ran
    net = compile_crn(parse_crn(_A_TO_B))
    y0 = np.asarray(net.y_init)
    calls = [
        (lambda: simulate(net, y0 + 1j, 1.0), "y0 must be real numbers, got complex"),
        (lambda: simulate(net, y0, "5"), "t1 must be a real number or array, got the"),
        (lambda: simulate(net, y0, 1.0, saveat=["0.5"]), "saveat must be real numbers"),
        (
            lambda: jax.vmap(simulate, in_axes=(None, 0, None))(net, y0[None] + 0j, 1),
            "y0 must be real numbers, got complex",
        ),
        (lambda: simulate_batch(net, None, "5", y0=y0[None]), "t1 must be a real"),
        (lambda: simulate_batch(net, None, 1.0, y0=y0[None] + 1j), "y0 must be real"),
        (lambda: simulate_batch(net, None, 1.0, y0=[[1.0], [1.0, 0]]), "y0 must be a"),
        (
            lambda: simulate_batch(net, None, 1.0, y0=y0, rates=np.array([None])),
            "rates must be real numbers, got object",
        ),
        (lambda: net.with_rates(np.array([1 + 0j])), "rates must be real numbers"),
        (lambda: simulate_differentiable(net, None, "2"), "t1 must be a real number"),
        (
            lambda: simulate_differentiable(net, None, 2.0, y0=y0 + 1j),
            "y0 must be real numbers, got complex",
        ),
        (
            lambda: Experiment(times=[1, 2], observed=["B"], values=[0.5 + 1j, 0.8]),
            "the experiment: values must be real numbers, got complex",
        ),
        (lambda: cross(np.ones((1, 1)), np.array([["1"]])), "rates must be real"),
    ]
    for call, match in calls:
        with pytest.raises(TypeError, match=match):
            call()
    # booleans are 0 and 1: the same result as the floats
    on = simulate_batch(net, None, 1.0, y0=np.array([[True, False]]))
    np.testing.assert_array_equal(
        on.y_final, simulate_batch(net, None, 1.0, y0=y0).y_final
    )


def test_values_outside_the_dtype_are_refused_not_rounded_to_inf_or_0(as_users_run_it):
    # in float32, k = 1e-50 was stored as 0 (the reaction vanished without a word)
    # and k = 1e308 as inf (NumPy's overflow warning, then a failed sample)
    f32 = jnp.float32
    for text, match in [
        ("A -> B [k=1e-50]\ninit A = 1", r"reaction 0 \(A -> B \[k=1e-50\]\) = 1e-50 "),
        ("A -> B [k=1e308]", r"above the range of float32 \(largest 3.403e\+38\)"),
        ("A -> B\ninit A = 1e39", "init A = 1e.39 is above"),
        ("A -> B\ninit B = 1e-40", "init B = 1e-40 is below the range of float32"),
    ]:
        with pytest.raises(ValueError, match=match):
            compile_crn(parse_crn(text), dtype=f32)
        compile_crn(parse_crn(text))  # float64 holds them
    with pytest.raises(ValueError, match="below the range of float64"):
        compile_crn(parse_crn("A -> B [k=1e-310]"))
    net = compile_crn(parse_crn("A -> B\ninput a = A"), dtype=f32)
    calls = [
        (lambda: simulate_batch(net, [[1e40]], 1.0), r"inputs\[0, 0\] \(input a\)"),
        (
            lambda: simulate_batch(net, [[1.0], [2.0]], 1.0, rates=[[1.0], [1e-45]]),
            r"rates\[1, 0\] \(reaction 0\) = 1e-45 is below",
        ),
        (
            lambda: simulate_batch(net, [[1.0]], 1.0, y0=[0.0, 1e-39]),
            r"y0\[0, 1\] \(species B\)",
        ),
        (lambda: net.with_rates([1e39]), r"rates\[0\] = 1e\+39 is above"),
        (
            lambda: simulate_differentiable(
                net, [[1.0]], 1.0, rates=np.array([1e-45], np.float32)
            ),
            r"rates\[0\] = 1.4013e-45 is below",
        ),
    ]
    for call, match in calls:
        with pytest.raises(ValueError, match=match + ".*jax_enable_x64"):
            call()
    # small but normal float32 values are kept: A -> B at k = 1e-30 to t1 = 1e30
    slow = compile_crn(parse_crn("A -> B [k=1e-30]\ninit A = 1"), dtype=f32)
    res = simulate_batch(slow, None, 1e30, y0=np.asarray(slow.y_init))
    np.testing.assert_allclose(res.y_final[0], [np.exp(-1), 1 - np.exp(-1)], rtol=1e-4)


def test_convergence_times_name_wrong_shapes(as_users_run_it):
    ts = jnp.linspace(0.0, 1.0, 5)
    out = jnp.ones((5, 2))
    for args, match in [
        ((ts, out[:4]), r"outputs has shape \(4, 2\) but ts has 5 times"),
        ((ts, out[None]), r"outputs has shape \(1, 5, 2\)"),
        ((ts[None], out), r"ts has shape \(1, 5\)"),
        ((ts, out, jnp.ones(3)), r"final has shape \(3,\) but outputs has 2 outputs"),
    ]:
        with pytest.raises(ValueError, match=match):
            convergence_times(*args)
    with pytest.raises(TypeError, match="outputs must be real numbers"):
        convergence_times(ts, jnp.ones((5, 2), jnp.complex128))
    # the right shapes still give the closed form: 1 - e^{-t} within 1e-2 at log 100
    t = jnp.linspace(0.0, 10.0, 1001)
    ct = convergence_times(t, (1 - jnp.exp(-t))[:, None], jnp.ones(1), eps=1e-2)
    assert abs(float(ct.abs_time[0]) - np.log(100)) < 0.011


def test_no_species_no_outputs_negative_rates_and_backsolve_are_named():
    empty = compile_crn(parse_crn(""))
    for run in (
        lambda: simulate_batch(empty, None, 1.0, y0=np.zeros((1, 0))),
        lambda: simulate(empty, empty.y_init, jnp.asarray(1.0)),
    ):
        with pytest.raises(ValueError, match="no species: there is nothing to"):
            run()
    net = compile_crn(parse_crn(_A_TO_B))
    with pytest.raises(ValueError, match="the network declares no outputs"):
        simulate_batch(net, None, 1.0, y0=np.asarray(net.y_init)[None], save="outputs")
    with pytest.raises(ValueError, match=r"rates\[0\] = -1.0: rate constants must"):
        net.with_rates(jnp.array([-1.0]))
    # traced rates (simulate_differentiable under grad): checked when it runs
    with pytest.raises(eqx.EquinoxRuntimeError, match="rate constant is negative"):
        simulate_differentiable(net, None, 1.0, rates=jnp.array([[-1.0], [1.0]]))
    with pytest.raises(ValueError, match="backsolve adjoint integrates an augmented"):
        simulate(net, net.y_init, jnp.asarray(1.0), adjoint=diffrax.BacksolveAdjoint())


def test_shape_mismatch_is_an_error(dimerisation):
    with pytest.raises(ValueError, match="y0 has shape \\(2,\\) but the network has 3"):
        simulate(dimerisation, jnp.array([1.0, 2.0]), jnp.asarray(1.0))


def test_early_stop_ends_at_steady_state(decay):
    res = simulate(
        decay,
        decay.y_init,
        jnp.asarray(1000.0),
        stop_when_steady=True,
        steady_tol=1e-6,
        saveat=jnp.array([0.0, 1.0, 999.0]),
        **TOL,
    )
    # |dA/dt| = 0.7 * 2 exp(-0.7 t) <= 1e-6  <=>  t >= log(1.4e6) / 0.7 = 20.2
    t_expected = np.log(1.4e6) / 0.7
    assert bool(res.converged)
    assert t_expected <= float(res.t_final) < t_expected + 2.0
    assert float(res.t_converged) == float(res.t_final)
    # times after the stop hold the steady state
    np.testing.assert_allclose(res.ys[2], res.y_final)


_jit_convergence_times = jax.jit(convergence_times)


def test_convergence_times_closed_form():
    ct_fn = _jit_convergence_times
    ts = jnp.linspace(0.0, 10.0, 2001)
    out = jnp.stack([1 - jnp.exp(-ts), -2 * (1 - jnp.exp(-2 * ts))], axis=1)
    final = jnp.array([1.0, -2.0])
    ct = ct_fn(ts, out, final, eps=1e-2, rtol=1e-3, frac=0.9)
    np.testing.assert_allclose(ct.abs_time, [np.log(100), np.log(200) / 2], atol=1e-4)
    np.testing.assert_allclose(ct.rel_time, [np.log(1000), np.log(1000) / 2], atol=1e-4)
    np.testing.assert_allclose(ct.frac_time, [np.log(10), np.log(10) / 2], atol=1e-4)
    # argmax: output 0 is larger from t=0+ on (output 1 is negative)
    assert float(ct.argmax_time) == 0.0
    crossing = jnp.stack([ts, 5.0 * jnp.ones_like(ts)], axis=1)  # 0 > 1 after t = 5
    ct2 = ct_fn(ts, crossing, jnp.array([10.0, 5.0]))
    assert float(ct2.argmax_time) == 5.0  # tie at t=5 goes to output 0


def test_tolerance_below_float32_precision_warns():
    # rtol 1e-9 cannot be resolved in float32: the controller would chase round-off
    net = compile_crn(parse_crn("A -> B\ninit A = 1"), dtype=jnp.float32)
    y0 = jnp.asarray([1.0, 0.0], jnp.float32)
    with pytest.warns(ToleranceWarning, match="machine epsilon"):
        res = simulate(net, y0, 1.0, rtol=1e-9, atol=1e-6, saveat=None)
    np.testing.assert_allclose(res.y_final, [np.exp(-1), 1 - np.exp(-1)], atol=1e-5)
    assert issubclass(ToleranceWarning, UserWarning)
