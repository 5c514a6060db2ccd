"""Fitting rate constants to time-series data: `Experiment`, `fit_rates`, `FitResult`.

The model is the CRN's mass-action ODE; the parameters are the logarithms of the
free rate constants; the residuals are `(prediction - observation) / sigma` over
every observed value of every experiment. The default optimiser is
Levenberg-Marquardt in its trust-region form on those residuals, with the Jacobian
by central differences over one `simulate_batch` call of every perturbed rate set
and the residuals by the same engine on the same plan (`jacobian="batch"`), or both
from the vmapped diffrax solve, the Jacobian by forward-mode sensitivities
(`jax.jacfwd` through `simulate_differentiable` with diffrax's `ForwardMode`,
`jacobian="forward"`); any Optax optimiser can be used instead, on the gradient of
the cost (reverse mode).
The uncertainty is the Gauss-Newton (Fisher) approximation at the optimum:
`cov(log k) = s^2 (J^T J)^-1`.
"""

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._crn import CRN
from ._differentiable import simulate_differentiable
from ._kinetics._base import host_array
from ._memory_maps import release_if_near_limit
from ._network import MassActionNetwork, compile_crn, real_array


__all__ = ["Experiment", "FitResult", "fit_rates"]


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """One time-series experiment: what was started, what was measured, and when.

    Arguments:
        times: measurement times, shape `(times,)`, finite, >= 0, non-decreasing.
        values: measured values, shape `(times, observed)`; NaN marks a value that
            was not measured (partial data).
        observed: what each column of `values` measures: a species name, or the
            name of one of the CRN's `output` declarations (`[pos] - [neg]`).
        init: initial concentrations that replace the CRN's `init` values for this
            experiment, e.g. `{"A": 2.0}` (species not listed keep the CRN's).
        inputs: the input vector for a CRN with `input` declarations.
        sigma: the measurement noise's standard deviation: a scalar, one per column
            `(observed,)`, or one per value `(times, observed)`. Residuals are
            divided by it. Default 1.
        name: a label for printing.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import Experiment
        >>> e = Experiment([0.0, 1.0, 2.0], [[1.0], [0.37], [np.nan]], ["A"])
        >>> e.n_observations
        2
    """

    times: Float[ArrayLike, " times"] | Sequence[float]
    values: Float[ArrayLike, "times observed"] | Sequence
    observed: Sequence[str]
    init: Mapping[str, float] | None = None
    inputs: Float[ArrayLike, " inputs"] | Sequence[float] | None = None
    sigma: float | Float[ArrayLike, "..."] | Sequence | None = None
    name: str = ""

    def __post_init__(self):
        label = f"experiment {self.name!r}" if self.name else "the experiment"
        times = real_array(f"{label}: times", self.times)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f"{label}: times has shape {times.shape}; expected (n,).")
        if not np.all(np.isfinite(times)) or times.min() < 0:
            raise ValueError(f"{label}: times must be finite and >= 0.")
        if np.any(np.diff(times) < 0):
            i = int(np.flatnonzero(np.diff(times) < 0)[0])
            raise ValueError(
                f"{label}: times must be non-decreasing; times[{i + 1}] = "
                f"{times[i + 1]} comes after times[{i}] = {times[i]}."
            )
        observed = tuple(self.observed)
        if isinstance(self.observed, str) or not observed:
            raise ValueError(
                f"{label}: observed must be a non-empty list of species or output "
                f"names, got {self.observed!r}."
            )
        if len(set(observed)) != len(observed):
            raise ValueError(f"{label}: observed lists a name twice: {observed}.")
        values = real_array(f"{label}: values", self.values)
        if values.ndim == 1 and len(observed) == 1:
            values = values[:, None]
        if values.shape != (times.size, len(observed)):
            raise ValueError(
                f"{label}: values has shape {values.shape}; expected "
                f"({times.size}, {len(observed)}) (times, observed)."
            )
        if np.any(np.isinf(values)):
            raise ValueError(f"{label}: values has an infinite entry (NaN = missing).")
        if not np.any(np.isfinite(values)):
            raise ValueError(f"{label}: every value is missing (NaN).")
        sigma = 1.0 if self.sigma is None else self.sigma
        sigma = np.broadcast_to(real_array(f"{label}: sigma", sigma), values.shape)
        if not np.all(np.isfinite(sigma)) or sigma.min() <= 0:
            raise ValueError(f"{label}: sigma must be finite and > 0.")
        init = dict(self.init or {})
        for s, v in init.items():
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(
                    f"{label}: init {s} = {v!r}; concentrations are finite and >= 0."
                )
        inputs = None
        if self.inputs is not None:
            inputs = np.atleast_1d(real_array(f"{label}: inputs", self.inputs))
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "observed", observed)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "init", init)
        object.__setattr__(self, "inputs", inputs)

    @property
    def n_observations(self) -> int:
        """Measured (non-NaN) values."""
        return int(np.isfinite(np.asarray(self.values)).sum())


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """The outcome of `fit_rates`. Prints as a table.

    Attributes:
        crn: the CRN with the fitted rate constants (None when a compiled
            network was fitted, or when a fitted rate fell to 0: see `message`).
        rates: fitted rate constants, shape `(reactions,)` (fixed ones unchanged).
        initial_rates: the starting point.
        free: which rate constants were fitted.
        std: standard errors of the rate constants (delta method, `rates *
            log_std`); NaN for fixed ones and for those at a bound.
        log_std: standard errors of `log(rates)`.
        interval: 95% intervals `exp(log k -+ 1.96 log_std)`, shape
            `(reactions, 2)`.
        covariance: covariance of the free `log(rates)`, `s^2 (J^T J)^-1`.
        cost: `0.5 * sum(residuals**2)` at the optimum.
        initial_cost: the same at the starting point.
        residuals: the weighted residuals at the optimum (measured values only).
        n_observations, n_free: measured values and fitted parameters.
        noise_scale: `s`, the rms weighted residual `sqrt(2 cost / (n - p))` that
            scales the covariance (1 with `absolute_sigma=True`).
        at_bound: free rate constants that ended at a bound.
        identifiable: False for free rate constants in the (near) null space of
            `J^T J`: the data do not determine them (their `std` is inf).
        iterations: optimiser iterations (accepted steps, for Levenberg-Marquardt).
        evaluations: simulations of the data set (for Levenberg-Marquardt, each
            accepted one also computes the Jacobian; for an Optax optimiser each
            computes a gradient).
        converged: whether a convergence criterion was met (not the iteration cap).
        message: why the optimiser stopped.
        seconds: wall time of the fit, compilation included.
        history: the cost after each iteration (the first entry: the start).
        history_seconds: when each `history` entry was reached, in seconds since
            the call began (compilation included).
        predictions: the fitted model at each experiment's times, one array of shape
            `(times, observed)` per experiment.
    """

    crn: CRN | None
    labels: tuple[str, ...]
    rates: np.ndarray
    initial_rates: np.ndarray
    free: np.ndarray
    std: np.ndarray
    log_std: np.ndarray
    interval: np.ndarray
    covariance: np.ndarray
    cost: float
    initial_cost: float
    residuals: np.ndarray
    n_observations: int
    n_free: int
    noise_scale: float
    at_bound: np.ndarray
    identifiable: np.ndarray
    iterations: int
    evaluations: int
    converged: bool
    message: str
    seconds: float
    history: tuple[float, ...]
    history_seconds: tuple[float, ...]
    predictions: tuple[np.ndarray, ...]
    optimizer: str

    def __str__(self) -> str:
        head = (
            f"fit_rates ({self.optimizer}): {self.n_free} of {self.rates.size} rate "
            f"constants fitted to {self.n_observations} observations\n"
            f"{'converged' if self.converged else 'NOT converged'} after "
            f"{self.iterations} iterations ({self.evaluations} evaluations, "
            f"{self.seconds:.2f} s): "
            f"{self.message}\n"
            f"cost {self.initial_cost:.4g} -> {self.cost:.4g}; rms weighted residual "
            f"{self.noise_scale:.3g}\n"
        )
        rows = [("reaction", "initial", "fitted", "std err", "95% interval")]
        for i, label in enumerate(self.labels):
            k = self.rates[i]
            if not self.free[i]:
                rows.append((label, "fixed", f"{k:.5g}", "", ""))
                continue
            if not self.identifiable[i]:
                err, ci = "not identifiable", ""
            elif self.at_bound[i]:
                err, ci = "at bound", ""
            else:
                lo, hi = self.interval[i]
                err, ci = f"{self.std[i]:.3g}", f"[{lo:.5g}, {hi:.5g}]"
            rows.append((label, f"{self.initial_rates[i]:.4g}", f"{k:.5g}", err, ci))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = []
        for j, r in enumerate(rows):
            cells = [r[0].ljust(widths[0])] + [
                r[c].rjust(widths[c]) if c < 4 else r[c].ljust(widths[c])
                for c in range(1, 5)
            ]
            lines.append("  ".join(cells).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return head + "\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"FitResult({self.n_free} free rates, cost {self.cost:.4g}, "
            f"{'converged' if self.converged else 'not converged'})"
        )


# ---------------------------------------------------------------------------------
# Problem set-up (host side).


@dataclasses.dataclass(frozen=True)
class _Problem:
    """Experiments padded to common shapes: (experiments, times[, observed])."""

    y0: np.ndarray  # (E, species)
    inputs: np.ndarray | None  # (E, inputs)
    times: np.ndarray  # (E, T), padded with the last time
    values: np.ndarray  # (E, T, M), 0 where missing
    weights: np.ndarray  # (E, T, M): 1/sigma where measured, else 0
    observe: np.ndarray  # (E, M, species): +1/-1 entries
    t1: float
    counts: tuple[tuple[int, int], ...]  # per experiment (times, observed)


def _observation_row(network: MassActionNetwork, name: str, where: str) -> np.ndarray:
    row = np.zeros(network.n_species)
    if name in network.output_names:
        k = network.output_names.index(name)
        row[network.output_pos[k]] += 1.0
        if network.output_neg[k] >= 0:
            row[network.output_neg[k]] -= 1.0
        return row
    if name in network.species:
        row[network.index(name)] = 1.0
        return row
    raise ValueError(
        f"{where}: observed {name!r} is neither a species nor an output of the CRN "
        f"(species: {', '.join(network.species[:10])}"
        f"{', ...' if network.n_species > 10 else ''})."
    )


def _problem(network: MassActionNetwork, data: Sequence[Experiment]) -> _Problem:
    n_exp = len(data)
    n_t = max(e.times.size for e in data)
    n_m = max(len(e.observed) for e in data)
    s = network.n_species
    y0 = np.tile(np.asarray(network.y_init, np.float64), (n_exp, 1))
    inputs = np.zeros((n_exp, network.n_inputs)) if network.n_inputs else None
    times = np.zeros((n_exp, n_t))
    values = np.zeros((n_exp, n_t, n_m))
    weights = np.zeros((n_exp, n_t, n_m))
    observe = np.zeros((n_exp, n_m, s))
    counts = []
    for i, e in enumerate(data):
        where = f"data[{i}]" + (f" ({e.name})" if e.name else "")
        for name, v in e.init.items():
            if name not in network.species:
                raise ValueError(
                    f"{where}: init names {name!r}, which is not a species of the CRN."
                )
            y0[i, network.index(name)] = float(v)
        if network.n_inputs:
            if e.inputs is None or e.inputs.shape != (network.n_inputs,):
                raise ValueError(
                    f"{where}: the CRN has {network.n_inputs} inputs "
                    f"({', '.join(network.input_names[:6])}); give the experiment "
                    f"inputs of shape ({network.n_inputs},)"
                    + ("" if e.inputs is None else f", not {e.inputs.shape}")
                    + "."
                )
            assert inputs is not None
            inputs[i] = e.inputs
        elif e.inputs is not None and e.inputs.size:
            raise ValueError(f"{where}: inputs given but the CRN declares no inputs.")
        nt, nm = e.values.shape
        times[i, :nt] = e.times
        times[i, nt:] = e.times[-1]
        measured = np.isfinite(e.values)
        values[i, :nt, :nm] = np.where(measured, e.values, 0.0)
        weights[i, :nt, :nm] = np.where(measured, 1.0 / e.sigma, 0.0)
        for j, name in enumerate(e.observed):
            observe[i, j] = _observation_row(network, name, where)
        counts.append((nt, nm))
    t1 = float(times.max())
    if t1 <= 0:
        raise ValueError("every measurement is at t = 0: there is nothing to fit.")
    return _Problem(y0, inputs, times, values, weights, observe, t1, tuple(counts))


def _rate_index(crn, key, what: str) -> int:
    """`scan.reaction_index` (an index, `"3"`, `"k3"`, `"R3"` or the reaction's
    text; a trailing `[k=...]` is ignored), its errors prefixed by `what`."""
    from .scan import reaction_index

    if isinstance(key, str):
        key = key.split("[")[0].strip()
    try:
        return reaction_index(crn, key)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what}: {e}") from None


def _bounds(bounds, crn, labels, n) -> tuple[np.ndarray, np.ndarray]:
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    if bounds is None:
        return lo, hi
    if isinstance(bounds, Mapping):
        for key, pair in bounds.items():
            i = _rate_index(crn, key, "bounds")
            lo[i], hi[i] = pair
    else:
        a, b = bounds
        lo = np.broadcast_to(np.asarray(a, np.float64), (n,)).copy()
        hi = np.broadcast_to(np.asarray(b, np.float64), (n,)).copy()
    bad = ~((lo >= 0) & (hi > lo))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"bounds for reaction {i} ({labels[i]}) are ({lo[i]}, {hi[i]}); expected "
            "0 <= lower < upper (rate constants are positive)."
        )
    return lo, hi


# ---------------------------------------------------------------------------------
# The residual function (traced).


class _Arrays(eqx.Module):
    """The problem's arrays on the device (dynamic arguments: no recompiling for
    new values of the same shapes)."""

    y0: Float[Array, "experiments species"]
    inputs: Float[Array, "experiments inputs"] | None
    times: Float[Array, "experiments times"]
    values: Float[Array, "experiments times observed"]
    weights: Float[Array, "experiments times observed"]
    observe: Float[Array, "experiments observed species"]
    t1: Float[Array, ""]
    free_idx: Int[Array, " free"]
    fixed_rates: Float[Array, " reactions"]


def _arrays(problem: _Problem, free_idx, fixed_rates) -> _Arrays:
    return _Arrays(
        y0=host_array(problem.y0),
        inputs=None if problem.inputs is None else host_array(problem.inputs),
        times=host_array(problem.times),
        values=host_array(problem.values),
        weights=host_array(problem.weights),
        observe=host_array(problem.observe),
        t1=host_array(problem.t1),
        free_idx=host_array(free_idx),
        fixed_rates=host_array(fixed_rates),
    )


def _predict(network, theta, a: _Arrays, adjoint, options):
    rates = a.fixed_rates.at[a.free_idx].set(jnp.exp(theta))
    res = simulate_differentiable(
        network, a.inputs, a.t1, y0=a.y0, rates=rates, saveat=a.times,
        adjoint=adjoint, **options,
    )  # fmt: skip
    return _observed(res.ys, a.observe), res.status


def _xp(*arrays):
    """NumPy for host arrays (the batch model's; the same operations on the
    device would compile a small program each), jax.numpy for everything else."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


def _observed(ys, observe):
    """States `(..., E, T, species)` seen through `observe` `(E, M, species)`:
    `(..., E, T, M)`."""
    return _xp(ys, observe).einsum("...ets,ems->...etm", ys, observe)


def _weighted(pred, values, weights):
    """`(prediction - value) / sigma` where measured, 0 elsewhere."""
    xp = _xp(pred, values, weights)
    return xp.where(weights > 0, (pred - values) * weights, 0.0)


def _residuals(network, theta, a: _Arrays, adjoint, options, with_predictions=False):
    pred, status = _predict(network, theta, a, adjoint, options)
    r = _weighted(pred, a.values, a.weights)
    if with_predictions:
        return r.reshape(-1), jnp.any(status != 0), pred
    return r.reshape(-1), jnp.any(status != 0)


def _cost(network, theta, a: _Arrays, options):
    r, failed = _residuals(network, theta, a, "checkpoint", options)
    return jnp.where(failed, jnp.inf, 0.5 * jnp.sum(r**2))


@eqx.filter_jit
def _residuals_jit(network, theta, a, options):
    """Residuals, failure flag and predictions."""
    return _residuals(network, theta, a, "forward", options, with_predictions=True)


@eqx.filter_jit
def _jacobian_jit(network, theta, a, options):
    """The Jacobian of the residuals, by forward mode (one tangent per free rate),
    one experiment at a time (`lax.map`): each integrates with its own steps,
    where a vmapped batch would take every experiment's worst-case steps."""
    per_experiment = (a.y0, a.inputs, a.times, a.values, a.weights, a.observe)

    def one(fields):
        one_a = dataclasses.replace(
            a,
            **dict(
                zip(_PER_EXPERIMENT, [None if f is None else f[None] for f in fields])
            ),
        )
        return jax.jacfwd(
            lambda th: _residuals(network, th, one_a, "forward", options)[0]
        )(theta)

    jac = jax.lax.map(one, per_experiment)  # (experiments, times * observed, free)
    return jac.reshape(-1, theta.shape[0])


_PER_EXPERIMENT = ("y0", "inputs", "times", "values", "weights", "observe")


ENGINE_RESIDUAL_ROUNDS = 4  # see _BatchModel.residuals_here


class _BatchModel:
    """The residuals and their Jacobian by the batch engine (`jacobian="batch"`).

    The Jacobian comes by central differences in the log rates, every perturbed
    rate set under every experiment one sample of a single `simulate_batch` call
    (2 x free rates x experiments samples, per-sample rates), step `rtol^(1/3)`
    (the balance of truncation, h^2, and solver error, rtol/h). The residuals at a
    trial point come from the same engine on the same plan (`residuals_here`),
    so that both run one compiled program (padding rows cost nothing), where that
    is cheaper than a second program. Where the centre and every perturbed set fit
    in the lanes at once (small problems, where a call costs its steps, not its
    samples), each residual call computes the Jacobian there too, for free, and an
    accepted step needs no second call."""

    def __init__(self, network, problem: _Problem, free_idx, k0, options):
        from ._batch.driver import simulate_batch
        from ._batch.plan import plan_batch

        self.simulate_batch = simulate_batch
        self.network, self.problem, self.options = network, problem, options
        self.free_idx = free_idx
        self.k0 = np.asarray(k0, np.float64)
        p, self.n_exp = free_idx.size, problem.y0.shape[0]
        self.h = float(np.clip(np.cbrt(options["rtol"]), 1e-4, 1e-2))
        steps = np.zeros((2 * p + 1, self.k0.size))  # the centre, then +h and -h
        steps[1 + np.arange(p), free_idx] = self.h
        steps[1 + p + np.arange(p), free_idx] = -self.h
        self.steps = steps
        self.ts = np.unique(problem.times)
        self.at = np.searchsorted(self.ts, problem.times)  # (experiments, times)
        solver = options["solver"]
        n = (2 * p + 1) * self.n_exp
        self.plan = plan_batch(
            network,
            n,
            solver="rodas5p" if solver is None else solver,
            rates=np.repeat(self._sets(np.log(self.k0[free_idx])), self.n_exp, axis=0),
            n_saved=self.ts.size * network.n_species,
        )
        width = self.plan.lanes * self.plan.workers
        self.together = n <= width
        # a residual call on the engine costs one round of the lanes, however few
        # its samples: free where the Jacobian's sets fit in one round, a small
        # part of an iteration where they take many (random60: 964 samples, 7.5
        # rounds); in between, the vmapped diffrax solve of the few experiments is
        # cheaper (MAPK: 183 samples, 1.4 rounds; a fit 57.3 -> 72.8 s on the
        # engine's residuals)
        self.residuals_here = self.together or n >= ENGINE_RESIDUAL_ROUNDS * width
        self._jacobian_at: tuple | None = None  # (theta, J) from a residual call

    def _sets(self, theta, perturbed=True):
        k = self.k0.copy()
        k[self.free_idx] = np.exp(np.asarray(theta))
        steps = self.steps if perturbed else self.steps[:1]
        return k[None, :] * np.exp(steps)  # (1 + 2p or 1, reactions)

    def _run(self, sets):
        """Residuals `(sets, observations)`, predictions `(sets, E, T, M)` and
        whether every experiment succeeded `(sets,)`, for rate sets `(sets,
        reactions)`."""
        pr, n_exp = self.problem, self.n_exp
        n_sets = sets.shape[0]
        res = self.simulate_batch(
            self.network,
            None if pr.inputs is None else np.tile(pr.inputs, (n_sets, 1)),
            pr.t1,
            y0=np.tile(pr.y0, (n_sets, 1)),
            rates=np.repeat(sets, n_exp, axis=0),
            saveat=self.ts,
            save="species",
            rtol=self.options["rtol"],
            atol=self.options["atol"],
            max_steps=self.options["max_steps"],
            plan=self.plan,
        )
        m = n_sets * n_exp
        ok = (np.asarray(res.status)[:m] == 0).reshape(n_sets, n_exp).all(axis=1)
        ys = np.asarray(res.ys)[:m].reshape(n_sets, n_exp, self.ts.size, -1)
        pred = _observed(ys[:, np.arange(n_exp)[:, None], self.at], pr.observe)
        r = np.asarray(_weighted(pred, pr.values[None], pr.weights[None]))
        return r.reshape(n_sets, -1), np.asarray(pred), ok

    def _jacobian(self, r, ok):
        """Central differences from the perturbed sets' residuals `r` (the +h
        rows, then the -h rows); None if one of them failed."""
        p = self.free_idx.size
        if not ok.all():
            return None
        return ((r[:p] - r[p:]) / (2 * self.h)).T

    def residuals(self, theta):
        """`(residuals, failed, predictions (E, T, M))` at `theta`."""
        r, pred, ok = self._run(self._sets(theta, perturbed=self.together))
        if self.together:
            self._jacobian_at = (np.array(theta), self._jacobian(r[1:], ok[1:]))
        return r[0], not ok[0], pred[0]

    def jacobian(self, theta):
        """The Jacobian of the residuals at `theta`, or None if a perturbed sample
        fails (the caller then uses forward mode)."""
        hit = self._jacobian_at
        if hit is not None and np.array_equal(hit[0], theta):
            return hit[1]
        r, _, ok = self._run(self._sets(theta)[1:])  # the perturbed sets only
        return self._jacobian(r, ok)


@eqx.filter_jit
def _value_and_grad_jit(network, theta, a, options):
    return jax.value_and_grad(lambda th: _cost(network, th, a, options))(theta)


@eqx.filter_jit
def _optax_step(optimizer, network, theta, state, value, grad, lo, hi, a, options):
    import optax

    def value_fn(th):
        return _cost(network, th, a, options)

    # optax computes `b1 ** count` (float ** int32), which strict promotion rejects
    with jax.numpy_dtype_promotion("standard"):
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):
            updates, state = optimizer.update(
                grad, state, theta, value=value, grad=grad, value_fn=value_fn
            )
        else:
            updates, state = optimizer.update(grad, state, theta)
        theta = jnp.clip(optax.apply_updates(theta, updates), lo, hi)
    value, grad = jax.value_and_grad(value_fn)(theta)
    return theta, state, value, grad


# ---------------------------------------------------------------------------------
# Optimisers.


def _trust_region_step(s, vt, uf, delta, alpha):
    """The step `p` minimising `|J p + r|` subject to `|p| <= delta`, from the SVD
    `J = U diag(s) V^T` and `uf = U^T r` (Moré, "The Levenberg-Marquardt
    algorithm: implementation and theory", 1978): the Gauss-Newton step when it
    fits in the region (the least-norm one where `J` is rank-deficient),
    otherwise `-(J^T J + alpha I)^-1 J^T r` with the damping `alpha` found by
    Newton's method on `|p(alpha)| = delta`, warm-started from the previous one.
    Returns `(p, alpha)`."""
    suf = s * uf
    size = float(np.linalg.norm(suf))
    if size == 0.0:
        return np.zeros(vt.shape[1]), alpha
    keep = s > np.finfo(float).eps * max(vt.shape) * s[0]
    full_rank = bool(np.all(keep))
    p = -vt[keep].T @ (uf[keep] / s[keep])  # Gauss-Newton, least norm
    if np.linalg.norm(p) <= delta:
        return p, 0.0

    def phi(a):
        denom = s**2 + a
        norm = np.linalg.norm(suf / denom)
        return norm - delta, -np.sum(suf**2 / denom**3) / norm

    upper = size / delta
    lower = 0.0
    if full_rank:
        f, fp = phi(0.0)
        lower = -f / fp
    if alpha == 0.0 and not full_rank:
        alpha = max(1e-3 * upper, math.sqrt(lower * upper))
    for _ in range(10):
        if not lower <= alpha <= upper:
            alpha = max(1e-3 * upper, math.sqrt(lower * upper))
        f, fp = phi(alpha)
        if f < 0:
            upper = alpha
        ratio = f / fp
        lower = max(lower, alpha - ratio)
        alpha -= (f + delta) * ratio / delta
        if abs(f) < 0.01 * delta:
            break
    p = -vt.T @ (suf / (s**2 + alpha))
    return p * (delta / np.linalg.norm(p)), alpha


def _levenberg_marquardt(
    fun, jac, theta, lo, hi, *, max_iterations, ftol, xtol, gtol, history
):
    """Levenberg-Marquardt in its trust-region form (Moré 1978; the unscaled
    trust region of scipy's `least_squares(method="trf")` without bounds): each
    step solves the linearised problem exactly within a ball of radius `delta`
    in the log rates (`_trust_region_step`, from an SVD of the Jacobian, so that
    unidentifiable directions neither blow up nor lose precision in `J^T J`);
    the radius shrinks to a quarter of a step that predicts the cost badly and
    doubles after a good step that reached it. Bounds (a box in log space):
    rates at a bound that the gradient pushes out are held, and steps are
    clipped to the box. `fun(theta)` returns the residuals and a failure flag,
    `jac(theta)` the Jacobian, computed only at accepted points (a rejected
    trial costs one simulation)."""
    r, failed = fun(theta)
    if failed or not np.all(np.isfinite(r)):
        raise FloatingPointError(
            "the simulation fails at the starting rates (NaN or out of solver steps); "
            "start closer, or raise max_steps."
        )
    cost = 0.5 * float(r @ r)
    history.append(cost)
    J = jac(theta)
    n_eval = 1
    delta = float(np.linalg.norm(theta)) or 1.0
    alpha = 0.0
    message, converged = "reached max_iterations", False
    it = 0
    for it in range(1, max_iterations + 1):
        g = J.T @ r
        # free directions: not pushing out of an active bound
        at_lo = (theta <= lo + 1e-12) & (g > 0)
        at_hi = (theta >= hi - 1e-12) & (g < 0)
        active = ~(at_lo | at_hi)
        if np.max(np.abs(g[active]), initial=0.0) <= gtol * max(1.0, cost):
            message, converged = "gradient below gtol", True
            break
        ia = np.flatnonzero(active)
        u, s, vt = np.linalg.svd(J[:, ia], full_matrices=False)
        uf = u.T @ r
        reduction = -1.0
        while reduction <= 0:
            p, alpha = _trust_region_step(s, vt, uf, delta, alpha)
            p_norm = float(np.linalg.norm(p))
            step = np.zeros_like(theta)
            step[ia] = p
            new = np.clip(theta + step, lo, hi)
            step = new - theta
            Js = J @ step
            predicted = -(g @ step + 0.5 * Js @ Js)
            r_new, failed = fun(new)
            n_eval += 1
            if failed or not np.all(np.isfinite(r_new)):
                delta = 0.25 * p_norm  # simulation failed there: a smaller region
                if delta <= xtol * (xtol + np.linalg.norm(theta)):
                    message = "no step reduces the cost (the simulation fails)"
                    converged = True
                    break
                continue
            cost_new = 0.5 * float(r_new @ r_new)
            reduction = cost - cost_new
            if predicted > 0:
                ratio = reduction / predicted
            else:
                ratio = 1.0 if predicted == reduction == 0 else 0.0
            new_delta = delta
            if ratio < 0.25:
                new_delta = 0.25 * p_norm
            elif ratio > 0.75 and p_norm > 0.95 * delta:
                new_delta = 2.0 * delta
            step_norm = float(np.linalg.norm(step))
            if reduction < ftol * cost and ratio > 0.25:
                message, converged = "relative cost reduction below ftol", True
            elif step_norm < xtol * (xtol + np.linalg.norm(theta)):
                message, converged = "step below xtol", True
            if converged:
                break
            alpha *= delta / new_delta
            delta = new_delta
        if reduction > 0:
            theta, r, cost = new, r_new, cost_new
            J = jac(theta)
            history.append(cost)
        if converged:
            break
    return theta, r, J, cost, it, n_eval, message, converged


def _first_order(
    step, value_and_grad, fun, jac, theta, optimizer, *, max_iterations, ftol, history
):
    """An Optax optimiser on `0.5 * ||r||^2`, projected onto the bounds."""
    params = jnp.asarray(theta)
    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    value, grad = value_and_grad(params)
    n_eval = 1
    history.append(float(value))
    best = (float(value), np.asarray(params))
    message, converged = "reached max_iterations", False
    it = 0
    stall = 0
    for it in range(1, max_iterations + 1):
        params, state, value, grad = step(params, state, value, grad)
        n_eval += 1
        new_value = float(value)
        history.append(new_value)
        if not np.isfinite(new_value):
            message = "the cost became NaN or inf (a simulation failed); lower the step"
            break
        if new_value < best[0]:
            improvement = best[0] - new_value
            best = (new_value, np.asarray(params))
            stall = 0 if improvement > ftol * new_value else stall + 1
        else:
            stall += 1
        if stall >= 50:
            message = "no cost reduction above ftol in 50 steps"
            converged = True
            break
    theta = best[1]
    r, _ = fun(theta)
    return theta, r, jac(theta), best[0], it, n_eval, message, converged


# ---------------------------------------------------------------------------------


def fit_rates(
    crn: CRN | MassActionNetwork,
    data: Experiment | Iterable[Experiment],
    *,
    rates: Float[ArrayLike, " reactions"] | Sequence[float] | None = None,
    fixed: Iterable[int | str] = (),
    bounds: Any = None,
    optimizer: Any = None,
    max_iterations: int | None = None,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    absolute_sigma: bool = False,
    solver=None,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 16_384,
    jacobian: str = "batch",
) -> FitResult:
    """Fit rate constants to time-series data (several experiments, partial data).

    Minimises `0.5 * sum(((prediction - value) / sigma)**2)` over every measured
    value of every experiment, in the logarithms of the free rate constants (so
    they stay positive and rates of different magnitudes are scaled alike). The
    uncertainty is the Gauss-Newton/Fisher approximation at the optimum:
    `cov(log k) = s^2 (J^T J)^-1`, `J` the Jacobian of the weighted residuals and
    `s^2 = 2 cost / (n - p)` (or 1 with `absolute_sigma=True`, when `sigma` is the
    true noise level).

    Arguments:
        crn: the network (its rate constants are the default starting point), or a
            compiled `MassActionNetwork`.
        data: one `Experiment` or several.
        rates: starting rate constants, shape `(reactions,)`, all > 0 where free.
        fixed: a list of reactions whose rate constants are not fitted, named as
            `scan.reaction_index` takes them: indices, `"k3"`/`"R3"`, or the
            reaction's text (`"A + B -> C"`).
        bounds: `(lower, upper)` for every rate constant (scalars or arrays of
            shape `(reactions,)`), or a dict `{reaction: (lower, upper)}`.
        optimizer: None for Levenberg-Marquardt (Jacobian as `jacobian` says;
            in `benchmarks/fit.py` it converges in 6 iterations on Robertson and
            22-25 on random60, and runs to its 100-iteration limit on MAPK, where
            unidentifiable rates keep the steps short), or an Optax
            `GradientTransformation` (e.g. `optax.adam(0.05)`, `optax.lbfgs()`)
            applied to the gradient of the cost by reverse mode.
        max_iterations: iteration cap (default 100 for Levenberg-Marquardt, 2,000
            for an Optax optimiser).
        ftol, xtol, gtol: stop when an accepted step lowers the cost by less than
            `ftol * cost`, moves `log k` by less than `xtol * (|log k| + xtol)`, or
            the gradient's largest entry is below `gtol * max(1, cost)`.
        absolute_sigma: take `sigma` as the true noise level (do not rescale the
            covariance by the residuals).
        solver, rtol, atol, max_steps: passed to `simulate_batch` or
            `simulate_differentiable` (default Rodas5P, rtol 1e-8, atol 1e-12:
            float64).
        jacobian: how Levenberg-Marquardt (and the uncertainty) gets the Jacobian:
            "batch" (default: central differences in the log rates, all perturbed
            rate sets under all experiments in one `simulate_batch` call, and,
            where the perturbed sets fit in one round of the engine's lanes or
            take many rounds, the residuals by the same engine on the same plan,
            one compiled program; forward mode where a perturbed sample fails)
            or "forward" (residuals and forward-mode sensitivities through the
            vmapped diffrax solve).
            `benchmarks/fit.py`, one run: Robertson reached its residual in 0.093 s
            warm and 3.98 s on the first call against 0.18 s and 7.49 s.

    Returns:
        A `FitResult` (prints as a table of rates, standard errors and intervals).

    Example:
        >>> import jax; jax.config.update("jax_enable_x64", True)
        >>> import numpy as np
        >>> from jaxcrn import Experiment, fit_rates, parse_crn
        >>> crn = parse_crn("A -> B [k=1]\\ninit A = 1")   # k = 1: a poor guess
        >>> t = np.linspace(0.5, 5.0, 10)
        >>> a = np.exp(-0.3 * t) + np.random.default_rng(0).normal(0, 0.01, 10)
        >>> fit = fit_rates(crn, Experiment(t, a[:, None], ["A"]))
        >>> round(float(fit.rates[0]), 2), fit.converged
        (0.3, True)
    """
    start_time = time.perf_counter()
    release_if_near_limit()  # before compiling: a process near its mapping limit
    if isinstance(crn, CRN):
        network = compile_crn(crn)
        labels = tuple(_label(r) for r in crn.reactions)
        sym = crn
    elif isinstance(crn, MassActionNetwork):
        network = crn
        labels = tuple(f"reaction {i}" for i in range(crn.n_reactions))
        sym = None
    else:
        raise TypeError(
            f"fit_rates expects a CRN or a MassActionNetwork, got {type(crn).__name__}."
        )
    if not jnp.issubdtype(network.y_init.dtype, jnp.float64):
        raise ValueError(
            "fit_rates needs float64: call jax.config.update('jax_enable_x64', True) "
            "before compiling the network (fits need tolerances float32 cannot give)."
        )
    experiments = [data] if isinstance(data, Experiment) else list(data)
    if not experiments:
        raise ValueError("data is empty: give at least one Experiment.")
    for i, e in enumerate(experiments):
        if not isinstance(e, Experiment):
            raise TypeError(f"data[{i}] is a {type(e).__name__}, not an Experiment.")
    n = network.n_reactions
    k0 = real_array("rates", network.rates if rates is None else rates)
    if k0.shape != (n,):
        raise ValueError(f"rates has shape {k0.shape}; the CRN has {n} reactions.")
    free = np.ones(n, bool)
    if isinstance(fixed, str | int):  # "B -> C" was read one character at a time
        raise TypeError(
            f"fixed must be a list of reactions, got {fixed!r}; write "
            f"fixed=[{fixed!r}]."
        )
    for key in fixed:
        free[_rate_index(crn, key, "fixed")] = False
    if not free.any():
        raise ValueError("every rate constant is fixed: there is nothing to fit.")
    bad = free & ~(np.isfinite(k0) & (k0 > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"the starting rate of reaction {i} ({labels[i]}) is {k0[i]}; free rate "
            "constants must start > 0 (they are fitted as logarithms)."
        )
    lo, hi = _bounds(bounds, crn, labels, n)
    outside = free & ((k0 < lo) | (k0 > hi))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"the starting rate of reaction {i} ({labels[i]}) is {k0[i]}, outside its "
            f"bounds ({lo[i]}, {hi[i]})."
        )
    problem = _problem(network, experiments)
    n_obs = sum(e.n_observations for e in experiments)
    free_idx = np.flatnonzero(free)
    p = free_idx.size
    if n_obs < p:
        raise ValueError(
            f"{n_obs} observations cannot determine {p} free rate constants; fix some "
            "(fixed=...) or add data."
        )
    options = dict(solver=solver, rtol=rtol, atol=atol, max_steps=max_steps)
    arrays = _arrays(problem, free_idx, k0)
    mask = problem.weights.reshape(-1) > 0
    with np.errstate(divide="ignore"):
        lo_t, hi_t = np.log(lo[free_idx]), np.log(hi[free_idx])
    theta0 = np.log(k0[free_idx])

    predictions_at: dict = {}

    if jacobian not in ("forward", "batch"):
        raise ValueError(f"jacobian={jacobian!r} is not 'forward' or 'batch'.")
    batch = (
        _BatchModel(network, problem, free_idx, k0, options)
        if jacobian == "batch" and optimizer is None
        else None
    )

    def fun(th):
        if batch is not None and batch.residuals_here:
            r, failed, pred = batch.residuals(th)
        else:
            r, failed, pred = _residuals_jit(network, jnp.asarray(th), arrays, options)
        predictions_at["last"] = (np.asarray(th), pred)
        return np.asarray(r)[mask], bool(failed)

    def jac(th):
        if batch is not None:
            J = batch.jacobian(th)
            if J is not None:
                return J[mask]
        J = _jacobian_jit(network, jnp.asarray(th), arrays, options)
        return np.asarray(J)[mask]

    history = _History(start_time)
    if optimizer is None:
        name = "Levenberg-Marquardt"
        theta, r, J, cost, iters, n_eval, message, converged = _levenberg_marquardt(
            fun,
            jac,
            theta0,
            lo_t,
            hi_t,
            max_iterations=100 if max_iterations is None else max_iterations,
            ftol=ftol,
            xtol=xtol,
            gtol=gtol,
            history=history,
        )
    else:
        lo_j, hi_j = jnp.asarray(lo_t), jnp.asarray(hi_t)

        def step(th, state, value, grad):
            return _optax_step(
                optimizer, network, th, state, value, grad, lo_j, hi_j, arrays, options
            )

        name = "Optax optimiser"
        theta, r, J, cost, iters, n_eval, message, converged = _first_order(
            step,
            lambda th: _value_and_grad_jit(network, th, arrays, options),
            fun,
            jac,
            theta0,
            optimizer,
            max_iterations=2000 if max_iterations is None else max_iterations,
            ftol=ftol,
            history=history,
        )
    dof = n_obs - p
    s2 = 1.0 if absolute_sigma else (2 * cost / dof if dof > 0 else np.nan)
    at_bound = np.zeros(n, bool)
    at_bound[free_idx] = (theta <= lo_t + 1e-9) | (theta >= hi_t - 1e-9)
    cov, ident = _covariance(J, s2)
    identifiable = np.ones(n, bool)
    identifiable[free_idx] = ident
    log_std = np.full(n, np.nan)
    log_std[free_idx] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    log_std[free_idx[~ident]] = np.inf
    log_std[at_bound] = np.nan
    fitted = k0.copy()
    fitted[free_idx] = np.exp(theta)
    with np.errstate(over="ignore", invalid="ignore"):  # inf for unidentifiable
        std = fitted * log_std
        interval = np.stack(
            [fitted * np.exp(-1.96 * log_std), fitted * np.exp(1.96 * log_std)],
            axis=1,
        )
    last_theta, pred = predictions_at["last"]
    if not np.array_equal(last_theta, theta):
        r, _ = fun(theta)
        pred = predictions_at["last"][1]
    pred = np.asarray(pred)
    predictions = tuple(pred[i, :nt, :nm] for i, (nt, nm) in enumerate(problem.counts))
    fitted_crn, note = _fitted_crn(sym, fitted, labels)
    if note:
        message = f"{message}; {note}"
    return FitResult(
        crn=fitted_crn,
        labels=labels,
        rates=fitted,
        initial_rates=k0,
        free=free,
        std=std,
        log_std=log_std,
        interval=interval,
        covariance=cov,
        cost=float(cost),
        initial_cost=float(history[0]),
        residuals=np.asarray(r),
        n_observations=n_obs,
        n_free=p,
        noise_scale=float(math.sqrt(s2)) if np.isfinite(s2) else float("nan"),
        at_bound=at_bound,
        identifiable=identifiable,
        iterations=iters,
        evaluations=n_eval,
        converged=converged,
        message=message,
        seconds=time.perf_counter() - start_time,
        history=tuple(history),
        history_seconds=tuple(history.seconds),
        predictions=predictions,
        optimizer=name,
    )


def _fitted_crn(sym: CRN | None, fitted: np.ndarray, labels) -> tuple:
    """The CRN with the fitted rates, and a note when a rate fell to 0 (an
    unidentifiable rate driven down until `exp(log k)` underflowed): no CRN then,
    since a reaction of rate 0 is not a reaction; the rates stay in the result."""
    zero = np.flatnonzero(~(np.isfinite(fitted) & (fitted > 0)))
    if zero.size == 0:
        return (None if sym is None else sym.with_rates(fitted.tolist())), ""
    names = ", ".join(labels[i] for i in zero[:3]) + (", ..." if zero.size > 3 else "")
    return None, (
        f"the rate of {zero.size} reaction(s) fell to {fitted[zero[0]]:g} ({names}): "
        "not identifiable from these data, or the reaction should go; bound it "
        "(bounds=...) or fix it (fixed=...), FitResult.crn is None"
    )


class _History(list):
    """Costs, and when each was reached."""

    def __init__(self, start: float):
        super().__init__()
        self.start = start
        self.seconds: list[float] = []

    def append(self, cost) -> None:
        super().append(float(cost))
        self.seconds.append(time.perf_counter() - self.start)


def _label(reaction) -> str:
    return reaction.text().split("  [")[0]


def _covariance(J: np.ndarray, s2: float) -> tuple[np.ndarray, np.ndarray]:
    """`s2 * (J^T J)^+` by SVD of `J`; parameters with weight on singular values
    below `1e-10 * largest` are not identifiable."""
    p = J.shape[1]
    if J.size == 0:
        return np.full((p, p), np.nan), np.zeros(p, bool)
    _, sv, vt = np.linalg.svd(J, full_matrices=False)
    keep = sv > 1e-10 * sv[0] if sv.size and sv[0] > 0 else np.zeros_like(sv, bool)
    inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0) ** 2, 0.0)
    cov = (vt.T * inv) @ vt * s2
    null = vt[~keep]
    ident = np.all(np.abs(null) < 1e-6, axis=0) if null.size else np.ones(p, bool)
    return cov, ident
