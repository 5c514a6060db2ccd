"""Rodas5P: a 5th-order, L-stable, stiffly accurate Rosenbrock method (8 stages).

One step takes one "factorisation" of `I/(gamma h) - J` (J the exact Jacobian at
the start of the step) and 8 linear solves, no Newton iteration. The stage
arithmetic here is shape-agnostic: the same code steps one sample (`(species,)`,
the diffrax solver `Rodas5P` below) or all lanes of the batch engine at once
(`(species, lanes)` with one step size per lane).

Reference: G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and
numerical benchmarks within the Julia Differential Equations package", BIT Numer.
Math. 63, 27 (2023). Coefficients in the transformed ("W") formulation of Hairer &
Wanner.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Float

from ._common import combine as _combine, rosenbrock_stages


__all__ = ["Rodas5P", "rodas5p_stages", "rodas5p_dense"]

# Rodas5P: Steinebach (2023), "Construction of Rosenbrock-Wanner method Rodas5P and
# numerical benchmarks within the Julia Differential Equations package", BIT 63:27.
# Coefficients in the transformed ("W") formulation of Hairer & Wanner.
_GAMMA = 0.21193756319429014
_A = (
    (3.0,),
    (2.849394379747939, 0.45842242204463923),
    (-6.954028509809101, 2.489845061869568, -10.358996098473584),
    (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
    (
        -7.502846399306121,
        2.561846144803919,
        -11.627539656261098,
        -0.18268767659942256,
        0.030198172008377946,
    ),
)
_C = (
    (-14.155112264123755,),
    (-17.97296035885952, -2.859693295451294),
    (147.12150275711716, -1.41221402718213, 71.68940251302358),
    (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
    (
        24.854864614690072,
        -3.0009227002832186,
        47.4931110020768,
        5.5814197821558125,
        -0.6610691825249471,
    ),
    (
        30.91273214028599,
        -3.1208243349937974,
        77.79954646070892,
        34.28646028294783,
        -19.097331116725623,
        -28.087943162872662,
    ),
    (
        37.80277123390563,
        -3.2571969029072276,
        112.26918849496327,
        66.9347231244047,
        -40.06618937091002,
        -54.66780262877968,
        -9.48861652309627,
    ),
)
_STAGE_C = (
    0.0,
    0.6358126895828704,
    0.4095798393397535,
    0.9769306725060716,
    0.4288403609558664,
    1.0,
    1.0,
    1.0,
)
_D = (
    0.21193756319429014,
    -0.42387512638858027,
    -0.3384627126235924,
    1.8046452872882734,
    2.325825639765069,
    0.0,
    0.0,
    0.0,
)
_H = (
    (
        25.948786856663858,
        -2.5579724845846235,
        10.433815404888879,
        -2.3679251022685204,
        0.524948541321073,
        1.1241088310450404,
        0.4272876194431874,
        -0.17202221070155493,
    ),
    (
        -9.91568850695171,
        -0.9689944594115154,
        3.0438037242978453,
        -24.495224566215796,
        20.176138334709044,
        15.98066361424651,
        -6.789040303419874,
        -6.710236069923372,
    ),
    (
        11.419903575922262,
        2.8879645146136994,
        72.92137995996029,
        80.12511834622643,
        -52.072871366152654,
        -59.78993625266729,
        -0.15582684282751913,
        4.883087185713722,
    ),
)


def _full_matrices():
    a = np.zeros((8, 8))
    c = np.zeros((8, 8))
    for i, row in enumerate(_A, start=1):
        a[i, : len(row)] = row
    a[6, :5] = a[5, :5]
    a[6, 5] = 1.0  # u7 = u6 + k6
    a[7] = a[6]
    a[7, 6] = 1.0  # u8 = u7 + k7
    b = a[7].copy()
    b[7] = 1.0  # y1 = u8 + k8
    for i, row in enumerate(_C, start=1):
        c[i, : len(row)] = row
    return a, c, b


_A_FULL, _C_FULL, _B_FULL = _full_matrices()


ORDER = 5
ERROR_ORDER = 4  # the embedded estimate


def rodas5p_stages(f, solve, t0, h, y0, f0, dT=None, *, unroll: bool = True):
    """One Rodas5P step from `(t0, y0)` with step `h`.

    Arguments:
        f: `f(t, y) -> dy/dt` (same shape as `y0`).
        solve: `solve(b)` for `(I/(gamma h) - J) x = b`, J at `(t0, y0)`.
        t0, h: start and size of the step: scalars, or broadcastable against the
            lane axis of `y0` (`(1, lanes)` for `(species, lanes)` states).
        y0: the state; f0 = f(t0, y0).
        dT: `df/dt` at `(t0, y0)` for non-autonomous fields, else None.
        unroll: unroll the 8 stages (faster; the right-hand side and the solve are
            then compiled 8 times) or run them in a `fori_loop` (one state only).

    Returns:
        `(y1, error, ks)`: the solution, the embedded error estimate, and the 8
        stage vectors (`rodas5p_dense` turns them into the dense output).
    """
    if unroll:
        k_all = rosenbrock_stages(
            _A_FULL, _C_FULL, _STAGE_C, _D, f, solve, t0, h, y0, f0, dT
        )
    else:
        dtype = y0.dtype
        a_mat = jnp.asarray(_A_FULL, dtype)
        c_mat = jnp.asarray(_C_FULL, dtype)
        stage_t = jnp.asarray(_STAGE_C, dtype)
        d_vec = jnp.asarray(_D, dtype)

        def stage(i, kst):  # stage 0 reads only y0, so it recomputes f0
            u = y0 + jnp.tensordot(a_mat[i], kst, axes=1)
            rhs = f(t0 + stage_t[i] * h, u) + jnp.tensordot(c_mat[i], kst, axes=1) / h
            if dT is not None:
                rhs = rhs + (d_vec[i] * h) * dT
            return kst.at[i].set(solve(rhs))

        kst = jax.lax.fori_loop(0, 8, stage, jnp.zeros((8,) + y0.shape, dtype))
        k_all = [kst[i] for i in range(8)]
    y1 = y0 + _combine(_B_FULL, k_all)
    return y1, k_all[7], k_all


def rodas5p_dense(ks):
    """The three coefficient vectors of the 4th-order dense output."""
    return [_combine(row, ks) for row in _H]


def rodas5p_interpolate(theta, y0, y1, dense):
    """The dense output at step fraction `theta` (broadcastable) from `y0`, `y1` and
    `rodas5p_dense(ks)`."""
    one_minus = 1 - theta
    poly = dense[0] + theta * (dense[1] + theta * dense[2])
    return one_minus * y0 + theta * (y1 + one_minus * poly)


class RosenbrockInterpolation(diffrax.AbstractLocalInterpolation):
    """Dense output of Rodas5P: a 4th-order polynomial in the step fraction."""

    t0: Float[Array, ""]
    t1: Float[Array, ""]
    y0: Float[Array, " n"]
    y1: Float[Array, " n"]
    k: Float[Array, "3 n"]

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is not None:
            return self.evaluate(t1) - self.evaluate(t0)
        dt = self.t1 - self.t0
        theta = jnp.where(dt == 0, 0.0, (t0 - self.t0) / jnp.where(dt == 0, 1.0, dt))
        theta = theta.astype(self.y0.dtype)
        return rodas5p_interpolate(theta, self.y0, self.y1, list(self.k))


def _linear_solver(terms, t0, y0, args, lam):
    """`solve(b)` for `(lam*I - J) x = b`, J the Jacobian at (t0, y0).

    A vector field with a `linear_solver(t, y, lam)` method (as `MassActionNetwork`)
    provides its own; otherwise the Jacobian is materialised and LU-factorised."""
    vf = getattr(terms, "vector_field", None)
    if hasattr(vf, "linear_solver"):
        return vf.linear_solver(t0, y0, lam)
    jac = jax.jacfwd(lambda y: terms.vf(t0, y, args))(y0)
    lu = jsl.lu_factor(lam * jnp.eye(y0.shape[0], dtype=y0.dtype) - jac)
    return lambda b: jsl.lu_solve(lu, b)


def _time_derivative(terms, t0, y0, args):
    """df/dt at (t0, y0): None for autonomous vector fields (`autonomous = True`),
    else forward-mode autodiff."""
    vf = getattr(terms, "vector_field", None)
    if getattr(vf, "autonomous", False) is True:
        return None
    _, dT = jax.jvp(lambda t: terms.vf(t, y0, args), (t0,), (jnp.ones_like(t0),))
    return dT


class Rodas5P(diffrax.AbstractAdaptiveSolver):
    """Rodas5P as a diffrax solver: 5th-order, L-stable, stiffly accurate Rosenbrock
    method (8 stages).

    Each step takes one Jacobian "factorisation" and 8 linear solves, no Newton
    iterations. For a `MassActionNetwork` vector field the network's kinetics solve
    the linear systems (block forward substitution for layered networks, a sparse
    LU scheduled from the stoichiometry otherwise). The embedded 4th-order estimate
    drives the step size; dense output is the method's 4th-order interpolant.
    `simulate_batch` runs the same stages on all lanes at once.

    Arguments:
        unroll: unroll the 8 stages (faster to run, slower to compile) instead of
            looping over them.

    Example:
        >>> import diffrax, jax.numpy as jnp
        >>> term = diffrax.ODETerm(lambda t, y, args: -50.0 * (y - jnp.cos(t)))
        >>> sol = diffrax.diffeqsolve(
        ...     term, Rodas5P(), 0.0, 1.0, 0.01, jnp.array([0.0]),
        ...     stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9))
        >>> bool(jnp.abs(sol.ys[-1, 0] - 0.556909) < 1e-5)
        True
    """

    unroll: bool = False
    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., RosenbrockInterpolation]] = (
        RosenbrockInterpolation
    )

    def order(self, terms):
        del terms
        return ORDER

    def error_order(self, terms):
        del terms
        return ERROR_ORDER

    def init(self, terms, t0, t1, y0, args):
        del terms, t0, t1, y0, args
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        if not isinstance(y0, jax.Array) or y0.ndim != 1:
            raise TypeError("Rodas5P needs the state to be a 1-D array.")
        dtype = y0.dtype
        h = jnp.asarray(t1 - t0, dtype)
        # h = 0 in the steps that a finished sample takes under jax.vmap (their
        # values are discarded); a finite stand-in keeps their reverse-mode
        # cotangents finite (else 0 * inf = NaN poisons every gradient of the batch)
        zero_step = h == 0
        h = jnp.where(zero_step, jnp.ones_like(h), h)
        solve = _linear_solver(terms, t0, y0, args, 1.0 / (_GAMMA * h))

        def f(t, y):
            return terms.vf(t, y, args).astype(dtype)

        dT = _time_derivative(terms, t0, y0, args)
        if dT is not None:
            dT = dT.astype(dtype)
        y1, y_error, ks = rodas5p_stages(
            f, solve, t0, h, y0, f(t0, y0), dT, unroll=self.unroll
        )
        y1 = jnp.where(zero_step, y0, y1)
        y_error = jnp.where(zero_step, jnp.zeros_like(y0), y_error)
        dense_info = dict(y0=y0, y1=y1, k=jnp.stack(rodas5p_dense(ks)))
        # A non-finite step is rejected by the controller (error = inf) and retried
        # with a smaller step, so report success and let the error estimate speak.
        y_error = jnp.where(jnp.isfinite(y_error), y_error, jnp.inf)
        return y1, y_error, dense_info, None, diffrax.RESULTS.successful
