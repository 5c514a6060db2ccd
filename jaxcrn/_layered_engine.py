"""The species-major batch engine: layered networks, whole batches as `(rows, lanes)`.

The generic engine (`_engine.py`) steps any diffrax solver, one sample per lane under
`jax.vmap`. For layered networks (every CRN compiled from a neural network) this
engine keeps the state of all lanes as one species-major array (`_batched.py`) and
runs its own two methods on it, written for that layout:

- `"tsit5"`: Tsitouras' explicit 5(4) pair (FSAL, 4th-order dense output), with
  Hairer's stiffness detection (`h * |lambda| > 3.25` on 15 accepted steps in a
  row, from `|k7 - k6| / |y1 - y6|`). A lane found stiff stops with status
  `STIFF`, and `simulate_batch` re-runs that sample with Rodas5P.
- `"rodas5p"`: the same Rodas5P as `jaxcrn.Rodas5P`, its 8 linear solves per step
  done by block forward substitution on the batch.

Every lane has its own time, step size, step-size controller and step counts (an
integral controller as diffrax's `PIDController` with its defaults); a lane that
finishes (t1, steady state with `stop_when_steady`, out of steps, NaN, stiff) writes
its results and takes the next sample of the queue. The input wavefront is solved
exactly and is not part of the state (`BatchedKinetics(forced=True)`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from diffrax._solver.tsit5 import _tsit5_tableau
from jaxtyping import Array, Float

from ._batched import BatchedKinetics, batched_kinetics
from ._engine import EngineResult, hairer_initial_step, step_factor
from ._solver import _A_FULL, _B_FULL, _C_FULL, _D, _GAMMA, _H, _STAGE_C, _combine


STIFF = 4  # status of a lane that Tsit5 found stiff (re-run by simulate_batch)
# a stability-limited Tsit5 step counts as stiff only while t1 is more than this
# many steps away (a mildly stiff tail costs less than switching methods)
STIFF_STEPS = 500

_TS_A = [np.asarray(a, np.float64) for a in _tsit5_tableau.a_lower]
_TS_E = np.asarray(_tsit5_tableau.b_error, np.float64)
_TS_C = np.concatenate([[0.0], np.asarray(_tsit5_tableau.c, np.float64)])


# Tsit5's dense-output weights b_i(theta) = scale * prod (theta - root) * theta^2...
# (as diffrax's `_Tsit5Interpolation`)
_TS_DENSE = (
    (
        -1.0530884977290216,
        (1.3299890189751412,),
        (-1.4364028541716351, 0.7139816917074209),
    ),
    (0.1017, (), (-2.1966568338249754, 1.2949852507374631)),
    (2.490627285651252793, (), (-2.38535645472061657, 1.57803468208092486)),
    (-16.54810288924490272, (1.21712927295533244, 0.61620406037800089), None),
    (47.37952196281928122, (1.203071208372362603, 0.658047292653547382), None),
    (-34.87065786149660974, (1.2, 0.666666666666666667), None),
    (2.5, (1.0, 0.6), None),
)


def _tsit5_weights(t):
    """Tsit5's dense-output weights b_i(t), i = 1..7, for step fractions `t`."""
    out = []
    for i, (scale, roots, quad) in enumerate(_TS_DENSE):
        w = scale * (t if i == 0 else t * t)
        for r in roots:
            w = w * (t - r)
        if quad is not None:
            w = w * (t * t + quad[0] * t + quad[1])
        out.append(w)
    return out


class _Field(eqx.Module):
    """The batched vector field: kinetics, internal rates, exact input forcing."""

    kin: BatchedKinetics
    kr: Array
    decay: Array  # common decay rate of the input wavefront (forced)

    def __call__(self, t, y, c):
        forcing = None
        if self.kin.forced:
            forcing = c * jnp.exp(-self.decay * t)[None, :]
        return self.kin.rhs(y, self.kr, forcing)

    def dfdt(self, t, c):
        if not self.kin.forced:
            return None
        d = -self.decay * c * jnp.exp(-self.decay * t)[None, :]
        k = self.kin
        return jnp.pad(d, ((k.force_lo, k.n_state - k.force_hi), (0, 0)))


def _tsit5_step(field, t, h, y, c, f0):
    """One Tsit5 step for every lane (`h`: per-lane step). Returns the solution,
    the error estimate, the 7 stage derivatives (k7 = f(t + h, y1): FSAL) and the
    stage value of k6 (for the stiffness estimate)."""
    hb = h[None, :]
    ks = [f0]
    us = []
    for i, a in enumerate(_TS_A):
        u = y + hb * _combine(a, ks)
        us.append(u)
        ks.append(field(t + float(_TS_C[i + 1]) * h, u, c))
    y1 = us[-1]  # a[5] == b_sol: the last stage is the solution (FSAL)
    err = hb * _combine(_TS_E, ks)
    return y1, err, ks, us[-2]


def _rodas_step(field, t, h, y, c, f0):
    """One Rodas5P step for every lane; the 8 linear solves by block forward
    substitution (`BatchedKinetics.solve`)."""
    dt = y.dtype
    hb = h[None, :]
    lam = 1.0 / (_GAMMA * hb)
    factors = field.kin.factor(y, field.kr, lam)
    dT = field.dfdt(t, c)
    ks = []
    for i in range(8):
        if i == 0:
            rhs = f0
        else:
            u = y + _combine(_A_FULL[i], ks)
            rhs = (
                field(t + float(_STAGE_C[i]) * h, u, c) + _combine(_C_FULL[i], ks) / hb
            )
        if dT is not None and _D[i] != 0.0:
            rhs = rhs + (float(_D[i]) * hb) * dT
        ks.append(field.kin.solve(factors, rhs.astype(dt)))
    y1 = y + _combine(_B_FULL, ks)
    return y1, ks[7], ks, None


@eqx.filter_jit
def _prepare(kin, kr, decay, y0s, cs, t1, rtol, atol):
    """Per sample: the initial step (Hairer's heuristic), f(0, y0), and whether the
    initial state is finite. Compiled apart from the loop (smaller programs, shared
    by both methods)."""
    field = _Field(kin, kr.astype(y0s.dtype), decay.astype(y0s.dtype))
    h, f0 = hairer_initial_step(
        lambda t, y: field(t, y, cs), y0s, t1, 5, rtol, atol, axis=0
    )
    return h, f0, ~jnp.all(jnp.isfinite(y0s), axis=0)


@eqx.filter_jit
def _finalize(kin, kr, decay, cs, y_fin, t_fin, status, t_steady, steady_tol):
    """Steadiness of every final state (one vectorised right-hand side)."""
    field = _Field(kin, kr.astype(y_fin.dtype), decay.astype(y_fin.dtype))
    ok = status == 0
    rate = jnp.max(jnp.abs(field(t_fin, y_fin, cs)), axis=0, initial=0.0)
    steady = ok & (rate <= steady_tol)
    t_steady = jnp.where(
        steady, jnp.where(jnp.isinf(t_steady), t_fin, t_steady), jnp.inf
    )
    return steady, t_steady


def integrate_layered(
    kin: BatchedKinetics,
    kr: Float[Array, " reactions"],
    decay: Float[Array, ""],
    y0s: Float[Array, "state batch"],
    cs: Float[Array, "forcing batch"],
    t1: Float[Array, ""],
    save_ts: Float[Array, " times"] | None,
    out_pos: Array,
    out_neg: Array,
    *,
    method: str,
    rtol: float | Array,
    atol: float | Array,
    max_steps: int | Array,
    lanes: int,
    steady_tol: float | Array,
    stop_when_steady: bool,
    detect_stiff: bool,
) -> EngineResult:
    """Integrate every column of `y0s` (state rows, samples) from 0 to `t1`.

    `cs` holds each sample's input forcing (rows `kin.force_lo:kin.force_hi`);
    `out_pos`/`out_neg` are the state rows of the output rails (`out_neg` -1: none).
    Final states are returned as state rows (no input wavefront). Pass the
    tolerances and `max_steps` as arrays to compile once for all values.
    """
    h_all, f_all, bad0 = _prepare(kin, kr, decay, y0s, cs, t1, rtol, atol)
    res = _integrate(
        kin,
        kr,
        decay,
        y0s,
        cs,
        h_all,
        f_all,
        bad0,
        t1,
        save_ts,
        out_pos,
        out_neg,
        rtol,
        atol,
        max_steps,
        steady_tol,
        method=method,
        lanes=lanes,
        stop_when_steady=stop_when_steady,
        detect_stiff=detect_stiff,
    )
    steady, t_steady = _finalize(
        kin,
        kr,
        decay,
        cs,
        res.y_final.T,
        res.t_final,
        res.status,
        res.t_steady,
        steady_tol,
    )
    ok = res.status == 0
    return eqx.tree_at(
        lambda r: (r.steady, r.t_steady, r.y_final),
        res,
        (steady, t_steady, jnp.where(ok[:, None], res.y_final, jnp.nan)),
    )


@eqx.filter_jit
def _integrate(
    kin: BatchedKinetics,
    kr: Float[Array, " reactions"],
    decay: Float[Array, ""],
    y0s: Float[Array, "state batch"],
    cs: Float[Array, "forcing batch"],
    h_all: Float[Array, " batch"],
    f_all: Float[Array, "state batch"],
    bad0: Array,
    t1: Float[Array, ""],
    save_ts: Float[Array, " times"] | None,
    out_pos: Array,
    out_neg: Array,
    rtol,
    atol,
    max_steps,
    steady_tol,
    *,
    method: str,
    lanes: int,
    stop_when_steady: bool,
    detect_stiff: bool,
) -> EngineResult:
    """The loop of `integrate_layered`; `steady` and `t_steady` of its result are
    finished by `_finalize`."""
    s, n = y0s.shape
    dtype = y0s.dtype
    lanes = max(1, min(lanes, n))
    n_out = out_pos.shape[0]
    n_times = 0 if save_ts is None else save_ts.shape[0]
    field = _Field(kin, kr.astype(dtype), decay.astype(dtype))
    step_fn = _tsit5_step if method == "tsit5" else _rodas_step
    exponent = 1.0 / 5.0
    has_neg = out_neg >= 0
    neg_rows = jnp.where(has_neg, out_neg, 0)

    def outputs_of(y):  # (rows, L) -> (L, outputs)
        return (y[out_pos] - jnp.where(has_neg[:, None], y[neg_rows], 0.0)).T

    tsit5 = method == "tsit5"

    # -- initial lanes ----------------------------------------------------------
    idx0 = jnp.arange(lanes)
    sample0 = jnp.where(idx0 < n, idx0, -1).astype(jnp.int32)
    safe0 = jnp.clip(idx0, 0, n - 1)
    y_l = y0s[:, safe0]
    c_l = cs[:, safe0]
    t_l = jnp.zeros(lanes, dtype)
    carry = dict(
        y=y_l,
        c=c_l,
        f=f_all[:, safe0] if tsit5 else jnp.zeros((0, lanes), dtype),
        t=t_l,
        h=h_all[safe0],
        sample=sample0,
        next_sample=jnp.asarray(lanes, jnp.int32),
        steps=jnp.zeros(lanes, jnp.int32),
        rejected=jnp.zeros(lanes, jnp.int32),
        t_steady=jnp.full(lanes, jnp.inf, dtype),
        save_k=jnp.zeros(lanes, jnp.int32),
        n_stiff=jnp.zeros(lanes, jnp.int32),
        n_nonstiff=jnp.zeros(lanes, jnp.int32),
        # per sample
        y_fin=jnp.zeros((s, n), dtype),
        grid=jnp.full((n, n_times, n_out), jnp.nan, dtype),
        t_fin=jnp.full(n, jnp.nan, dtype),
        status=jnp.full(n, 3, jnp.int32),
        t_steady_fin=jnp.full(n, jnp.inf, dtype),
        steps_fin=jnp.zeros(n, jnp.int32),
        rejected_fin=jnp.zeros(n, jnp.int32),
    )

    def first_steady(t_steady, t_state, steady, valid):
        """Update "steady since": the first time of the current steady stretch."""
        since = jnp.where(
            steady, jnp.where(jnp.isinf(t_steady), t_state, t_steady), jnp.inf
        )
        return jnp.where(valid, since, t_steady)

    def body(cr):
        active = cr["sample"] >= 0
        t0, h0, y, c = cr["t"], cr["h"], cr["y"], cr["c"]
        t_steady = cr["t_steady"]
        if tsit5:
            f0 = cr["f"]
            stop_steady = jnp.zeros(lanes, bool)
        else:
            # steadiness of the current state, from the first stage's f(t0, y)
            f0 = field(t0, y, c)
            steady0 = jnp.max(jnp.abs(f0), axis=0, initial=0.0) <= steady_tol
            t_steady = first_steady(t_steady, t0, steady0, active)
            stop_steady = active & steady0 & stop_when_steady

        t_next = jnp.minimum(t0 + h0, t1)
        h = t_next - t0
        y1, err, ks, u6 = step_fn(field, t0, h, y, c, f0)
        scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1))
        # 0 * y1 makes the norm NaN when y1 is not finite (one pass for both)
        e2 = jnp.mean(jnp.square(err / scale) + 0.0 * y1, axis=0)
        finite = jnp.isfinite(e2)
        enorm = jnp.where(finite, jnp.sqrt(e2), jnp.inf)
        accept = active & ~stop_steady & (enorm <= 1.0)
        factor = step_factor(enorm, accept, finite, exponent)
        # after a step shortened to hit t1, keep the proposal
        h_new = jnp.where(accept & (t_next >= t1), h0, h * factor)
        y_new = jnp.where(accept[None, :], y1, y)
        t_new = jnp.where(accept, t_next, t0)
        took = active & ~stop_steady
        steps = cr["steps"] + took.astype(jnp.int32)
        rejected = cr["rejected"] + (took & ~accept).astype(jnp.int32)
        f_new = cr["f"]
        if tsit5:
            f1 = ks[6]  # f(t_next, y1): FSAL
            f_new = jnp.where(accept[None, :], f1, f0)
            steady1 = jnp.max(jnp.abs(f1), axis=0, initial=0.0) <= steady_tol
            t_steady = first_steady(t_steady, t_next, steady1, accept)
            stop_steady = accept & steady1 & stop_when_steady

        n_stiff, n_nonstiff = cr["n_stiff"], cr["n_nonstiff"]
        stiff = jnp.zeros(lanes, bool)
        if tsit5 and detect_stiff:
            num = jnp.sum(jnp.square(ks[6] - ks[5]), axis=0)
            den = jnp.sum(jnp.square(y1 - u6), axis=0)
            hl = h * jnp.sqrt(num / jnp.where(den > 0, den, 1.0))
            # stability-limited (h |lambda| at the boundary) and far from t1
            stiff_step = (den > 0) & (hl > 3.25) & ((t1 - t_next) > STIFF_STEPS * h)
            n_stiff = jnp.where(accept & stiff_step, n_stiff + 1, n_stiff)
            n_nonstiff = jnp.where(
                accept, jnp.where(stiff_step, 0, n_nonstiff + 1), n_nonstiff
            )
            n_stiff = jnp.where(n_nonstiff >= 6, 0, n_stiff)
            stiff = active & (n_stiff >= 15)

        # -- save grid points in (t0, t_new] by dense interpolation (outputs only)
        grid, save_k = cr["grid"], cr["save_k"]
        if n_times:
            k_end = jnp.searchsorted(save_ts, t_new, side="right").astype(jnp.int32)
            k_end = jnp.where(accept, k_end, save_k)

            def save_all(gk):
                y0_out = outputs_of(y)  # (L, out)
                if tsit5:
                    k_out = [outputs_of(k) for k in ks[:7]]
                else:
                    y1_out = outputs_of(y1)
                    ks_out = [outputs_of(k) for k in ks]
                    kk_out = [_combine(row, ks_out) for row in _H]

                def interp(tk):
                    theta = jnp.where(h > 0, (tk - t0) / jnp.where(h > 0, h, 1.0), 0.0)
                    th = theta[:, None]
                    if tsit5:
                        val = y0_out + h[:, None] * _lincomb_dyn(
                            _tsit5_weights(th), k_out
                        )
                    else:
                        om = 1 - th
                        poly = kk_out[0] + th * (kk_out[1] + th * kk_out[2])
                        val = om * y0_out + th * (y1_out + om * poly)
                    return jnp.where((tk <= 0.0)[:, None], y0_out, val)

                def save_body(sc):
                    g, k = sc
                    pending = (k < k_end) & active
                    kc = jnp.clip(k, 0, n_times - 1)
                    row = jnp.where(pending, cr["sample"], n)
                    g = g.at[row, kc].set(interp(save_ts[kc]), mode="drop")
                    return g, k + pending.astype(jnp.int32)

                return jax.lax.while_loop(
                    lambda sc: jnp.any(sc[1] < k_end), save_body, gk
                )

            grid, save_k = jax.lax.cond(
                jnp.any(save_k < k_end), save_all, lambda gk: gk, (grid, save_k)
            )

        # -- finished lanes -----------------------------------------------------
        reached = accept & (t_new >= t1)
        out_of_steps = steps >= max_steps
        bad = bad0[jnp.clip(cr["sample"], 0, n - 1)]
        broken = active & (bad | (~finite & (h * 0.2 < 1e-14 * jnp.maximum(1.0, t0))))
        finished = active & (reached | out_of_steps | broken | stop_steady | stiff)
        status = jnp.where(
            broken,
            2,
            jnp.where(reached | stop_steady, 0, jnp.where(stiff, STIFF, 1)),
        ).astype(jnp.int32)

        def finish(g):
            y_fin, grid, t_fin, status_g, t_steady_g, steps_g, rejected_g = g
            row = jnp.where(finished, cr["sample"], n)
            y_fin = y_fin.at[:, row].set(y_new, mode="drop")
            if n_times:
                # after an early stop the rest of the grid holds the final outputs;
                # after a failure, NaN
                outs = jnp.where((status == 0)[:, None], outputs_of(y_new), jnp.nan)
                kk = jnp.arange(n_times, dtype=jnp.int32)
                fill = (kk[None, :] >= save_k[:, None])[:, :, None]
                old = grid[jnp.clip(cr["sample"], 0, n - 1)]
                grid = grid.at[row].set(
                    jnp.where(fill, outs[:, None, :], old), mode="drop"
                )
            t_fin = t_fin.at[row].set(t_new, mode="drop")
            status_g = status_g.at[row].set(status, mode="drop")
            t_steady_g = t_steady_g.at[row].set(t_steady, mode="drop")
            steps_g = steps_g.at[row].set(steps - rejected, mode="drop")
            rejected_g = rejected_g.at[row].set(rejected, mode="drop")
            return y_fin, grid, t_fin, status_g, t_steady_g, steps_g, rejected_g

        glob = (
            cr["y_fin"],
            grid,
            cr["t_fin"],
            cr["status"],
            cr["t_steady_fin"],
            cr["steps_fin"],
            cr["rejected_fin"],
        )
        glob = jax.lax.cond(jnp.any(finished), finish, lambda g: g, glob)
        y_fin, grid, t_fin, status_g, t_steady_g, steps_g, rejected_g = glob

        # -- refill finished lanes from the queue -------------------------------
        rank = jnp.cumsum(finished.astype(jnp.int32)) - 1
        new_idx = (cr["next_sample"] + rank).astype(jnp.int32)
        load = finished & (new_idx < n)
        next_sample = cr["next_sample"] + jnp.sum(finished, dtype=jnp.int32)
        sample = jnp.where(finished, jnp.where(load, new_idx, -1), cr["sample"])

        def refill(st):
            y_, c_, f_, t_, h_ = st
            safe = jnp.where(load, new_idx, 0)
            y_ = jnp.where(load[None, :], y0s[:, safe], y_)
            c_ = jnp.where(load[None, :], cs[:, safe], c_)
            t_ = jnp.where(load, 0.0, t_)
            h_ = jnp.where(load, h_all[safe], h_)
            if tsit5:
                f_ = jnp.where(load[None, :], f_all[:, safe], f_)
            return y_, c_, f_, t_, h_

        y_n, c_n, f_n, t_n, h_n = jax.lax.cond(
            jnp.any(load), refill, lambda st: st, (y_new, c, f_new, t_new, h_new)
        )
        return dict(
            y=y_n,
            c=c_n,
            f=f_n,
            t=t_n,
            h=h_n,
            sample=sample.astype(jnp.int32),
            next_sample=next_sample,
            steps=jnp.where(finished, 0, steps),
            rejected=jnp.where(finished, 0, rejected),
            t_steady=jnp.where(finished, jnp.inf, t_steady),
            save_k=jnp.where(finished, 0, save_k),
            n_stiff=jnp.where(finished, 0, n_stiff),
            n_nonstiff=jnp.where(finished, 0, n_nonstiff),
            y_fin=y_fin,
            grid=grid,
            t_fin=t_fin,
            status=status_g,
            t_steady_fin=t_steady_g,
            steps_fin=steps_g,
            rejected_fin=rejected_g,
        )

    cr = jax.lax.while_loop(lambda cr: jnp.any(cr["sample"] >= 0), body, carry)
    y_fin, status = cr["y_fin"], cr["status"]
    ok = status == 0
    return EngineResult(
        y_final=y_fin.T,
        outputs_final=jnp.where(ok[:, None], outputs_of(y_fin), jnp.nan),
        outputs=cr["grid"] if n_times else None,
        t_final=cr["t_fin"],
        status=status,
        steady=jnp.zeros(n, bool),
        t_steady=cr["t_steady_fin"],
        num_steps=cr["steps_fin"],
        num_rejected=cr["rejected_fin"],
    )


def _lincomb_dyn(weights, ks):
    out = weights[0] * ks[0]
    for w, k in zip(weights[1:], ks[1:], strict=True):
        out = out + w * k
    return out


# ---------------------------------------------------------------------------------
# Host side: build the batched kinetics once per network, split chunks over threads.

_CACHE: dict[int, tuple] = {}


def layered_kinetics_for(network, forced: bool) -> BatchedKinetics | None:
    """The species-major kinetics of `network` (cached), or None when the network
    is not in the aligned layered layout."""
    from ._aligned import AlignedLayeredKinetics

    kin = network.kinetics
    if not isinstance(kin, AlignedLayeredKinetics):
        return None
    key = (id(kin), forced, jnp.dtype(network.y_init.dtype).name)
    hit = _CACHE.get(key)  # pyright: ignore
    if hit is not None and hit[0] is kin:
        return hit[1]
    bk = batched_kinetics(kin, forced=forced, dtype=network.y_init.dtype)
    if len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (kin, bk)  # pyright: ignore
    return bk


def can_force(network) -> bool:
    """Whether the input wavefront can be left out of the state: it decays at one
    common rate (`supports_forcing`) and no output reads it."""
    from ._aligned import AlignedLayeredKinetics

    if not isinstance(network.kinetics, AlignedLayeredKinetics):
        return False
    if not network.supports_forcing():
        return False
    first = network.kinetics.waves[0].size
    outs = [i for i in network.output_pos + network.output_neg if i >= 0]
    return all(i >= first for i in outs)


@eqx.filter_jit
def _share_inputs(network, bk: BatchedKinetics, xs, offset):
    """Initial state rows `(state, m)`, input forcing `(forcing rows, m)` and the
    initial input wavefront `(m, first rows)` of the input rows `xs`."""
    y0 = jax.vmap(lambda x: network.initial_state(x, offset=offset))(xs)
    fr = bk.first_rows
    if bk.forced:
        kin = network.kinetics
        rates = network.rates.astype(y0.dtype)
        c = jax.vmap(lambda y: kin.forcing(y, rates))(y0)
        c = c[:, fr + bk.force_lo : fr + bk.force_hi]
    else:
        c = jnp.zeros((xs.shape[0], 0), y0.dtype)
    return y0[:, fr:].T, c.T, y0[:, :fr]


@eqx.filter_jit
def _constants(network, bk: BatchedKinetics):
    """Rate constants in the engine's order and the input decay rate."""
    rates = network.rates.astype(network.y_init.dtype)
    kr = bk.internal_rates(rates)
    if bk.forced:
        decay = jnp.max(network.kinetics.decay_rates(rates))
    else:
        decay = jnp.zeros((), rates.dtype)
    return kr, decay


def share_size(m: int, workers: int) -> int:
    """Samples per worker for a chunk of `m`: equal shares, from 8 on rounded up to
    a multiple of 8 (at most 7 padded samples per worker), so that one compiled
    program serves every worker and batches of similar sizes."""
    share = -(-m // workers)
    return share if share < 8 else -(-share // 8) * 8


def default_lanes_for(n_state: int) -> int:
    """Lanes per worker on a CPU: about 4,096 state values per lane array (a few
    dozen KB, cache-resident), between 32 and 128 lanes. Tiny networks get more
    lanes, so XLA's per-operation overhead is spread over more samples."""
    return int(
        min(128, max(32, 1 << (max(1, 4096 // max(n_state, 1))).bit_length() - 1))
    )


def run_layered(
    network,
    xs,
    offset,
    t1,
    save_ts,
    *,
    method: str,
    forced: bool,
    rtol: float,
    atol: float,
    max_steps: int,
    lanes: int | None,
    steady_tol: float,
    stop_when_steady: bool,
    keep_states: bool,
    detect_stiff: bool,
    workers: int,
) -> dict:
    """Simulate the input rows `xs` (one chunk, NumPy) with the layered engine,
    split over `workers` threads: each builds, integrates and finishes an equal
    share with the same compiled programs (XLA's CPU kernels for arrays of this
    size use one core each). Returns NumPy arrays; `y_final` (with `keep_states`)
    in the network's species order."""
    import threading

    import numpy as np

    bk = layered_kinetics_for(network, forced)
    assert bk is not None
    dtype = network.y_init.dtype
    kr, decay = _constants(network, bk)
    fr = bk.first_rows
    out_pos = jnp.asarray(np.asarray(network.output_pos) - fr, jnp.int32)
    neg = np.asarray(network.output_neg)
    out_neg = jnp.asarray(np.where(neg >= 0, neg - fr, -1), jnp.int32)
    m = xs.shape[0]
    workers = max(1, min(workers, m))
    per = share_size(m, workers)
    if lanes is None:
        lanes = default_lanes_for(bk.n_state)
    if per * workers != m:
        xs = np.concatenate([xs, np.repeat(xs[-1:], per * workers - m, axis=0)])
    kw = dict(
        method=method,
        rtol=jnp.asarray(rtol, dtype),
        atol=jnp.asarray(atol, dtype),
        max_steps=jnp.asarray(max_steps, jnp.int32),
        lanes=min(lanes, per),
        steady_tol=jnp.asarray(steady_tol, dtype),
        stop_when_steady=stop_when_steady,
        detect_stiff=detect_stiff,
    )

    def call(i):
        share = jnp.asarray(xs[i * per : (i + 1) * per], dtype)
        y0s, cs, first0 = _share_inputs(network, bk, share, offset)
        res = integrate_layered(
            bk, kr, decay, y0s, cs, t1, save_ts, out_pos, out_neg, **kw
        )
        return res, first0

    if workers == 1:
        parts = [jax.block_until_ready(call(0))]
    else:
        parts = [None] * workers
        errors: list[BaseException] = []

        def go(i):
            try:
                parts[i] = jax.block_until_ready(call(i))
            except BaseException as e:  # re-raised below, in the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]
    res, first0 = jax.tree_util.tree_map(
        lambda *a: (
            np.concatenate([np.asarray(v) for v in a])[:m]
            if np.ndim(a[0])
            else np.asarray(a[0])
        ),
        *parts,
    )
    out = dict(
        outputs_final=res.outputs_final,
        outputs=res.outputs,
        t_final=res.t_final,
        status=res.status,
        steady=res.steady,
        t_steady=res.t_steady,
        num_steps=res.num_steps,
        num_rejected=res.num_rejected,
        y_final=None,
    )
    if keep_states:
        y_state = np.asarray(res.y_final)
        if fr:
            x0 = first0
            k = float(decay)
            xt = x0 * np.exp(-k * np.asarray(res.t_final))[:, None]
            xt = np.where(np.isfinite(y_state[:, :1]), xt, np.nan)
            y_state = np.concatenate([xt, y_state], axis=1)
        out["y_final"] = y_state
    return out
