"""Steppers: one step of one method for every lane at once.

The scheduler (`lanes.py`) owns the loop; a stepper is a small object with

- `init(system, t, y, p, f0) -> state`: its per-lane state for lanes that (re)start,
- `step(system, t, h, y, p, state, ctl) -> Step`: a step of size `h` (one per lane;
  `ctl` holds t1 and the tolerances),
- `status(state) -> (lanes,)`: `Status.OK`, or a code that ends the lane
  (`Status.STIFF`: Tsit5 found the problem stiff),
- `interpolate(dense, theta, project)`: the dense output at step fraction `theta`,
  mapped by the linear `project` (state rows -> saved values),
- `control(enorm, accept, took, finite, new, old) -> (factor, state)`: the next
  step size as a factor of this one, and the state each lane keeps (by default
  the integral controller on `error_order` and `keep`),
- `keep(accept, took, new, old)` and `reload(load, fresh, current)`: which state
  each lane keeps after a step and after lanes take new samples (by default the
  new state where the step was accepted, the fresh one where a lane was loaded).

Arrays are `(state rows, lanes)`; per-lane scalars `(lanes,)`; `state` and `dense`
are pytrees whose arrays have the lane axis last. Adding a method is a file in
`_solvers/` and a stepper here.
"""

import abc
import dataclasses
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array

from .._simulate import Status
from .._solvers import bdf, rodas5p, ros34pw2, tsit5
from .system import LaneParams, LaneSystem


__all__ = [
    "AbstractStepper",
    "BDFStepper",
    "DiffraxStepper",
    "Rodas5PStepper",
    "RosWStepper",
    "Step",
    "Tsit5Stepper",
]


class Step(eqx.Module):
    """What a stepper returns: the proposed solution, its error estimate, `f(t,
    y)` at the start of the step (for steady-state tracking), the dense-output
    information, and the state to keep if the step is accepted."""

    y1: Array
    error: Array
    f0: Array
    dense: Any
    state: Any


class AbstractStepper(eqx.Module):
    """One method, stepped on all lanes at once (see the module docstring)."""

    name: eqx.AbstractClassVar[str]
    error_order: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(self, system: LaneSystem, t, y, p: LaneParams, f0) -> Any: ...

    @abc.abstractmethod
    def step(self, system, t, h, y, p, state, ctl) -> Step: ...

    def status(self, state) -> Array | None:
        """Per-lane status the stepper imposes (None: never)."""
        del state
        return None

    @abc.abstractmethod
    def interpolate(self, dense, theta, project) -> Array: ...

    def control(self, enorm, accept, took, finite, new, old):
        """After a step with error norm `enorm` (per lane; `finite`: the step's
        values were), the factor for the next step size and the state to keep."""
        factor = step_factor(enorm, accept, finite, 1.0 / self.error_order)
        return factor, self.keep(accept, took, new, old)

    def keep(self, accept, took, new, old):
        """The state after a step: `new` where the step was `accept`ed (`took`:
        the lane was stepped at all)."""
        del took
        return lane_where(accept, new, old)

    def reload(self, load, fresh, current):
        """The state after lanes `load` took new samples (`fresh`: `init`)."""
        return lane_where(load, fresh, current)


def error_norm(error, y0, y1, ctl):
    """Per lane, the RMS of `error` scaled by `atol + rtol max(|y0|, |y1|)`; inf
    where it or `y1` is not finite."""
    scale = ctl.atol + ctl.rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
    e2 = jnp.mean(jnp.square(error / scale) + 0.0 * y1, axis=0)
    return jnp.where(jnp.isfinite(e2), jnp.sqrt(e2), jnp.inf)


def step_factor(enorm, accept, finite, exponent):
    """The integral controller's factor: 0.9 enorm^-exponent, within [0.2, 10]
    after an accepted step, [0.2, 0.9] after a rejected one, 0.2 after a
    non-finite one."""
    factor = 0.9 * jnp.where(enorm > 0, enorm, 1e-10) ** (-exponent)
    factor = jnp.where(accept, jnp.clip(factor, 0.2, 10.0), jnp.clip(factor, 0.2, 0.9))
    return jnp.where(finite, factor, 0.2)


def lane_where(mask, new, old, *, first: bool = False):
    """Per-lane select on pytrees whose arrays have the lane axis last (`first`:
    the lane axis first, as in `jax.vmap`'s outputs)."""

    def sel(a, b):
        if a is None:
            return None
        ones = (1,) * (a.ndim - 1)
        return jnp.where(mask.reshape((-1,) + ones if first else ones + (-1,)), a, b)

    return jax.tree_util.tree_map(sel, new, old, is_leaf=lambda x: x is None)


def _no_factors(system, y, p):
    """Zeros shaped as `system.factor`'s output for the lanes of `y`: the state of a
    stepper that keeps factorisations, before its first one."""
    shapes = jax.eval_shape(system.factor, y, p, jnp.ones(y.shape[1:], y.dtype))
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _row(x):
    """Per-lane scalars `(lanes,)` as a row `(1, lanes)` against `(rows, lanes)`."""
    return x[None, :]


# -- Tsit5 --------------------------------------------------------------------------


class _Tsit5State(eqx.Module):
    f: Array  # f(t, y): first same as last
    n_stiff: Array  # accepted stability-limited steps in a row
    n_nonstiff: Array


class Tsit5Stepper(AbstractStepper):
    """Tsitouras' 5(4) pair, FSAL. With `detect_stiff`, Hairer's test ends a lane
    with `Status.STIFF` after 15 accepted steps in a row at the edge of the stability
    region (`h |lambda| > 3.0`) with t1 more than `far` such steps away (a mildly
    stiff tail costs less than switching methods). `far` = 50 by default: with 500,
    IRIS and virus CRNs run to t1 = 500 (a rate scan's horizon) stayed on Tsit5 at
    1.4-1.8x the time of switching (`benchmarks/ensemble.py`, inputs_long). The plan
    raises it where an implicit step costs many explicit ones (a dense LU:
    `plan.STIFF_FAR`)."""

    detect_stiff: bool = eqx.field(static=True, default=False)
    far: int = eqx.field(static=True, default=50)
    name: ClassVar[str] = "tsit5"
    error_order: int = eqx.field(static=True, default=tsit5.ERROR_ORDER)

    def init(self, system, t, y, p, f0):
        zero = jnp.zeros(y.shape[1:], jnp.int32)
        return _Tsit5State(f0, zero, zero)

    def step(self, system, t, h, y, p, state, ctl):
        def f(tt, u):
            return system.rhs(tt, u, p)

        y1, err, ks, u6 = tsit5.tsit5_stages(f, _row(t), _row(h), y, state.f)
        n_stiff, n_nonstiff = state.n_stiff, state.n_nonstiff
        if self.detect_stiff:
            weight = 1.0 / (ctl.atol + ctl.rtol * jnp.abs(y1))
            hl, valid = tsit5.stiffness_estimate(h, ks, y1, u6, weight, jnp)
            far = ctl.t1 - t - h > self.far * h
            limited = valid & (hl > tsit5.STABILITY_EDGE) & far
            n_stiff = jnp.where(limited, n_stiff + 1, n_stiff)
            n_nonstiff = jnp.where(limited, 0, n_nonstiff + 1)
            n_stiff = jnp.where(n_nonstiff >= 6, 0, n_stiff)
        new = _Tsit5State(ks[6], n_stiff, n_nonstiff)
        return Step(y1, err, state.f, (y, _row(h), ks), new)

    def status(self, state):
        if not self.detect_stiff:
            return None
        return jnp.where(state.n_stiff >= 15, Status.STIFF, Status.OK).astype(jnp.int32)

    def interpolate(self, dense, theta, project):
        y0, h, ks = dense
        w = tsit5.tsit5_weights(_row(theta))
        acc = None
        for wi, k in zip(w, ks, strict=True):
            term = wi * project(k)
            acc = term if acc is None else acc + term
        return project(y0) + h * acc


# -- Rodas5P ------------------------------------------------------------------------


class Rodas5PStepper(AbstractStepper):
    """Rodas5P (see `jaxcrn.Rodas5P`): its 8 linear solves per step by the
    system's linear solve (block substitution, sparse LU), on all lanes at once.
    `unroll`: the 8 stages unrolled (faster for small systems) or looped (the
    right-hand side and the solve compiled once: much faster to compile when the
    solve is a long schedule)."""

    unroll: bool = eqx.field(static=True, default=True)
    name: ClassVar[str] = "rodas5p"
    error_order: int = eqx.field(static=True, default=rodas5p.ERROR_ORDER)

    def init(self, system, t, y, p, f0):
        return None

    def step(self, system, t, h, y, p, state, ctl):
        hb = _row(h)
        tb = _row(t)

        def f(tt, u):
            return system.rhs(tt, u, p)

        f0 = f(tb, y)
        factors = system.factor(y, p, 1.0 / (rodas5p._GAMMA * hb))
        y1, err, ks = rodas5p.rodas5p_stages(
            f,
            lambda b: system.solve(factors, b),
            tb,
            hb,
            y,
            f0,
            system.dfdt(tb, y, p),
            unroll=self.unroll,
        )
        return Step(y1, err, f0, (y, y1, rodas5p.rodas5p_dense(ks)), None)

    def interpolate(self, dense, theta, project):
        y0, y1, kk = dense
        return rodas5p.rodas5p_interpolate(
            _row(theta), project(y0), project(y1), [project(k) for k in kk]
        )


# -- ROS34PW2, a Rosenbrock-W method that reuses its factorisation --------------------


class _RosWState(eqx.Module):
    f: Array  # f(t, y) at the lane's accepted state (first same as last)
    factors: Any  # of lam_f I - J_f, shared by the lanes (any layout)
    lam_f: Array  # (lanes,) the lam they were factored at
    age: Array  # (lanes,) steps the factors have served
    stale: Array  # (lanes,) must refactor before the next step
    live: Array  # (lanes,) the lane holds a sample (its triggers count)
    fresh: Array  # () the factors were made in this step


class RosWStepper(AbstractStepper):
    """ROS34PW2 (3rd order, 4 linear solves per step) with one factorisation of
    `lam I - J` serving several steps: a W-method keeps its order with a stale
    Jacobian, also at another step size (see `jaxcrn._solvers.ros34pw2`). All lanes
    are refactored together, at their current states, when any lane that holds a
    sample starts afresh, had a step rejected on old factors, has used its factors
    for `max_age` steps, or has moved its `1/(gamma h)` out of `[lam_f / max_ratio,
    lam_f * max_ratio]`; otherwise a step costs 4 right-hand sides and 4 solves and
    no Jacobian. Dense output: cubic Hermite."""

    max_age: int = eqx.field(static=True, default=20)
    max_ratio: float = eqx.field(static=True, default=2.0)
    name: ClassVar[str] = "ros34pw2"
    error_order: int = eqx.field(static=True, default=ros34pw2.ERROR_ORDER)

    def init(self, system, t, y, p, f0):
        lam = jnp.ones(y.shape[1:], y.dtype)
        factors = _no_factors(system, y, p)
        ones = jnp.ones(y.shape[1:], bool)
        return _RosWState(
            f0,
            factors,
            lam,
            jnp.zeros(y.shape[1:], jnp.int32),
            ones,
            ones,
            jnp.asarray(False),
        )

    def step(self, system, t, h, y, p, state, ctl):
        hb = _row(h)
        tb = _row(t)
        lam = 1.0 / (ros34pw2.GAMMA * h)
        ratio = lam / state.lam_f
        need = state.live & (
            state.stale
            | (state.age >= self.max_age)
            | (ratio > self.max_ratio)
            | (ratio * self.max_ratio < 1.0)
        )
        refresh = jnp.any(need)
        factors, lam_f = jax.lax.cond(
            refresh,
            lambda: (system.factor(y, p, lam), lam),
            lambda: (state.factors, state.lam_f),
        )

        def f(tt, u):
            return system.rhs(tt, u, p)

        y1, err = ros34pw2.ros34pw2_stages(
            f,
            lambda b: system.solve(factors, b),
            tb,
            hb,
            y,
            state.f,
            system.dfdt(tb, y, p),
        )
        f1 = f(tb + hb, y1)
        age = jnp.where(refresh, 1, state.age + 1)
        new = _RosWState(f1, factors, lam_f, age, state.stale, state.live, refresh)
        return Step(y1, err, state.f, (y, y1, state.f, f1, hb), new)

    def keep(self, accept, took, new, old):
        # the factors are shared: whatever the step used (or made) is kept; a lane
        # whose step failed on old factors refactors before it tries again
        return _RosWState(
            f=lane_where(accept, new.f, old.f),
            factors=new.factors,
            lam_f=new.lam_f,
            age=new.age,
            stale=took & ~accept & ~new.fresh,
            live=took,
            fresh=new.fresh,
        )

    def reload(self, load, fresh, current):
        return _RosWState(
            f=lane_where(load, fresh.f, current.f),
            factors=current.factors,
            lam_f=current.lam_f,
            age=current.age,
            stale=current.stale | load,
            live=current.live | load,
            fresh=current.fresh,
        )

    def interpolate(self, dense, theta, project):
        y0, y1, f0, f1, h = dense
        return ros34pw2.hermite(
            _row(theta), project(y0), project(y1), project(f0), project(f1), h
        )


# -- BDF (NDF, orders 1-5) with a modified Newton iteration ---------------------------


class _BDFState(eqx.Module):
    d: Array  # (bdf.ROWS, state, lanes) backward differences, scaled for h_d
    order: Array  # (lanes,) int
    h_d: Array  # (lanes,) the step size `d` is scaled for
    n_equal: Array  # (lanes,) accepted steps at this step size and order
    factors: Any  # of lam_f I - J (lam_f = 1 / c_f), one per lane (any layout)
    c_f: Array  # (lanes,)
    age: Array  # (lanes,) steps the lane's factors have served
    stale: Array  # (lanes,) must refactor before the next step
    live: Array  # (lanes,) the lane holds a sample (its triggers count)
    fresh: Array  # (lanes,) the factors were made in this step
    failed: Array  # (lanes,) the Newton iteration did not converge in this step
    n_iter: Array  # (lanes,) its iterations
    e_lower: Array  # (lanes,) error norm at order k - 1 (inf: none)
    e_higher: Array  # (lanes,) at order k + 1


class BDFStepper(AbstractStepper):
    """Variable-order BDF (the NDF variant of orders 1-5, as scipy's `BDF`) with a
    modified Newton iteration on a factorisation of `(I/c - J)`, `c = h /
    alpha_k`, that serves a lane for several steps: a lane refactors (at its
    current state) when it starts, when its Newton iteration failed on old
    factors, after `max_age` steps, or when its `c` has moved more than
    `max_change` from the factored one (the correction is then scaled by `2 / (1 +
    c / c_f)`, as CVODE's). Lanes refactor on their own: up to `compact` of them
    are gathered and factored together (all lanes when more need it), so one
    lane's new step size does not cost every lane a factorisation. Step size and
    order as scipy's: the step size is kept for `k + 1` steps after a change, then
    the order among `k - 1, k, k + 1` that allows the longest step is taken.
    Dense output: the method's interpolating polynomial."""

    max_age: int = eqx.field(static=True, default=20)
    max_change: float = eqx.field(static=True, default=0.3)
    compact: int = eqx.field(static=True, default=0)  # 0: a quarter of the lanes
    min_gain: float = eqx.field(static=True, default=1.5)
    name: ClassVar[str] = "bdf"
    error_order: int = eqx.field(static=True, default=2)  # unused: `control`

    def init(self, system, t, y, p, f0):
        lanes = y.shape[1:]
        dt = y.dtype
        d = jnp.zeros((bdf.ROWS,) + y.shape, dt).at[0].set(y).at[1].set(f0)
        factors = _no_factors(system, y, p)
        zero = jnp.zeros(lanes, jnp.int32)
        ones = jnp.ones(lanes, bool)
        inf = jnp.full(lanes, jnp.inf, dt)
        return _BDFState(
            d=d,
            order=zero + 1,
            h_d=jnp.ones(lanes, dt),  # d[1] = f0 is the first difference for h = 1
            n_equal=zero,
            factors=factors,
            c_f=jnp.ones(lanes, dt),
            age=zero,
            stale=ones,
            live=ones,
            fresh=~ones,
            failed=~ones,
            n_iter=zero,
            e_lower=inf,
            e_higher=inf,
        )

    def _refactor(self, system, y, p, c, state, need):
        """Fresh factors for the lanes that `need` them (and, when few do, for
        some others of the gathered group): `(factors, c_f, fresh)`."""
        n_lanes = y.shape[1]
        m = self.compact or max(1, n_lanes // 4)
        count = jnp.sum(need, dtype=jnp.int32)

        def none():
            return state.factors, state.c_f, jnp.zeros_like(need)

        def every():
            return system.factor(y, p, 1.0 / c), c, jnp.ones_like(need)

        def some():
            (idx,) = jnp.nonzero(need, size=m, fill_value=jnp.argmax(need))
            sub_p = jax.tree_util.tree_map(lambda a: a[..., idx], p)
            sub = system.factor(y[:, idx], sub_p, 1.0 / c[idx])

            def put(full, part):
                # the lane axis is where the shapes differ (a layout may put it
                # first: a dense LU's batched matrices)
                axes = [
                    a
                    for a, (u, v) in enumerate(zip(full.shape, part.shape, strict=True))
                    if u != v
                ]
                if not axes:
                    return part  # no lane axis: the same for every lane
                (axis,) = axes
                where = (slice(None),) * axis + (idx,)
                return full.at[where].set(part)

            factors = jax.tree_util.tree_map(put, state.factors, sub)
            return factors, state.c_f.at[idx].set(c[idx]), need.at[idx].set(True)

        if m >= n_lanes:
            branch = jnp.where(count > 0, 2, 0)
            return jax.lax.switch(branch, [none, none, every])
        branch = jnp.where(count == 0, 0, jnp.where(count <= m, 1, 2))
        return jax.lax.switch(branch, [none, some, every])

    def step(self, system, t, h, y, p, state, ctl):
        dt = y.dtype
        # the history at this step's size (a step size set elsewhere, or after a
        # rejection or an order change, rescales it)
        moved = h != state.h_d
        d = jax.lax.cond(
            jnp.any(moved),
            lambda: bdf.change_d(
                state.d, state.order, jnp.where(moved, h / state.h_d, 1.0)
            ),
            lambda: state.d,
        )
        n_equal = jnp.where(moved, 0, state.n_equal)
        k = state.order
        alpha = bdf.table(bdf.ALPHA, k, dt)
        c = h / alpha
        y_pred, psi = bdf.predict(d, k)
        f0 = system.rhs(_row(t), y, p)

        ratio = c / state.c_f
        need = state.live & (
            state.stale
            | (state.age >= self.max_age)
            | (jnp.abs(ratio - 1.0) > self.max_change)
        )
        factors, c_f, fresh = self._refactor(system, y, p, c, state, need)
        ratio = c / c_f
        gain = _row(2.0 / (1.0 + ratio) / c_f)

        scale = ctl.atol + ctl.rtol * jnp.abs(y_pred)
        tol = bdf.newton_tol(ctl.rtol, jnp.finfo(dt).eps)
        t1 = _row(t + h)
        cb = _row(c)

        def cond(carry):
            it, _, _, _, conv, fail, _ = carry
            return (it < bdf.NEWTON_MAXITER) & jnp.any(~conv & ~fail)

        def body(carry):
            it, yk, corr, dy_old, conv, fail, n_it = carry
            run = ~conv & ~fail
            fk = system.rhs(t1, yk, p)
            dy = system.solve(factors, cb * fk - psi - corr) * gain
            dy_norm = jnp.sqrt(jnp.mean(jnp.square(dy / scale), axis=0))
            rate = dy_norm / jnp.where(it > 0, dy_old, 1.0)
            left = (bdf.NEWTON_MAXITER - it).astype(dt)
            diverge = (it > 0) & (
                (rate >= 1.0) | (rate**left / (1.0 - rate) * dy_norm > tol)
            )
            diverge = diverge | ~jnp.isfinite(dy_norm)
            take = run & ~diverge
            yk = jnp.where(take[None, :], yk + dy, yk)
            corr = jnp.where(take[None, :], corr + dy, corr)
            done = (dy_norm == 0.0) | ((it > 0) & (rate / (1.0 - rate) * dy_norm < tol))
            conv = conv | (take & done)
            fail = fail | (run & diverge)
            n_it = n_it + run.astype(jnp.int32)
            return it + 1, yk, corr, jnp.where(take, dy_norm, dy_old), conv, fail, n_it

        lanes = y.shape[1:]
        start = (
            jnp.zeros((), jnp.int32),
            y_pred,
            jnp.zeros_like(y),
            jnp.ones(lanes, dt),
            ~state.live,
            jnp.zeros(lanes, bool),
            jnp.zeros(lanes, jnp.int32),
        )
        _, y_new, corr, _, conv, _, n_it = jax.lax.while_loop(cond, body, start)
        failed = ~conv & state.live
        y_bad = ~jnp.all(jnp.isfinite(y_new), axis=0)
        # a failed iteration proposes no step: its error says "reject" (10 x the
        # tolerance), or is not finite where the values were not
        err_scale = ctl.atol + ctl.rtol * jnp.abs(y)
        error = bdf.table(bdf.ERROR_CONST, k, dt)[None, :] * corr
        error = jnp.where(failed[None, :], 10.0 * err_scale, error)
        y1 = jnp.where((failed & ~y_bad)[None, :], y, y_new)
        y1 = jnp.where((failed & y_bad)[None, :], jnp.nan, y1)

        d_new = bdf.update_d(d, corr, k)
        e_lower = jnp.where(
            k > 1,
            error_norm(
                bdf.table(bdf.ERROR_CONST, k - 1, dt)[None, :] * bdf.row_at(d_new, k),
                y,
                y1,
                ctl,
            ),
            jnp.inf,
        )
        e_higher = jnp.where(
            k < bdf.MAX_ORDER,
            error_norm(
                bdf.table(bdf.ERROR_CONST, jnp.minimum(k + 1, bdf.MAX_ORDER), dt)[
                    None, :
                ]
                * bdf.row_at(d_new, k + 2),
                y,
                y1,
                ctl,
            ),
            jnp.inf,
        )
        age = jnp.where(fresh, 0, state.age) + 1
        new = _BDFState(
            d=d_new,
            order=k,
            h_d=h,
            n_equal=n_equal + 1,
            factors=factors,
            c_f=c_f,
            age=age,
            stale=state.stale & ~fresh,
            live=state.live,
            fresh=fresh,
            failed=failed,
            n_iter=n_it,
            e_lower=e_lower,
            e_higher=e_higher,
        )
        rows = tuple(d_new[j] for j in range(bdf.MAX_ORDER + 1))
        return Step(y1, error, f0, (rows, k), new)

    def control(self, enorm, accept, took, finite, new, old):
        dt = enorm.dtype
        k = new.order
        it = 2 * bdf.NEWTON_MAXITER
        safety = 0.9 * (it + 1) / (it + new.n_iter.astype(dt))
        # accepted: keep the step size for k + 1 steps, then the best order
        norms = jnp.stack([new.e_lower, enorm, new.e_higher])
        expo = 1.0 / jnp.stack([k, k + 1, k + 2]).astype(dt)
        cand = jnp.where(norms > 0, norms, 1e-10) ** (-expo)
        cand = jnp.where(jnp.isfinite(norms), cand, 0.0)
        best = jnp.argmax(cand, axis=0).astype(jnp.int32)
        choose = new.n_equal >= k + 1
        grow = jnp.minimum(10.0, safety * jnp.max(cand, axis=0))
        # a small gain is not worth a new factorisation (CVODE's threshold)
        change = choose & ((grow >= self.min_gain) | (grow < 1.0))
        factor_ok = jnp.where(change, grow, 1.0)
        order_ok = jnp.where(change, k + best - 1, k).astype(jnp.int32)
        # rejected by the error test, by the Newton iteration, or not finite
        expo_err = -1.0 / (k + 1).astype(dt)
        factor_err = jnp.maximum(
            0.2, safety * jnp.where(enorm > 0, enorm, 1e-10) ** expo_err
        )
        factor_newton = jnp.where(new.fresh, 0.5, 1.0)
        factor_bad = jnp.where(new.fresh, 0.2, 1.0)
        factor = jnp.where(
            accept,
            factor_ok,
            jnp.where(
                ~finite,
                factor_bad,
                jnp.where(new.failed, factor_newton, jnp.minimum(factor_err, 0.9)),
            ),
        )
        # the factors are per lane but not all lane-last (a dense LU's are
        # lane-first): whatever the step made is kept, for every lane
        kept = lane_where(
            accept,
            dataclasses.replace(new, order=order_ok, factors=None),
            dataclasses.replace(old, factors=None),
        )
        state = dataclasses.replace(
            kept,
            factors=new.factors,
            c_f=new.c_f,
            age=new.age,
            stale=new.stale | (took & ~accept & ~new.fresh),
            live=took,
        )
        return factor, state

    def reload(self, load, fresh, current):
        # a loaded lane refactors before its first step (`stale`)
        kept = lane_where(
            load,
            dataclasses.replace(fresh, factors=None),
            dataclasses.replace(current, factors=None),
        )
        return dataclasses.replace(kept, factors=current.factors)

    def interpolate(self, dense, theta, project):
        rows, k = dense
        return bdf.dense_eval([project(r) for r in rows], k, theta)


# -- any diffrax solver -------------------------------------------------------------


def _with_stepsize_tols(solver, rtol, atol):
    """An implicit diffrax solver's root finder takes its tolerances from the
    step-size controller unless it was given its own; `diffeqsolve` fills them in,
    and the engine, which steps the solver itself, does the same: any of `rtol`,
    `atol` that is not a number becomes the controller's, a `norm` that is not
    callable the RMS norm."""
    if not isinstance(solver, diffrax.AbstractImplicitSolver):
        return solver
    rf = solver.root_finder
    fixes = {}
    for name, value in (("rtol", rtol), ("atol", atol)):
        cur = getattr(rf, name, None)
        if cur is not None and not isinstance(
            cur, int | float | np.ndarray | jax.Array
        ):
            fixes[name] = value
    norm = getattr(rf, "norm", None)
    if norm is not None and not callable(norm):
        fixes["norm"] = optx.rms_norm
    if not fixes:
        return solver
    names = tuple(fixes)
    return eqx.tree_at(
        lambda s: tuple(getattr(s.root_finder, a) for a in names),
        solver,
        tuple(fixes[a] for a in names),
    )


class _LaneField(eqx.Module):
    """One lane's vector field for diffrax: `system.rhs` on a single sample."""

    system: LaneSystem
    p: LaneParams

    def __call__(self, t, y, args):
        del args
        return self.system.rhs(t, y[:, None], self.p)[:, 0]


def _lane(p: LaneParams):
    """Per-lane parameters of one lane (inside `vmap`): add back a lane axis."""
    return jax.tree_util.tree_map(lambda a: a[..., None], p)


class DiffraxStepper(AbstractStepper):
    """Any `diffrax.AbstractAdaptiveSolver`, one lane per `jax.vmap` slot. For
    users who bring their own method; the built-in steppers are faster."""

    solver: diffrax.AbstractAdaptiveSolver
    error_order: int = eqx.field(static=True)
    name: ClassVar[str] = "diffrax"

    @classmethod
    def of(cls, solver, rtol, atol) -> "DiffraxStepper":
        solver = _with_stepsize_tols(solver, rtol, atol)
        order = solver.order(None) if _takes_none(solver.order) else None
        err = _error_order(solver)
        return cls(solver, err or order or 4)

    def _term(self, system, p):
        return diffrax.ODETerm(_LaneField(system, _lane(p)))

    def init(self, system, t, y, p, f0):
        def one(t_, y_, p_):
            return self.solver.init(self._term(system, p_), t_, t_, y_, None)

        st = jax.vmap(one, in_axes=(0, 1, -1))(t, y, p)
        return (st, jnp.ones(y.shape[1:], bool))

    def step(self, system, t, h, y, p, state, ctl):
        solver_state, jump = state

        def one(t_, h_, y_, p_, st, j):
            term = self._term(system, p_)
            y1, err, dense, st1, _ = self.solver.step(
                term, t_, t_ + h_, y_, None, st, j
            )
            return y1, err, dense, st1, term.vf(t_, y_, None)

        y1, err, dense, st1, f0 = jax.vmap(
            one, in_axes=(0, 0, 1, -1, 0, 0), out_axes=(1, 1, 0, 0, 1)
        )(t, h, y, p, solver_state, jump)
        return Step(y1, err, f0, (t, h, dense), (st1, jnp.zeros_like(jump)))

    # the solver state comes from `jax.vmap`: its lane axis is the first
    def keep(self, accept, took, new, old):
        del took
        return self._where(accept, new, old)

    def reload(self, load, fresh, current):
        return self._where(load, fresh, current)

    @staticmethod
    def _where(mask, new, old):
        return (
            lane_where(mask, new[0], old[0], first=True),
            lane_where(mask, new[1], old[1]),
        )

    def interpolate(self, dense, theta, project):
        t0, h, info = dense

        def one(t0_, h_, th, d):
            interp = self.solver.interpolation_cls(t0=t0_, t1=t0_ + h_, **d)
            return interp.evaluate(t0_ + th * h_)

        ys = jax.vmap(one, out_axes=1)(t0, h, theta, info)
        return project(ys)


def _takes_none(method) -> bool:
    try:
        method(None)
        return True
    except Exception:  # a solver whose order depends on its terms
        return False


def _error_order(solver) -> int | None:
    try:
        return solver.error_order(None)
    except Exception:
        return None
