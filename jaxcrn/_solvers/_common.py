"""What the methods share: linear combinations of stages with static coefficients."""


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
