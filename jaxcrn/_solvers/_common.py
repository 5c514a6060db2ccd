"""What the methods share: linear combinations of stages with static coefficients,
the stage loop of Rosenbrock(-W) methods in transformed form, and the initial step
size."""

import jax.numpy as jnp


# a step of size h follows a mode growing like exp(g t) only while g h is small:
# an L-stable implicit step damps it (R(z) -> 0), an explicit one undershoots it
# (a polynomial), and below the absolute tolerance the error estimate cannot tell.
# A seed of an autocatalytic species then never grows (A + B -> 2 B from B =
# 1e-12 stayed at 4e-11 for 100 time units, exit 0). While a species that can grow
# by catalysis is below atol / rtol, steps keep g h <= GROWTH_LIMIT (g from
# `AbstractKinetics.growth_rate`): a 5th-order step's relative error in exp(g h)
# is then about (g h)^6 / 720 ~ 1e-7.
GROWTH_LIMIT = 0.2


def growth_step_limit(g):
    """The longest step, `GROWTH_LIMIT / g`, for a growth-rate bound `g` (inf where
    nothing grows, `g <= 0`)."""
    grows = g > 0
    return jnp.where(grows, GROWTH_LIMIT / jnp.where(grows, g, 1), jnp.inf)


def combine(coeffs, ks):
    """`sum_j coeffs[j] * ks[j]` with static coefficients (zeros skipped, ones not
    multiplied), so that a tableau becomes the few operations it needs."""
    out = None
    for c, k in zip(coeffs, ks, strict=False):
        c = float(c)
        if c == 0.0:
            continue
        term = k if c == 1.0 else c * k
        out = term if out is None else out + term
    return 0.0 if out is None else out


def rosenbrock_stages(a, c, stage_c, d, f, solve, t0, h, y0, f0, dT=None):
    """The stage vectors `u_i` of a Rosenbrock(-W) method in the transformed form of
    Hairer & Wanner, `(lam I - A) u_i = f(t0 + stage_c_i h, y0 + sum_j a_ij u_j) +
    sum_j c_ij u_j / h + d_i h df/dt`, with `solve(b)` for `(lam I - A) x = b` and
    static coefficient rows `a[i]`, `c[i]` (stage 0 reads `f0 = f(t0, y0)`)."""
    us: list = []
    for i in range(len(stage_c)):
        if i == 0:
            rhs = f0
        else:
            u = y0 + combine(a[i], us)
            rhs = f(t0 + float(stage_c[i]) * h, u) + combine(c[i], us) / h
        if dT is not None and d[i] != 0.0:
            rhs = rhs + (float(d[i]) * h) * dT
        us.append(solve(rhs))
    return us


def hairer_initial_step(f, y0, t0, t1, order, rtol, atol):
    """Hairer's initial step heuristic (as diffrax's), per column of `y0`
    `(state, samples)`; `f(t, y)` evaluates the field at per-column times. Returns
    `(h, f(t0, y0))`."""

    def rms(x):
        return jnp.sqrt(jnp.mean(jnp.square(x), axis=0))

    f0 = f(t0, y0)
    scale = atol + rtol * jnp.abs(y0)
    d0 = rms(y0 / scale)
    d1 = rms(f0 / scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    f1 = f(t0 + h0, y0 + h0[None, :] * f0)
    d2 = rms((f1 - f0) / scale) / h0
    h1 = jnp.where(
        jnp.maximum(d1, d2) <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(d1, d2)) ** (1.0 / (order + 1)),
    )
    # no floor in absolute time: a network whose fastest reaction runs at 1e15 /s
    # needs first steps far below 1e-12 (the floor was 1e-12, and such networks
    # failed where diffrax, which has none, solved them)
    lo = 1e3 * jnp.finfo(y0.dtype).tiny
    return jnp.clip(jnp.minimum(100 * h0, h1), lo, jnp.maximum(t1 - t0, lo)), f0
