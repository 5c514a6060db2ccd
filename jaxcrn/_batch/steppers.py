"""Steppers: one step of one method for every lane at once.

The scheduler (`lanes.py`) owns the loop; a stepper is a small object with

- `init(system, t, y, p, f0) -> state`: its per-lane state for lanes that (re)start,
- `step(system, t, h, y, p, state, ctl) -> Step`: a step of size `h` (one per lane;
  `ctl` holds t1 and the tolerances),
- `status(state) -> (lanes,)`: `Status.OK`, or a code that ends the lane
  (`Status.STIFF`: Tsit5 found the problem stiff),
- `interpolate(dense, theta, project)`: the dense output at step fraction `theta`,
  mapped by the linear `project` (state rows -> saved values),
- `keep(accept, took, new, old)` and `reload(load, fresh, current)`: which state
  each lane keeps after a step and after lanes take new samples (by default the
  new state where the step was accepted, the fresh one where a lane was loaded).

Arrays are `(state rows, lanes)`; per-lane scalars `(lanes,)`; `state` and `dense`
are pytrees whose arrays have the lane axis last. Adding a method is a file in
`_solvers/` and a stepper here.
"""

import abc
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array

from .._simulate import Status
from .._solvers import rodas5p, ros34pw2, tsit5
from .system import LaneParams, LaneSystem


__all__ = [
    "AbstractStepper",
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

    def keep(self, accept, took, new, old):
        """The state after a step: `new` where the step was `accept`ed (`took`:
        the lane was stepped at all)."""
        del took
        return lane_where(accept, new, old)

    def reload(self, load, fresh, current):
        """The state after lanes `load` took new samples (`fresh`: `init`)."""
        return lane_where(load, fresh, current)


def lane_where(mask, new, old, *, first: bool = False):
    """Per-lane select on pytrees whose arrays have the lane axis last (`first`:
    the lane axis first, as in `jax.vmap`'s outputs)."""

    def sel(a, b):
        if a is None:
            return None
        ones = (1,) * (a.ndim - 1)
        return jnp.where(mask.reshape((-1,) + ones if first else ones + (-1,)), a, b)

    return jax.tree_util.tree_map(sel, new, old, is_leaf=lambda x: x is None)


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
    stiff tail costs less than switching methods). `far` = 50: with 500, IRIS and
    virus CRNs run to t1 = 500 (a rate scan's horizon) stayed on Tsit5 at 1.4-1.8x
    the time of switching (`benchmarks/ensemble.py`, inputs_long)."""

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
        shapes = jax.eval_shape(system.factor, y, p, lam)
        factors = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
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
