"""Variable-order BDF (the NDF variant, orders 1-5) in the quasi-constant step-size
form: the arithmetic of a step on arrays with one sample per lane, for the batch
engine's `BDFStepper`.

A lane's history is its backward-difference array `D` `(MAX_ORDER + 3, state,
lanes)`: row 0 the current state, row j the j-th backward difference scaled for
the lane's step size. Per-lane orders are handled by masks, so every lane runs the
same operations whatever its order.

Reference: L. F. Shampine, M. W. Reichelt, "The MATLAB ODE Suite", SIAM J. Sci.
Comput. 18, 1-22 (1997) (NDFs, their error constants and the change of step size
by the matrices R and U), as implemented in scipy's `solve_ivp(method="BDF")`,
whose constants these are.
"""

import jax.numpy as jnp
import numpy as np


__all__ = [
    "ALPHA",
    "ERROR_CONST",
    "GAMMA",
    "MAX_ORDER",
    "NEWTON_MAXITER",
    "ROWS",
    "change_d",
    "dense_eval",
    "newton_tol",
    "predict",
    "row_at",
    "table",
    "update_d",
]

MAX_ORDER = 5
NEWTON_MAXITER = 4
ROWS = MAX_ORDER + 3  # rows of D: orders 0..5 and two more for the order change
_KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
GAMMA = np.hstack((0.0, np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))))
ALPHA = (1.0 - _KAPPA) * GAMMA
ERROR_CONST = _KAPPA * GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)


def newton_tol(rtol, eps):
    """The Newton iteration's tolerance on the scaled update (scipy's rule)."""
    return jnp.maximum(10.0 * eps / rtol, jnp.minimum(0.03, jnp.sqrt(rtol)))


def table(values, order, dtype):
    """`values[order]` per lane, for a static table."""
    return jnp.asarray(values, dtype)[order]


# Every operation on the history is written out row by row (ROWS is 8): each is a
# few elementwise operations over `(state, lanes)` that XLA fuses, where a
# cumulative sum or a batched matrix product over the short row axis would not be.


def predict(d, order):
    """The predicted state `sum_{j <= k} D_j` and `psi = sum_{1 <= j <= k} gamma_j
    D_j / alpha_k` for per-lane orders `k`."""
    dt = d.dtype
    y_pred = d[0]
    psi = None
    for j in range(1, MAX_ORDER + 1):
        on = (j <= order).astype(dt)[None, :]
        y_pred = y_pred + on * d[j]
        term = (float(GAMMA[j]) * on) * d[j]
        psi = term if psi is None else psi + term
    return y_pred, psi / table(ALPHA, order, dt)[None, :]


def update_d(d, corr, order):
    """The history after an accepted step with Newton correction `corr` (scipy:
    `D[k+2] = d - D[k+1]; D[k+1] = d; D[i] += D[i+1]` for i = k..0)."""
    out = [None] * ROWS
    tail = corr  # D_i + ... + D_k + corr, from i = k down
    for i in range(ROWS - 1, -1, -1):
        upto = (i <= order)[None, :]
        tail = jnp.where(upto, tail + d[i], tail)
        row = jnp.where(upto, tail, d[i])
        row = jnp.where((order + 1 == i)[None, :], corr, row)
        if i >= 2:
            row = jnp.where((order + 2 == i)[None, :], corr - d[i - 1], row)
        out[i] = row
    return jnp.stack(out)


def row_at(d, idx):
    """`D[idx]` per lane `(state, lanes)` (`idx` `(lanes,)`, within the rows)."""
    out = d[0]
    for j in range(1, d.shape[0]):
        out = jnp.where((idx == j)[None, :], d[j], out)
    return out


def _r_matrix(order, factor):
    """scipy's `compute_R(order, factor)` per lane, as `[[r_ij (lanes,)]]` for
    `i, j <= MAX_ORDER`, zero outside the lane's `(k + 1) x (k + 1)` block."""
    n = MAX_ORDER + 1
    r = [[jnp.ones_like(factor) for _ in range(n)]]
    for i in range(1, n):
        row = [jnp.zeros_like(factor)]
        for j in range(1, n):
            row.append(r[i - 1][j] * ((i - 1.0 - factor * j) / i))
        r.append(row)
    return [
        [jnp.where((i <= order) & (j <= order), r[i][j], 0.0) for j in range(n)]
        for i in range(n)
    ]


def change_d(d, order, factor):
    """The history rescaled for the step size times `factor` (per lane): rows
    `0..k` become `(R U)^T D`; the rest are kept."""
    n = MAX_ORDER + 1
    r = _r_matrix(order, factor)
    u = _r_matrix(order, jnp.ones_like(factor))
    # (R U)_ji = sum_m R_jm U_mi; row i of the new history is sum_j (R U)_ji D_j
    out = []
    for i in range(n):
        acc = None
        for j in range(n):
            ru = None
            for m_ in range(n):
                term = r[j][m_] * u[m_][i]
                ru = term if ru is None else ru + term
            term = ru[None, :] * d[j]
            acc = term if acc is None else acc + term
        out.append(jnp.where((i <= order)[None, :], acc, d[i]))
    return jnp.concatenate([jnp.stack(out), d[n:]])


def dense_eval(rows, order, theta):
    """The interpolating polynomial of the step just taken at step fraction
    `theta` (per lane), from the rows `0..MAX_ORDER` of the history after the step
    (row 0 its end; any linear map of them), of the step's size and order (scipy's
    `BdfDenseOutput`)."""
    dt = rows[0].dtype
    out = rows[0]
    p = None
    for j in range(MAX_ORDER):
        x = (theta - 1.0 + j) / (1.0 + j)
        p = x if p is None else p * x
        w = jnp.where(j < order, p, 0.0).astype(dt)
        out = out + w[None, :] * rows[j + 1]
    return out
