"""The batch engine: per-sample adaptive steps for many samples in one `while_loop`.

`jax.vmap(diffeqsolve)` advances the whole batch in lock-step: every iteration costs
the full batch until the slowest sample is done, and finished samples keep being
computed (masked). This engine instead keeps `lanes` slots, each integrating one
sample with its own time and step size (any diffrax adaptive solver; an integral
step-size controller as diffrax's default `PIDController`). When a lane's sample
finishes (t1 reached, steady state with `stop_when_steady`, out of steps, or NaN),
its results are written out and the lane takes the next sample from the queue. Work
is therefore proportional to the total number of steps, not to
`batch x max(steps)`, and memory is flat in the batch size (`lanes` states plus the
saved outputs).

Outputs are saved on a fixed time grid by the solver's dense interpolation; the
steady-state time `t_converged` is tracked at every accepted step.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._compile import ForcedNetwork, MassActionNetwork


def _rms(x):
    return jnp.sqrt(jnp.mean(jnp.square(x), axis=-1))


def step_factor(enorm, accept, finite, exponent):
    """The integral controller's step-size factor, per sample: 0.9 enorm^-exponent,
    within [0.2, 10] after an accepted step, [0.2, 0.9] after a rejected one, 0.2
    after a non-finite one. Both engines use it."""
    factor = 0.9 * jnp.where(enorm > 0, enorm, 1e-10) ** (-exponent)
    factor = jnp.where(accept, jnp.clip(factor, 0.2, 10.0), jnp.clip(factor, 0.2, 0.9))
    return jnp.where(finite, factor, 0.2)


def hairer_initial_step(f, y0, t1, order, rtol, atol, *, axis=-1):
    """Hairer's initial step heuristic (as diffrax's): `f(h, y)` evaluates the
    vector field at time `h` (0 for the first call); the norms reduce over `axis`
    (the species), so `y0` may hold one sample or a batch. Returns `(h, f(0, y0))`.
    """

    def rms(x):
        return jnp.sqrt(jnp.mean(jnp.square(x), axis=axis))

    def along(h):  # a per-sample step broadcast against y0
        return jnp.expand_dims(h, axis) if jnp.ndim(h) else h

    f0 = f(jnp.zeros_like(rms(y0)), y0)
    scale = atol + rtol * jnp.abs(y0)
    d0 = rms(y0 / scale)
    d1 = rms(f0 / scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    f1 = f(h0, y0 + along(h0) * f0)
    d2 = rms((f1 - f0) / scale) / h0
    h1 = jnp.where(
        jnp.maximum(d1, d2) <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(d1, d2)) ** (1.0 / (order + 1)),
    )
    return jnp.clip(jnp.minimum(100 * h0, h1), 1e-12, t1), f0


def _initial_step(field_of, y0s, cs, t1, order, rtol, atol):
    """Hairer's initial step heuristic, per sample."""

    def one(y0, c):
        network = field_of(c)
        return hairer_initial_step(
            lambda t, y: network(t, y, None), y0, t1, order, rtol, atol
        )[0]

    return jax.vmap(one)(y0s, cs)


class EngineResult(eqx.Module):
    y_final: Float[Array, "batch species"] | None
    outputs_final: Float[Array, "batch outputs"]
    outputs: Float[Array, "batch times outputs"] | None
    t_final: Float[Array, " batch"]
    status: Array
    steady: Array
    t_steady: Float[Array, " batch"]
    num_steps: Array
    num_rejected: Array


def _with_root_tols(solver, rtol, atol):
    """An implicit diffrax solver's root finder takes its tolerances from the
    step-size controller by default (`use_stepsize_tol`), which `diffeqsolve` fills
    in; the engine steps the solver itself, so it fills them in the same way."""
    if not isinstance(solver, diffrax.AbstractImplicitSolver):
        return solver
    from diffrax._root_finder import use_stepsize_tol

    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    attrs = [
        a
        for a in ("rtol", "atol", "norm")
        if getattr(solver.root_finder, a, None) is use_stepsize_tol
    ]
    if not attrs:
        return solver
    return eqx.tree_at(
        lambda s: tuple(getattr(s.root_finder, a) for a in attrs),
        solver,
        tuple(getattr(controller, a) for a in attrs),
    )


@eqx.filter_jit
def integrate_lanes(
    network: MassActionNetwork,
    y0s: Float[Array, "batch species"],
    t1: Float[Array, ""],
    save_ts: Float[Array, " times"] | None,
    *,
    solver: diffrax.AbstractAdaptiveSolver,
    rtol: float,
    atol: float,
    max_steps: int,
    lanes: int,
    steady_tol: float,
    stop_when_steady: bool,
    keep_states: bool,
    forced: bool = False,
) -> EngineResult:
    """Integrate every row of `y0s` from 0 to `t1` (see the module docstring).

    With `forced=True` (see `ForcedNetwork`) each lane integrates the network with
    its input wavefront solved exactly."""
    n, s = y0s.shape
    dtype = y0s.dtype
    lanes = max(1, min(lanes, n))
    n_out = network.n_outputs
    if forced:
        cs = jax.vmap(lambda y: ForcedNetwork.build(network, y).c)(y0s)
        decay = ForcedNetwork.build(network, y0s[0]).decay

        def field_of(c):
            return ForcedNetwork(network, c, decay)

        def state_at(vf, t, y):
            return vf.state_at(t, y)
    else:
        cs = jnp.zeros((n, 0), dtype)

        def field_of(c):
            return network

        def state_at(vf, t, y):
            return y

    solver = _with_root_tols(solver, rtol, atol)
    term0 = diffrax.ODETerm(field_of(cs[0]))
    order = solver.order(term0) or 4
    error_order = solver.error_order(term0) or order
    exponent = 1.0 / error_order
    h_init = _initial_step(field_of, y0s, cs, t1, order, rtol, atol)
    zero = jnp.zeros((), dtype)
    n_times = 0 if save_ts is None else save_ts.shape[0]

    def outputs_of(c, t, y):
        return network.read_outputs(state_at(field_of(c), t, y))

    def fresh(idx, valid):
        """State for lanes loading samples `idx` (masked by `valid`)."""
        safe = jnp.where(valid, idx, 0)
        y = y0s[safe]
        c = cs[safe]
        state = jax.vmap(
            lambda y, c: solver.init(diffrax.ODETerm(field_of(c)), zero, t1, y, None)
        )(y, c)
        return y, h_init[safe], state, c

    # -- initial lanes ------------------------------------------------------------
    lane_idx = jnp.arange(lanes)
    lane_sample = jnp.where(lane_idx < n, lane_idx, -1)
    y, h, solver_state, c_lane = fresh(lane_sample, lane_sample >= 0)
    carry = dict(
        c=c_lane,
        next_sample=jnp.asarray(lanes, jnp.int32),
        sample=lane_sample.astype(jnp.int32),
        t=jnp.zeros(lanes, dtype),
        h=h,
        y=y,
        solver_state=solver_state,
        jump=jnp.ones(lanes, bool),
        steps=jnp.zeros(lanes, jnp.int32),
        rejected=jnp.zeros(lanes, jnp.int32),
        t_steady=jnp.full(lanes, jnp.inf, dtype),
        save_k=jnp.zeros(lanes, jnp.int32),
        # global outputs
        out_final=jnp.full((n, n_out), jnp.nan, dtype),
        y_final=jnp.full((n, s) if keep_states else (0, s), jnp.nan, dtype),
        grid=jnp.full((n, n_times, n_out), jnp.nan, dtype),
        t_final=jnp.full(n, jnp.nan, dtype),
        status=jnp.full(n, 3, jnp.int32),
        steady_final=jnp.zeros(n, bool),
        t_steady_final=jnp.full(n, jnp.inf, dtype),
        steps_final=jnp.zeros(n, jnp.int32),
        rejected_final=jnp.zeros(n, jnp.int32),
    )

    def step_one(t0, t1_, y0, state, jump, c):
        term = diffrax.ODETerm(field_of(c))
        y1, err, dense, state1, _ = solver.step(term, t0, t1_, y0, None, state, jump)
        return y1, err, dense, state1

    def body(c):
        active = c["sample"] >= 0
        t0 = c["t"]
        t_next = jnp.minimum(t0 + c["h"], t1)
        y1, err, dense, state1 = jax.vmap(step_one)(
            t0, t_next, c["y"], c["solver_state"], c["jump"], c["c"]
        )
        scale = atol + rtol * jnp.maximum(jnp.abs(c["y"]), jnp.abs(y1))
        enorm = _rms(err / scale)
        finite = jnp.isfinite(enorm) & jnp.all(jnp.isfinite(y1), axis=1)
        enorm = jnp.where(finite, enorm, jnp.inf)
        accept = active & (enorm <= 1.0)
        factor = step_factor(enorm, accept, finite, exponent)
        # after a step shortened to hit t1, base the next step on the proposal
        h_used = t_next - t0
        h_new = jnp.where(accept & (t_next >= t1), c["h"], h_used * factor)
        y_new = jnp.where(accept[:, None], y1, c["y"])
        t_new = jnp.where(accept, t_next, t0)
        state_new = jax.tree_util.tree_map(
            lambda a, b: jnp.where(accept.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
            state1,
            c["solver_state"],
        )
        steps = c["steps"] + active.astype(jnp.int32)
        rejected = c["rejected"] + (active & ~accept).astype(jnp.int32)

        # steady-state tracking at accepted steps
        rate = jax.vmap(
            lambda cc, t, y: jnp.max(jnp.abs(field_of(cc)(t, y, None)), initial=0.0)
        )(c["c"], t_new, y_new)
        is_steady = rate <= steady_tol
        t_steady = jnp.where(
            accept,
            jnp.where(
                is_steady,
                jnp.where(jnp.isinf(c["t_steady"]), t_new, c["t_steady"]),
                jnp.inf,
            ),
            c["t_steady"],
        )

        # save grid points in (t0, t_new] by dense interpolation
        grid = c["grid"]
        save_k = c["save_k"]
        if n_times:
            k_end = jnp.searchsorted(save_ts, t_new, side="right").astype(jnp.int32)
            k_end = jnp.where(accept, k_end, save_k)

            def save_cond(sc):
                return jnp.any(sc[1] < k_end)

            def save_body(sc):
                g, k = sc
                pending = (k < k_end) & active
                tk = save_ts[jnp.clip(k, 0, n_times - 1)]

                def interp(t0_, t1_, d, tq):
                    return solver.interpolation_cls(t0=t0_, t1=t1_, **d).evaluate(tq)

                yk = jax.vmap(interp)(t0, t_next, dense, tk)
                # grid points at t=0 (before any step) take the initial state
                yk = jnp.where((tk <= 0.0)[:, None], c["y"], yk)
                vals = jax.vmap(outputs_of)(c["c"], tk, yk)
                row = jnp.where(pending, c["sample"], n)
                g = g.at[row, jnp.clip(k, 0, n_times - 1)].set(vals, mode="drop")
                return g, k + pending.astype(jnp.int32)

            grid, save_k = jax.lax.while_loop(save_cond, save_body, (grid, save_k))

        # which lanes are finished?
        reached = t_new >= t1
        out_of_steps = steps >= max_steps
        broken = active & (
            (~finite & (h_used * 0.2 < 1e-14 * jnp.maximum(1.0, t0)))
            | ~jnp.all(jnp.isfinite(c["y"]), axis=1)
        )
        done_steady = accept & is_steady & stop_when_steady
        finished = active & (reached | out_of_steps | broken | done_steady)
        status = jnp.where(reached | done_steady, 0, jnp.where(broken, 2, 1)).astype(
            jnp.int32
        )
        nonfinite_state = ~jnp.all(jnp.isfinite(y_new), axis=1)
        status = jnp.where(nonfinite_state, 2, status)
        ok = status == 0
        row = jnp.where(finished, c["sample"], n)
        outs = jax.vmap(outputs_of)(c["c"], t_new, y_new)
        outs = jnp.where(ok[:, None], outs, jnp.nan)
        out_final = c["out_final"].at[row].set(outs, mode="drop")
        y_final = c["y_final"]
        if keep_states:
            y_true = jax.vmap(lambda cc, t, y: state_at(field_of(cc), t, y))(
                c["c"], t_new, y_new
            )
            y_final = y_final.at[row].set(
                jnp.where(ok[:, None], y_true, jnp.nan), mode="drop"
            )
        if n_times:
            # after an early stop the remaining grid holds the final (steady) outputs;
            # after a failure, NaN
            # (one row at a time, only for the few lanes that need it)
            fill = jnp.where(ok[:, None], outs, jnp.nan)
            kk = jnp.arange(n_times, dtype=jnp.int32)
            need = finished & (save_k < n_times)

            def fill_body(st):
                g, need = st
                lane = jnp.argmax(need)
                srow = c["sample"][lane]
                z = jnp.zeros((), jnp.int32)
                old = jax.lax.dynamic_slice(g, (srow, z, z), (1, n_times, n_out))[0]
                new = jnp.where((kk >= save_k[lane])[:, None], fill[lane][None, :], old)
                g = jax.lax.dynamic_update_slice(g, new[None], (srow, z, z))
                return g, need.at[lane].set(False)

            grid, _ = jax.lax.while_loop(
                lambda st: jnp.any(st[1]), fill_body, (grid, need)
            )
        t_final = c["t_final"].at[row].set(t_new, mode="drop")
        status_g = c["status"].at[row].set(status, mode="drop")
        steady_g = c["steady_final"].at[row].set(ok & is_steady, mode="drop")
        t_steady_g = (
            c["t_steady_final"]
            .at[row]
            .set(jnp.where(ok, t_steady, jnp.inf), mode="drop")
        )
        steps_g = c["steps_final"].at[row].set(steps - rejected, mode="drop")
        rejected_g = c["rejected_final"].at[row].set(rejected, mode="drop")

        # refill finished lanes from the queue
        rank = jnp.cumsum(finished.astype(jnp.int32)) - 1
        new_idx = (c["next_sample"] + rank).astype(jnp.int32)
        load = finished & (new_idx < n)
        next_sample = c["next_sample"] + jnp.sum(finished, dtype=jnp.int32)
        sample = jnp.where(finished, jnp.where(load, new_idx, -1), c["sample"])
        y_load, h_load, st_load, c_load = fresh(new_idx, load)

        def sel(a, b):
            return jnp.where(load.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

        return dict(
            c=sel(c_load, c["c"]),
            next_sample=next_sample,
            sample=sample.astype(jnp.int32),
            t=jnp.where(load, 0.0, t_new),
            h=jnp.where(load, h_load, h_new),
            y=sel(y_load, y_new),
            solver_state=jax.tree_util.tree_map(sel, st_load, state_new),
            jump=load,
            steps=jnp.where(load, 0, steps),
            rejected=jnp.where(load, 0, rejected),
            t_steady=jnp.where(load, jnp.inf, t_steady),
            save_k=jnp.where(load, 0, save_k),
            out_final=out_final,
            y_final=y_final,
            grid=grid,
            t_final=t_final,
            status=status_g,
            steady_final=steady_g,
            t_steady_final=t_steady_g,
            steps_final=steps_g,
            rejected_final=rejected_g,
        )

    def cond(c):
        return jnp.any(c["sample"] >= 0)

    c = jax.lax.while_loop(cond, body, carry)
    return EngineResult(
        y_final=c["y_final"] if keep_states else None,
        outputs_final=c["out_final"],
        outputs=c["grid"] if n_times else None,
        t_final=c["t_final"],
        status=c["status"],
        steady=c["steady_final"],
        t_steady=c["t_steady_final"],
        num_steps=c["steps_final"],
        num_rejected=c["rejected_final"],
    )
