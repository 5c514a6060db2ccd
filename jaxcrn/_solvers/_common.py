"""What the methods share: linear combinations of stages with static coefficients,
and the stage loop of Rosenbrock(-W) methods in transformed form."""


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
