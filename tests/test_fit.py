"""fit_rates: recovering known rate constants from noisy synthetic data (within the
estimated uncertainty, and with calibrated 95% intervals over repeated noise), fixed
rates and bounds, partial data, printing, and bad input."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import (
    Experiment,
    compile_crn,
    fit_rates,
    parse_crn,
    simulate_differentiable,
)


TRUE = np.array([1.5, 0.4, 0.25])
CRN = parse_crn("A + B <=> C [kf=1, kr=1]\nC -> D [k=1]\ninit A = 1\ninit B = 0.8")
START = np.array([0.5, 1.0, 1.0])  # every rate wrong by a factor 2.5-4
TIMES = np.linspace(0.25, 8.0, 12)
SIGMA = 0.003


@functools.cache
def _clean():
    """Noise-free trajectories of two experiments at the true rates (computed on
    first use, not at collection)."""
    net = compile_crn(CRN.with_rates(TRUE.tolist()))
    y0 = np.array([[1.0, 0.8, 0.0, 0.0], [0.5, 1.5, 0.2, 0.0]])
    res = simulate_differentiable(
        net, None, jnp.asarray(TIMES[-1]), y0=y0, saveat=jnp.asarray(TIMES),
        rtol=1e-10, atol=1e-12,
    )  # fmt: skip
    return np.asarray(res.ys)  # (2, times, species A B C D)


def _data(seed):
    rng = np.random.default_rng(seed)
    clean = _clean()
    noisy = clean + rng.normal(0.0, SIGMA, clean.shape)
    # experiment 1: A and C measured; C missing at two times (partial data)
    first = noisy[0][:, [0, 2]].copy()
    first[[3, 7], 1] = np.nan
    # experiment 2, other initial conditions: only D and B measured
    second = noisy[1][:, [3, 1]]
    return [
        Experiment(TIMES, first, ["A", "C"], sigma=SIGMA, name="std"),
        Experiment(
            TIMES, second, ["D", "B"], init={"A": 0.5, "B": 1.5, "C": 0.2},
            sigma=SIGMA,
        ),
    ]  # fmt: skip


@pytest.mark.slow
def test_recovers_true_rates_within_estimated_uncertainty():
    fit = fit_rates(CRN, _data(0), rates=START)
    assert fit.converged, fit.message
    assert fit.n_observations == 12 * 4 - 2
    z = (np.log(fit.rates) - np.log(TRUE)) / fit.log_std
    assert np.all(np.abs(z) < 3), (fit.rates, fit.log_std)
    assert np.all(fit.log_std < 0.1)  # and the data pin them down (within 10%)
    # the noise level is estimated from the residuals: close to sigma's 1
    assert 0.7 < fit.noise_scale < 1.3
    assert fit.cost < 0.01 * fit.initial_cost
    # predictions of the fitted model at the measured times, per experiment
    assert fit.predictions[0].shape == (12, 2)
    measured = np.isfinite(_data(0)[0].values)
    resid = (fit.predictions[0] - _data(0)[0].values)[measured]
    assert np.sqrt(np.mean(resid**2)) < 2 * SIGMA
    text = str(fit)
    assert "A + B -> C" in text and "95% interval" in text and "converged" in text


# two fits and a forward-mode Jacobian, ~18 s: the default suite's slowest test
@pytest.mark.slow
def test_batch_jacobian_matches_forward_mode_and_fits_the_same():
    """`jacobian="batch"` (central differences, every perturbed rate set of every
    experiment in one simulate_batch call) against forward-mode sensitivities, on
    partial data with two experiments (other initial conditions, other observed
    species), and the fit it drives lands on the same rates."""
    import jax

    from jaxcrn import _fit

    network = compile_crn(CRN)
    problem = _fit._problem(network, _data(0))
    free_idx = np.arange(3)
    theta = np.log(START)
    options = dict(solver=None, rtol=1e-9, atol=1e-12, max_steps=16_384)
    arrays = _fit._arrays(problem, free_idx, START)
    forward = np.asarray(
        _fit._jacobian_jit(network, jax.numpy.asarray(theta), arrays, options)
    )
    model = _fit._BatchModel(network, problem, free_idx, START, options)
    batch = model.jacobian(theta)
    assert batch.shape == forward.shape == (2 * 12 * 2, 3)
    np.testing.assert_allclose(
        batch, forward, rtol=1e-4, atol=1e-4 * np.abs(forward).max()
    )
    # the engine's residuals (the fit's) against diffrax's
    r_engine, failed, _ = model.residuals(theta)
    r_diffrax, _, _ = _fit._residuals_jit(
        network, jax.numpy.asarray(theta), arrays, options
    )
    assert not failed
    np.testing.assert_allclose(
        r_engine, r_diffrax, rtol=1e-5, atol=1e-5 * np.abs(r_diffrax).max()
    )
    b = fit_rates(CRN, _data(0), rates=START)  # the default, "batch"
    assert b.converged, b.message
    # at the optimum the forward-mode Jacobian gives the same uncertainty (and a
    # gradient of ~0: the same stationary point)
    at = jax.numpy.asarray(np.log(b.rates))
    J = np.asarray(_fit._jacobian_jit(network, at, arrays, options))
    r, _, _ = _fit._residuals_jit(network, at, arrays, options)
    g = J.T @ np.asarray(r)
    assert np.max(np.abs(g)) <= 1e-4 * np.linalg.norm(J, axis=0).max() * np.sqrt(b.cost)
    cov, _ = _fit._covariance(J, 2 * b.cost / (b.n_observations - 3))
    np.testing.assert_allclose(b.log_std, np.sqrt(np.diag(cov)), rtol=1e-3)
    with pytest.raises(ValueError, match="'forward' or 'batch'"):
        fit_rates(CRN, _data(0), rates=START, jacobian="adjoint")


def test_a_rate_that_underflows_keeps_the_result():
    """A fitted rate of 0 (an unidentifiable rate driven down until exp(log k)
    underflows) is not a reaction: the result keeps the rates, says which reaction,
    and has no CRN, instead of failing after the fit."""
    from jaxcrn import _fit

    labels = ("A + B -> C", "C -> A + B", "C -> D")
    crn, note = _fit._fitted_crn(CRN, np.array([1.5, 0.0, 0.25]), labels)
    assert crn is None and "C -> A + B" in note and "fell to 0" in note
    crn, note = _fit._fitted_crn(CRN, np.array([1.5, 0.4, 0.25]), labels)
    assert note == "" and [r.rate for r in crn.reactions] == [1.5, 0.4, 0.25]


@pytest.mark.slow
def test_intervals_are_calibrated_over_repeated_noise():
    # 30 noise draws x 3 rates: the true rate should lie in its 95% interval about
    # 95% of the time (over 200 draws: 91-93%; intervals half as wide as they should
    # be would cover about 68%)
    hits = []
    for seed in range(1, 31):
        fit = fit_rates(CRN, _data(seed), rates=START)
        lo, hi = fit.interval.T
        hits.extend((lo <= TRUE) & (TRUE <= hi))
    assert 0.8 <= np.mean(hits) <= 1.0, np.mean(hits)


@pytest.mark.slow
def test_fixed_rates_and_bounds():
    fit = fit_rates(CRN, _data(0), rates=START * [1, 1, 0.25 / 1.0], fixed=["C -> D"])
    assert fit.rates[2] == 0.25 and not fit.free[2] and np.isnan(fit.std[2])
    assert "fixed" in str(fit)
    z = (np.log(fit.rates[:2]) - np.log(TRUE[:2])) / fit.log_std[:2]
    assert np.all(np.abs(z) < 3)
    # an upper bound below the truth: the estimate stops at the bound
    fit = fit_rates(CRN, _data(0), rates=START, bounds={0: (0.1, 1.0)})
    assert fit.rates[0] == pytest.approx(1.0) and fit.at_bound[0]
    assert "at bound" in str(fit)


def test_bad_input_is_named():
    data = _data(0)
    with pytest.raises(ValueError, match="'E' is neither a species nor an output"):
        fit_rates(CRN, [Experiment(TIMES, _clean()[0][:, :1], ["E"])])
    with pytest.raises(
        ValueError, match=r"values has shape \(12, 2\); expected \(12, 1\)"
    ):
        Experiment(TIMES, _clean()[0][:, :2], ["A"])
    with pytest.raises(ValueError, match=r"times\[2\] = 0.1 comes after"):
        Experiment([0.0, 0.5, 0.1], [[1.0], [1.0], [1.0]], ["A"])
    with pytest.raises(ValueError, match="must start > 0"):
        fit_rates(CRN, data, rates=[0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="every rate constant is fixed"):
        fit_rates(CRN, data, fixed=[0, 1, 2])
    with pytest.raises(ValueError, match="fixed: reaction 'A -> D': the network has"):
        fit_rates(CRN, data, fixed=["A -> D"])
    with pytest.raises(TypeError, match="fixed must be a list of reactions"):
        fit_rates(CRN, data, fixed="A -> B")
    # the names scan takes ("k2" was refused), the text with or without its rate
    from jaxcrn._fit import _rate_index

    for name in (2, "2", "k2", "R2", "C -> D", "C -> D  [k=1]"):
        assert _rate_index(CRN, name, "fixed") == 2
    with pytest.raises(ValueError, match="outside its bounds"):
        fit_rates(CRN, data, rates=START, bounds=(0.6, 10.0))


@pytest.mark.slow
def test_fit_notebook_runs_top_to_bottom():
    import os

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    nb = nbformat.read(
        os.path.join(root, "experiments", "notebooks", "fit_rates.ipynb"), 4
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": root}}
    ).execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "converged after" in text
    assert "true rates inside the 95% intervals: [True, True, True]" in text


@pytest.mark.parametrize("rank_deficient", [False, True])
@pytest.mark.parametrize("delta", [1e-3, 0.1, 1.0, 1e3])
def test_trust_region_step_solves_the_subproblem(rank_deficient, delta):
    """The step minimises |J p + r| over the ball |p| <= delta: against the exact
    solution found by bisection on the damping (the Gauss-Newton step when it fits)."""
    from jaxcrn._fit import _trust_region_step

    rng = np.random.default_rng(3)
    J = rng.normal(size=(30, 6)) * np.geomspace(1, 1e-4, 6)
    if rank_deficient:
        J[:, 5] = J[:, 4]  # two rates that only act together
    r = rng.normal(size=30)
    u, s, vt = np.linalg.svd(J, full_matrices=False)
    p, alpha = _trust_region_step(s, vt, u.T @ r, delta, 0.0)

    def model(q):
        return 0.5 * np.sum((J @ q + r) ** 2)

    def damped(a):  # argmin |J q + r|^2 + a |q|^2
        A = np.vstack([J, np.sqrt(a) * np.eye(6)])
        return np.linalg.lstsq(A, np.concatenate([-r, np.zeros(6)]), rcond=None)[0]

    gauss_newton = np.linalg.lstsq(J, -r, rcond=None)[0]  # least norm
    if np.linalg.norm(gauss_newton) <= delta:
        best = gauss_newton
    else:  # |damped(a)| falls from above delta to 0 as a grows: bisect in log a
        lo, hi = 1e-30, 1e30
        for _ in range(400):
            mid = np.sqrt(lo * hi)
            lo, hi = (mid, hi) if np.linalg.norm(damped(mid)) > delta else (lo, mid)
        best = damped(hi)
    assert np.linalg.norm(p) <= delta * (1 + 1e-12)
    assert alpha >= 0
    gain = model(np.zeros(6)) - model(best)
    assert model(p) - model(best) <= 1e-2 * gain
