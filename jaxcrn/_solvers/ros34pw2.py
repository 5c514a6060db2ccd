"""ROS34PW2: a 3rd-order, L-stable, stiffly accurate Rosenbrock-W method (4 stages).

A W-method keeps its order whatever matrix stands in for the Jacobian, so one
factorisation of `lam I - J` can serve several steps, also steps of another size:
with `lam = 1 / (gamma h)` and factors of `lam_f I - J_f`, the step uses the
matrix `A = J_f + (lam - lam_f) I`, which a W-method accepts. The batch engine's
`RosWStepper` uses this to factor only when a lane's Jacobian is old, its step
size has moved far, or a step was rejected.

Reference: J. Rang, L. Angermann, "New Rosenbrock W-methods of order 3 for partial
differential algebraic equations of index 1", BIT Numer. Math. 45, 761-787 (2005).
The coefficients below are the paper's (as PETSc's `TSROSWRA34PW2`), turned into
the transformed formulation of Hairer & Wanner on import.
"""

import numpy as np

from ._common import combine as _combine, rosenbrock_stages


__all__ = ["GAMMA", "ros34pw2_stages"]

GAMMA = 4.3586652150845900e-01
_ALPHA = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],
        [8.7173304301691801e-01, 0.0, 0.0, 0.0],
        [8.4457060015369423e-01, -1.1299064236484185e-01, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ]
)
_GAMMA_MATRIX = np.array(
    [
        [GAMMA, 0.0, 0.0, 0.0],
        [-8.7173304301691801e-01, GAMMA, 0.0, 0.0],
        [-9.0338057013044082e-01, 5.4180672388095326e-02, GAMMA, 0.0],
        [2.4212380706095346e-01, -1.2232505839045147e00, 5.4526025533510214e-01, GAMMA],
    ]
)
_B = np.array(
    [2.4212380706095346e-01, -1.2232505839045147e00, 1.5452602553351020e00, GAMMA]
)
_B_HAT = np.array(
    [
        3.7810903145819369e-01,
        -9.6042292212423178e-02,
        5.0000000000000000e-01,
        2.1793326075422950e-01,
    ]
)

ORDER = 3
ERROR_ORDER = 3  # the controller exponent 1/3: the 2nd-order estimate errs by O(h^3)


def _transformed():
    """`u_i = sum_j Gamma_ij k_j`: `(lam I - A) u_i = f(t0 + c_i h, y0 + sum_j
    a_ij u_j) + sum_j C_ij u_j / h + d_i h df/dt`, `y1 = y0 + sum_j m_j u_j`."""
    inv = np.linalg.inv(_GAMMA_MATRIX)
    a = _ALPHA @ inv
    c = np.diag(np.diag(inv)) - inv
    m = _B @ inv
    e = (_B - _B_HAT) @ inv
    return a, c, m, e, _ALPHA.sum(axis=1), _GAMMA_MATRIX.sum(axis=1)


_A_T, _C_T, _M_T, _E_T, _STAGE_C, _D = _transformed()


def ros34pw2_stages(f, solve, t0, h, y0, f0, dT=None):
    """One ROS34PW2 step from `(t0, y0)` with step `h`.

    Arguments:
        f: `f(t, y) -> dy/dt`.
        solve: `solve(b)` for `(lam I - A) x = b`, where `lam = 1/(GAMMA h)` and
            `A` is any matrix (the exact Jacobian gives the Rosenbrock method; a
            W-method keeps order 3 with any other).
        t0, h: start and size of the step, broadcastable against `y0`'s lane axis.
        y0: the state; f0 = f(t0, y0).
        dT: `df/dt` at `(t0, y0)` for non-autonomous fields, else None.

    Returns:
        `(y1, error)`: the solution and the embedded (2nd-order) error estimate.
    """
    us = rosenbrock_stages(_A_T, _C_T, _STAGE_C, _D, f, solve, t0, h, y0, f0, dT)
    return y0 + _combine(_M_T, us), _combine(_E_T, us)


def hermite(theta, y0, y1, f0, f1, h):
    """The cubic Hermite interpolant at step fraction `theta` (3rd order, as the
    method) from the step's end values and slopes."""
    t2 = theta * theta
    t3 = t2 * theta
    return (
        (2 * t3 - 3 * t2 + 1) * y0
        + (t3 - 2 * t2 + theta) * h * f0
        + (-2 * t3 + 3 * t2) * y1
        + (t3 - t2) * h * f1
    )
