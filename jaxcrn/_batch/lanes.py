"""The lane scheduler: per-sample adaptive steps for many samples in one loop.

`jax.vmap(diffeqsolve)` advances a batch in lock-step: every iteration costs the
whole batch until the slowest sample is done. Here a fixed number of *lanes* each
integrate one sample with its own time, step size, step-size controller, step
counts and status; a lane whose sample finishes (t1 reached, steady state with
`stop_when_steady`, out of steps, non-finite, or a stepper's own status such as
STIFF) records its result and takes the next sample of the queue. Work is
proportional to the total number of steps, memory flat in the queue length.

The state of all lanes is one array `(state rows, lanes)`: the kinetics see whole
lane arrays, so every operation is vectorised over the lanes on any device. The
method is a stepper (`steppers.py`); the controller is an integral controller
(diffrax's `PIDController` with its defaults); saved values are interpolated on a
fixed grid by the stepper's dense output.

`run` advances the loop by at most a given number of iterations and returns the
carry, so a host loop can report progress between segments; a carry whose lanes
are all idle is done.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._simulate import Status
from .._solvers._common import growth_step_limit, hairer_initial_step
from .steppers import AbstractStepper, error_norm, lane_where
from .system import LaneParams, LaneSystem


__all__ = ["Carry", "Queue", "Record", "finalize", "initial_carry", "prepare", "run"]

PENDING = -1  # status of a sample not yet finished (never leaves the engine)


# per-sample scalars of the queue and the record, packed as columns of one array
# so that loading or recording a lane is one gather or one scatter
_T, _H, _T_STEADY, _STEPS, _REJECTED, _SAVE_K, _FLAG = range(7)


class Queue(eqx.Module):
    """The samples of one engine call, the sample axis first (loading a lane is a
    row gather): `rows` holds each sample's initial state, `f(t0, y0)` and its
    scalars (start time, step, steady since, steps, rejected, saved points, and
    whether the start is non-finite)."""

    rows: Float[Array, "samples width"]
    p: LaneParams  # sample-first
    n_state: int = eqx.field(static=True)

    @classmethod
    def build(cls, y0, f0, t0, h0, t_steady0, steps0, rejected0, save_k0, bad0, p):
        dt = y0.dtype
        scalars = jnp.stack(
            [
                t0,
                h0,
                t_steady0,
                steps0.astype(dt),
                rejected0.astype(dt),
                save_k0.astype(dt),
                bad0.astype(dt),
            ],
            axis=1,
        )
        return cls(jnp.concatenate([y0, f0, scalars], axis=1), p, y0.shape[1])

    @property
    def size(self) -> int:
        return self.rows.shape[0]

    def load(self, idx):
        """Lanes' view of samples `idx`: `(y, f0, scalars, p)`, lane axis last."""
        block = self.rows[idx].T
        s = self.n_state
        return block[:s], block[s : 2 * s], block[2 * s :], _load(self.p, idx)


class Lanes(eqx.Module):
    """Per-lane state, the lane axis last."""

    y: Float[Array, "state lanes"]
    t: Float[Array, " lanes"]
    h: Float[Array, " lanes"]
    sample: Int[Array, " lanes"]  # -1: idle
    bad: Bool[Array, " lanes"]  # the sample's start is non-finite
    p: LaneParams
    stepper_state: object
    steps: Int[Array, " lanes"]
    rejected: Int[Array, " lanes"]
    t_steady: Float[Array, " lanes"]  # start of the current steady stretch
    save_k: Int[Array, " lanes"]  # next grid point to save


class Record(eqx.Module):
    """Per-sample results, the sample axis first; the scalars packed in `info`."""

    y: Float[Array, "samples state"]
    saved: Float[Array, "samples times values"]
    info: Float[Array, "samples 7"]

    t = property(lambda self: self.info[:, _T])
    h = property(lambda self: self.info[:, _H])
    t_steady = property(lambda self: self.info[:, _T_STEADY])
    status = property(lambda self: self.info[:, _FLAG].astype(jnp.int32))
    steps = property(lambda self: self.info[:, _STEPS].astype(jnp.int32))
    rejected = property(lambda self: self.info[:, _REJECTED].astype(jnp.int32))
    save_k = property(lambda self: self.info[:, _SAVE_K].astype(jnp.int32))


def host_status(record: Record) -> np.ndarray:
    """`record.status` as a NumPy array, read on the host (slicing the device
    array would compile small programs of its own)."""
    return np.asarray(record.info)[:, _FLAG].astype(np.int32)


class Carry(eqx.Module):
    lanes: Lanes
    record: Record
    next_sample: Int[Array, ""]
    iterations: Int[Array, ""]

    @property
    def done(self) -> bool:
        """No lane holds a sample (read on the host)."""
        return not np.any(np.asarray(self.lanes.sample) >= 0)


class Controls(eqx.Module):
    """Tolerances and limits, traced so one compilation serves every value."""

    t1: Float[Array, ""]
    rtol: Float[Array, ""]
    atol: Float[Array, ""]
    max_steps: Int[Array, ""]
    steady_tol: Float[Array, ""]


class Saving(eqx.Module):
    """What is saved on the grid: value `v` is `state[pos[v]] - state[neg[v]]`
    (row -1: zero)."""

    ts: Float[Array, " times"]
    pos: Int[Array, " values"]
    neg: Int[Array, " values"]

    def project(self, y: Array) -> Array:
        """`(state, lanes)` -> `(values, lanes)`."""
        ext = jnp.concatenate([y, jnp.zeros((1,) + y.shape[1:], y.dtype)])
        return ext[self.pos] - ext[self.neg]


def _fold(x, op):
    """Reduce `(rows, lanes)` over the rows by folding halves with the elementwise
    `op`: every step is contiguous and vectorised over the lanes (XLA:CPU reduces
    the leading axis of a row-major array one strided column at a time)."""
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        head = op(x[:half], x[half : 2 * half])
        x = (
            head
            if x.shape[0] % 2 == 0
            else jnp.concatenate([op(head[:1], x[-1:]), head[1:]])
        )
    return x[0]


def col_max(x):
    """`max(x, axis=0)` of a `(rows, lanes)` array (0 for no rows)."""
    if x.shape[0] == 0:
        return jnp.zeros(x.shape[1:], x.dtype)
    return _fold(x, jnp.maximum)


def col_mean(x):
    """`mean(x, axis=0)` of a `(rows, lanes)` array."""
    return _fold(x, jnp.add) / x.shape[0]


def _load(tree, idx):
    """Rows `idx` of every array of a sample-first pytree, as lane-last arrays."""
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a[idx], 0, -1), tree)


def lanes_first(tree):
    """A lane-last pytree as sample-first (the queue's layout)."""
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, -1, 0), tree)


@eqx.filter_jit
def prepare(
    system: LaneSystem, y0, t0, h_given, p: LaneParams, ctl: Controls, real=None
):
    """Per sample (sample-first arrays): the initial step (Hairer's heuristic where
    `h_given` is NaN), `f(t0, y0)`, and whether the start is non-finite or the row
    is padding (at or after row `real`, if given): such a sample ends at its first
    iteration instead of being integrated."""
    pl = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, -1), p)
    h, f0 = hairer_initial_step(
        lambda t, y: system.rhs(t[None, :], y, pl),
        y0.T,
        t0,
        ctl.t1,
        5,
        ctl.rtol,
        ctl.atol,
    )
    h = jnp.where(jnp.isnan(h_given), h, h_given)
    bad = ~(
        jnp.all(jnp.isfinite(y0), axis=1)
        & jnp.all(jnp.isfinite(f0), axis=0)
        & jnp.isfinite(h)
    )
    if real is not None:
        bad = bad | (jnp.arange(y0.shape[0], dtype=jnp.int32) >= real)
    return h, f0.T, bad


def _loaded(system, stepper, queue: Queue, idx, sample) -> Lanes:
    """Lanes holding the queue's samples `idx` as they start (or resume)."""
    y, f0, sc, p = queue.load(idx)
    t = sc[_T]
    return Lanes(
        y=y,
        t=t,
        h=sc[_H],
        sample=sample,
        bad=sc[_FLAG] != 0,
        p=p,
        stepper_state=stepper.init(system, t, y, p, f0),
        steps=sc[_STEPS].astype(jnp.int32),
        rejected=sc[_REJECTED].astype(jnp.int32),
        t_steady=sc[_T_STEADY],
        save_k=sc[_SAVE_K].astype(jnp.int32),
    )


@eqx.filter_jit
def initial_carry(
    system: LaneSystem,
    stepper: AbstractStepper,
    queue: Queue,
    n_lanes: int,
    n_times: int,
    n_values: int,
) -> Carry:
    """The first `n_lanes` samples loaded into the lanes, an empty record."""
    n = queue.size
    n_lanes = max(1, min(n_lanes, n))
    dtype = queue.rows.dtype
    idx = jnp.arange(n_lanes)
    sample = jnp.where(idx < n, idx, -1).astype(jnp.int32)
    lanes = _loaded(system, stepper, queue, jnp.clip(idx, 0, n - 1), sample)
    info = jnp.zeros((n, 7), dtype).at[:, _FLAG].set(PENDING)
    record = Record(
        y=jnp.zeros((n, queue.n_state), dtype),
        saved=jnp.full((n, n_times, n_values), jnp.nan, dtype),
        info=info,
    )
    return Carry(
        lanes, record, jnp.asarray(n_lanes, jnp.int32), jnp.zeros((), jnp.int32)
    )


def _body(system, stepper, queue, saving, ctl, stop_when_steady, carry: Carry) -> Carry:
    ln, rec = carry.lanes, carry.record
    n = queue.size
    n_times = saving.ts.shape[0]
    active = ln.sample >= 0
    t0, y = ln.t, ln.y
    h = ln.h
    # a species growing by catalysis from below the tolerances' reach: bound g h
    g = system.growth_rate(y, ln.p, ctl.atol / ctl.rtol)
    if g is not None:
        h = jnp.minimum(h, growth_step_limit(g))
    t_next = jnp.minimum(t0 + h, ctl.t1)
    h = t_next - t0
    st = stepper.step(system, t0, h, y, ln.p, ln.stepper_state, ctl)
    dt = y.dtype

    # steadiness of the current state, from f(t0, y) of the step
    steady0 = col_max(jnp.abs(st.f0)) <= ctl.steady_tol
    if g is not None:  # a seed that has yet to grow is not a steady state
        steady0 = steady0 & (g <= 0)
    t_steady = jnp.where(
        active,
        jnp.where(steady0, jnp.where(jnp.isinf(ln.t_steady), t0, ln.t_steady), jnp.inf),
        ln.t_steady,
    )
    stop_steady = active & steady0 & stop_when_steady

    # error norm and acceptance (0 * y1 makes the norm NaN where y1 is not finite)
    enorm = error_norm(st.error, y, st.y1, ctl)
    finite = jnp.isfinite(enorm)
    took = active & ~stop_steady
    accept = took & (enorm <= 1.0)
    factor, state_new = stepper.control(
        enorm, accept, took, finite, st.state, ln.stepper_state
    )
    # after a step shortened to hit t1, keep the proposal
    h_new = jnp.where(accept & (t_next >= ctl.t1), ln.h, h * factor)
    y_new = jnp.where(accept[None, :], st.y1, y)
    t_new = jnp.where(accept, t_next, t0)
    steps = ln.steps + took.astype(jnp.int32)
    rejected = ln.rejected + (took & ~accept).astype(jnp.int32)
    flag = stepper.status(state_new)

    # save grid points in (t0, t_new] by dense interpolation
    saved, save_k = rec.saved, ln.save_k
    if n_times:
        k_end = jnp.searchsorted(saving.ts, t_new, side="right").astype(jnp.int32)
        k_end = jnp.where(accept, k_end, save_k)

        def save_all(sk):
            def cond(sk):
                return jnp.any(sk[1] < k_end)

            def body(sk):
                g, k = sk
                pending = k < k_end
                kc = jnp.clip(k, 0, n_times - 1)
                tk = saving.ts[kc]
                theta = jnp.where(h > 0, (tk - t0) / jnp.where(h > 0, h, 1.0), 0.0)
                vals = stepper.interpolate(st.dense, theta.astype(dt), saving.project)
                row = jnp.where(pending, ln.sample, n)
                g = g.at[row, kc].set(vals.T, mode="drop")
                return g, k + pending.astype(jnp.int32)

            return jax.lax.while_loop(cond, body, sk)

        saved, save_k = jax.lax.cond(
            jnp.any(save_k < k_end), save_all, lambda sk: sk, (saved, save_k)
        )

    # finished lanes
    reached = accept & (t_new >= ctl.t1)
    broken = active & (
        # non-finite at a step too short to move time (a state that overflowed
        # fails at every step size); relative to t, not absolute: fast networks
        # take steps of 1e-17 and less
        ln.bad | (~finite & (t0 + h * 0.2 == t0))
    )
    stepper_stop = (
        jnp.zeros_like(active) if flag is None else active & (flag != Status.OK)
    )
    out_of_steps = active & (steps >= ctl.max_steps)
    finished = active & (reached | stop_steady | broken | stepper_stop | out_of_steps)
    # priority: non-finite, then done, then the stepper's own status, then steps
    status = jnp.full_like(ln.sample, Status.MAX_STEPS)
    if flag is not None:
        status = jnp.where(stepper_stop, flag, status)
    status = jnp.where(reached | stop_steady, Status.OK, status)
    status = jnp.where(broken, Status.NONFINITE, status).astype(jnp.int32)

    def finish(r: Record) -> Record:
        row = jnp.where(finished, ln.sample, n)
        info = jnp.stack(
            [
                t_new,
                h_new,
                t_steady,
                steps.astype(dt),
                rejected.astype(dt),
                save_k.astype(dt),
                status.astype(dt),
            ],
            axis=1,
        )
        return Record(
            y=r.y.at[row].set(y_new.T, mode="drop"),
            saved=r.saved,
            info=r.info.at[row].set(info, mode="drop"),
        )

    rec = eqx.tree_at(lambda r: r.saved, rec, saved)
    rec = jax.lax.cond(jnp.any(finished), finish, lambda r: r, rec)

    # refill finished lanes from the queue
    rank = jnp.cumsum(finished.astype(jnp.int32)) - 1
    new_idx = (carry.next_sample + rank).astype(jnp.int32)
    load = finished & (new_idx < n)
    next_sample = carry.next_sample + jnp.sum(finished, dtype=jnp.int32)
    sample = jnp.where(finished, jnp.where(load, new_idx, -1), ln.sample)
    lanes = Lanes(
        y=y_new,
        t=t_new,
        h=h_new,
        sample=sample.astype(jnp.int32),
        bad=ln.bad,
        p=ln.p,
        stepper_state=state_new,
        steps=steps,
        rejected=rejected,
        t_steady=t_steady,
        save_k=save_k,
    )

    def refill(lanes: Lanes) -> Lanes:
        fresh = _loaded(
            system, stepper, queue, jnp.where(load, new_idx, 0), lanes.sample
        )
        state = stepper.reload(load, fresh.stepper_state, lanes.stepper_state)
        merged = lane_where(
            load,
            dataclasses.replace(fresh, stepper_state=None),
            dataclasses.replace(lanes, stepper_state=None),
        )
        return dataclasses.replace(merged, stepper_state=state)

    lanes = jax.lax.cond(jnp.any(load), refill, lambda x: x, lanes)
    return Carry(lanes, rec, next_sample, carry.iterations + 1)


@eqx.filter_jit
def run(
    static,
    carry: Carry,
    max_iterations: Int[Array, ""],
) -> Carry:
    """Advance the loop until every lane is idle or `max_iterations` more
    iterations have run. `static` is `(system, stepper, queue, saving, controls,
    stop_when_steady)`."""
    system, stepper, queue, saving, ctl, stop_when_steady = static
    limit = carry.iterations + max_iterations

    def cond(c: Carry):
        return jnp.any(c.lanes.sample >= 0) & (c.iterations < limit)

    def body(c: Carry):
        return _body(system, stepper, queue, saving, ctl, stop_when_steady, c)

    return jax.lax.while_loop(cond, body, carry)


@eqx.filter_jit
def finalize(
    system: LaneSystem, saving: Saving, record: Record, p: LaneParams, steady_tol
):
    """After the loop: whether each final state is steady, when its steady stretch
    began, and the saved values past each sample's last save point (the final
    values after an early stop, NaN after a failure). `p` sample-first."""
    ok = record.status == Status.OK
    pl = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, -1), p)
    y = record.y.T
    rate = col_max(jnp.abs(system.rhs(record.t[None, :], y, pl)))
    steady = ok & (rate <= steady_tol)
    t_steady = jnp.where(
        steady,
        jnp.where(jnp.isinf(record.t_steady), record.t, record.t_steady),
        jnp.inf,
    )
    n_times = saving.ts.shape[0]
    saved = record.saved
    if n_times:
        final = jnp.where(ok[None, :], saving.project(y), jnp.nan).T  # (N, V)
        k = jnp.arange(n_times, dtype=jnp.int32)
        after = k[None, :] >= record.save_k[:, None]
        saved = jnp.where(after[:, :, None], final[:, None, :], saved)
    return steady, t_steady, saved
