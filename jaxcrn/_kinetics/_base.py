"""The kinetics interface: mass-action fluxes, right-hand side, Jacobian and the
linear solve of implicit steps, in one array layout.

Every method takes concentrations with the species on the first axis, either one
sample `(species,)` or a batch of lanes `(species, lanes)`, and rate constants
`(reactions,)` (shared by every lane) or `(reactions, lanes)` (one set per lane).
The batch engine calls them on whole lane arrays; `simulate` and diffrax call them
on one sample. Layouts implement the 2-D case (`_flux`, `_rhs`, `_partials`,
`_factor`, `_solve`); the 1-D case adds and removes a lane axis.
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._structure import Stoichiometry


__all__ = ["AbstractKinetics", "ReactantGather"]


def host_array(x, dtype=None) -> jax.Array:
    """Host data (built once, when a network is compiled) as a device array.
    `jax.device_put` of a NumPy array: `jnp.asarray(x, dtype)` stages a conversion,
    compiled once per shape, which costs seconds for the thousands of small tables
    of a large network."""
    return jax.device_put(np.asarray(x, None if dtype is None else np.dtype(dtype)))


def _lanes(y, rates):
    """(2-D y, 2-D rates, squeeze?) for a 1-D or 2-D state."""
    if y.ndim == 1:
        y = y[:, None]
        squeeze = True
    elif y.ndim == 2:
        squeeze = False
    else:
        raise ValueError(
            f"concentrations must have shape (species,) or (species, lanes); got "
            f"{y.shape}."
        )
    rates = jnp.asarray(rates)
    if rates.ndim == 1:
        rates = rates[:, None]
    return y, rates.astype(y.dtype), squeeze


def _on_lanes(fn, y, rates):
    """`fn` on `(species, lanes)` arrays, for one sample or many."""
    y2, k2, squeeze = _lanes(y, rates)
    out = fn(y2, k2)
    return out[:, 0] if squeeze else out


class Factors(eqx.Module):
    """What `factor` returns: the layout's factorisation data, and whether the
    state had no lane axis (a single sample)."""

    data: Any
    squeeze: bool = eqx.field(static=True)


class AbstractKinetics(eqx.Module):
    """Mass-action kinetics `dy/dt = N^T (k * prod y^reactants)` in one layout.

    Subclasses: `DenseKinetics` (dense stoichiometry, one matrix product),
    `SparseKinetics` (gathers, few terms per species) and `LayeredKinetics`
    (feed-forward networks: slices and block forward substitution).
    """

    n_species: eqx.AbstractVar[int]
    n_reactions: eqx.AbstractVar[int]
    # the stoichiometry as host-side tables, species in the layout's order
    tables: eqx.AbstractVar[Stoichiometry]

    # -- the public, shape-polymorphic methods -------------------------------------
    def flux(
        self, y: Float[Array, "species ..."], rates: Float[Array, "reactions ..."]
    ) -> Float[Array, "reactions ..."]:
        """Reaction fluxes `k_r * prod_s y_s^{reactants[r, s]}`."""
        return _on_lanes(self._flux, y, rates)

    def rhs(
        self, y: Float[Array, "species ..."], rates: Float[Array, "reactions ..."]
    ) -> Float[Array, "species ..."]:
        """`dy/dt` at `y`."""
        return _on_lanes(self._rhs, y, rates)

    def factor(self, y, rates, lam):
        """Prepare to solve `(lam*I - J(y)) x = b` for several `b` (`lam` a scalar,
        or one value per lane)."""
        y2, k2, squeeze = _lanes(y, rates)
        lam = jnp.asarray(lam, y2.dtype)
        if lam.ndim == 1:
            lam = lam[None, :]
        return Factors(self._factor(y2, k2, lam), squeeze)

    def solve(self, factors: "Factors", b):
        """Solve `(lam*I - J) x = b` with the output of `factor`."""
        if factors.squeeze:
            return self._solve(factors.data, b[:, None])[:, 0]
        return self._solve(factors.data, b)

    def jacobian(self, y, rates) -> Float[Array, "species species ..."]:
        """The dense Jacobian `d rhs_i / d y_j` by forward-mode autodiff of `rhs`
        (for inspection and tests: the solvers never form it)."""
        y2, k2, squeeze = _lanes(y, rates)

        def one(yl, kl):
            return jax.jacfwd(lambda z: self._rhs(z[:, None], kl[:, None])[:, 0])(yl)

        k2 = jnp.broadcast_to(k2, (k2.shape[0], y2.shape[1]))
        jac = jax.vmap(one, in_axes=(1, 1), out_axes=2)(y2, k2)
        return jac[:, :, 0] if squeeze else jac

    @property
    def growth_terms(self):
        """`Stoichiometry.growth_terms` of this layout's tables (static: also
        inside `jax.jit`)."""
        return self.tables.growth_terms

    def growth_rate(self, y, rates, below=None, terms=None) -> Array | None:
        """A bound `g` on how fast catalysis can make species grow (0 where none
        grows), per lane; None where nothing can (see
        `Stoichiometry.growth_terms`). An L-stable implicit step of size h damps a
        mode growing like exp(g t) once g h is large, so a seed below the absolute
        tolerance would never grow (an explicit step's polynomial undershoots
        exp(g h) too): the batch engine and `simulate` keep `g h` bounded
        (`_solvers._common.GROWTH_LIMIT`). `below` (per lane, or a scalar): only
        species with `0 < y < below` count (above it, the error control sees them;
        at 0, catalysis cannot make them grow). `terms`: `growth_terms` read
        earlier (outside a trace), else this layout's."""
        terms = self.growth_terms if terms is None else terms
        if terms is None:
            return None
        y2, k2, squeeze = _lanes(y, rates)
        ext = jnp.concatenate([y2, jnp.ones((1,) + y2.shape[1:], y2.dtype)])
        k2 = jnp.broadcast_to(k2, (k2.shape[0],) + y2.shape[1:])
        others = np.asarray(terms.others, np.int32)
        term = k2[np.asarray(terms.reaction)] * np.asarray(terms.coef)[:, None]
        for j in range(others.shape[1]):
            term = term * ext[others[:, j]]
        term = jnp.concatenate([term, jnp.zeros((1,) + y2.shape[1:], y2.dtype)])
        per = np.asarray(terms.rows, np.int32)
        rows = term[per[:, 0]]  # a gather per column: cheaper than a scatter
        for j in range(1, per.shape[1]):
            rows = rows + term[per[:, j]]
        if below is not None:
            ys = y2[np.asarray(terms.species, np.int32)]
            rows = jnp.where((ys > 0) & (ys < below), rows, 0.0)
        g = jnp.maximum(jnp.max(rows, axis=0), 0.0)
        return g[0] if squeeze else g

    # -- what a layout implements, on (species, lanes) arrays ----------------------
    @abc.abstractmethod
    def _flux(self, y, rates): ...

    @abc.abstractmethod
    def _rhs(self, y, rates): ...

    @abc.abstractmethod
    def _factor(self, y, rates, lam): ...

    @abc.abstractmethod
    def _solve(self, factors, b): ...


class ReactantGather(eqx.Module):
    """The reactants of every reaction as a padded index table: fluxes, and the
    partial derivatives of each flux with respect to each reactant slot (the
    leave-one-out products), which are all a mass-action Jacobian is made of."""

    index: Int[Array, "reactions order"]  # padding slots read a constant 1
    n_species: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry) -> "ReactantGather":
        return cls(host_array(tables.padded_reactants()), tables.n_species)

    @property
    def order(self) -> int:
        return self.index.shape[1]

    def gathered(self, y: Float[Array, "species lanes"]) -> list[Array]:
        """Per reactant slot, the `(reactions, lanes)` concentrations it reads."""
        ext = jnp.concatenate([y, jnp.ones((1,) + y.shape[1:], y.dtype)])
        return [ext[self.index[:, j]] for j in range(self.order)]

    def flux(self, y, rates):
        f = rates
        for g in self.gathered(y):
            f = f * g
        return jnp.broadcast_to(f, (self.index.shape[0],) + y.shape[1:])

    def partials(self, y, rates) -> Float[Array, "slots lanes"]:
        """`d flux[r] / d (slot j)` for every reaction and slot, flattened to
        `(reactions * order, lanes)` (row `r * order + j`)."""
        gs = self.gathered(y)
        shape = (self.index.shape[0],) + y.shape[1:]
        cols = []
        for j in range(self.order):
            p = rates
            for i, g in enumerate(gs):
                if i != j:
                    p = p * g
            cols.append(jnp.broadcast_to(p, shape))
        return jnp.stack(cols, axis=1).reshape((-1,) + y.shape[1:])


# cost model for grouping entries (rows of a gather-sum, entries of one LU level),
# in units of one multiply-add on one lane: a group costs its padded size times the
# lanes, plus a fixed overhead per array operation (measured on XLA:CPU: ~0.2 us
# per operation, ~0.25 ns per element-operation, so 800; a Rodas5P step at 64
# lanes took 562 -> 402 us on random60 and 293 -> 232 us on EARM 1.3 against the
# 40,000 used before, which padded groups to spare operations)
OP_COST = 800.0


def partition_by_count(
    counts: list[int], lanes: int, op_cost: float = OP_COST
) -> list[tuple[int, int]]:
    """Split entries sorted by decreasing count (of terms, of pairs) into
    contiguous groups, each padded to its first (largest) count, minimising the
    padded work plus `op_cost` per group (dynamic programming over runs of equal
    counts)."""
    runs: list[tuple[int, int]] = []  # (start, count)
    for k, c in enumerate(counts):
        if not runs or counts[runs[-1][0]] != c:
            runs.append((k, c))
    m = len(runs)
    ends = [r[0] for r in runs[1:]] + [len(counts)]
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for e in range(1, m + 1):
        for s in range(e):
            width = max(runs[s][1], 1)
            cost = best[s] + op_cost + (ends[e - 1] - runs[s][0]) * width * lanes
            if cost < best[e]:
                best[e] = cost
                cut[e] = s
    out = []
    e = m
    while e > 0:
        s = cut[e]
        out.append((runs[s][0], ends[e - 1]))
        e = s
    return out[::-1]


class _SumGroup(eqx.Module):
    src: Int[Array, "rows terms"]
    coeff: Float[Array, "rows terms"]


class GatherSum(eqx.Module):
    """`out[i] = sum_q coeff_q * x[src_q]` over the terms `q` of row `i`: a sparse
    matrix times `(columns, lanes)`, as padded gathers.

    Rows are grouped by their number of terms (each group padded to its largest
    count) so that a few rows with many terms do not pad all the others; the groups
    are concatenated and put back in row order with one gather.
    """

    groups: tuple[_SumGroup, ...]
    out_index: Int[Array, " rows"]  # row -> position in the concatenated groups
    n_rows: int = eqx.field(static=True)
    n_cols: int = eqx.field(static=True)

    @classmethod
    def build(cls, n_rows, n_cols, row, src, coeff, *, dtype, lanes: int = 128):
        row = np.asarray(row, np.int64)
        src = np.asarray(src, np.int64)
        coeff = np.asarray(coeff, np.float64)
        terms: list[list[tuple[int, float]]] = [[] for _ in range(n_rows)]
        for i, q, c in zip(row.tolist(), src.tolist(), coeff.tolist(), strict=True):
            terms[i].append((q, c))
        rows = sorted(
            (i for i in range(n_rows) if terms[i]), key=lambda i: -len(terms[i])
        )
        groups = []
        for a, b in partition_by_count([len(terms[i]) for i in rows], lanes):
            grp = rows[a:b]
            p = len(terms[grp[0]])
            s = np.full((len(grp), p), n_cols, np.int32)  # n_cols: the zero row
            c = np.zeros((len(grp), p))
            for k, i in enumerate(grp):
                for j, (q, v) in enumerate(terms[i]):
                    s[k, j] = q
                    c[k, j] = v
            groups.append(_SumGroup(host_array(s), host_array(c, dtype)))
        out = np.full(n_rows, len(rows), np.int32)  # rows without terms: zero
        out[np.asarray(rows, np.int64)] = np.arange(len(rows))
        return cls(tuple(groups), host_array(out), n_rows, n_cols)

    def __call__(self, x: Float[Array, "cols ..."]) -> Float[Array, "rows ..."]:
        lanes = x.shape[1:]
        zero = jnp.zeros((1,) + lanes, x.dtype)
        ext = jnp.concatenate([x, zero])
        exp = (slice(None), slice(None)) + (None,) * len(lanes)
        parts = [
            jnp.sum(g.coeff.astype(x.dtype)[exp] * ext[g.src], axis=1)
            for g in self.groups
        ]
        return jnp.concatenate(parts + [zero])[self.out_index]
