"""Sparse LU factorisation of `lam*I - J` for many lanes at once.

The sparsity pattern of a mass-action Jacobian is fixed by the stoichiometry, so
everything symbolic is done once, on the host, when the network is compiled:

1. a fill-reducing order: the strongly connected blocks of the dependency graph in
   topological order (no fill between blocks), minimum degree within each block;
2. the fill-in of an LU factorisation without pivoting in that order;
3. a schedule: every entry of L and U is one dot product of entries computed
   before it (Crout's form), so entries fall into levels that can be computed all
   at once; likewise the rows of the two triangular solves.

The numeric phase is then straight-line array code, each level a gather, a
multiply-add and a contiguous write on `(entries, lanes)` arrays: the same program
factors every lane, on a CPU or an accelerator. No pivoting: the matrix is
`lam*I - J` with `lam = 1/(gamma h) > 0`, which the step-size control keeps
well conditioned (a step whose solve is inaccurate fails its error test and is
retried with a smaller `h`, i.e. a larger diagonal).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Float, Int

from ._base import OP_COST, GatherSum, host_array, partition_by_count


__all__ = ["DenseLU", "LUSchedule", "SparseLU", "fill_reducing_order"]

_TYPICAL_LANES = 128
# an LU schedule of more groups than this (factorisation and both solves) is
# regrouped with a coarser cost per operation: fewer, more padded groups, so that
# networks of hundreds of species compile in bounded time
MAX_GROUPS = 400
COARSE_OP_COST = 40000.0


# ---------------------------------------------------------------------------------
# Ordering.


def _min_degree(nodes: list[int], adj: dict[int, set[int]]) -> list[int]:
    """Greedy minimum-degree elimination order of `nodes` (ties: lowest index)."""
    adj = {v: set(adj[v]) & set(nodes) for v in nodes}
    alive = set(nodes)
    order = []
    while alive:
        v = min(alive, key=lambda u: (len(adj[u]), u))
        order.append(v)
        alive.remove(v)
        nb = adj.pop(v)
        for a in nb:
            adj[a].discard(v)
            adj[a] |= nb - {a}
    return order


def _sccs_topological(n: int, pattern: np.ndarray) -> list[list[int]]:
    """Strongly connected components of the graph `j -> i` for every pattern entry
    `(i, j)` (i depends on j), in topological order (dependencies first)."""
    from ._structure import _scc

    adj: list[list[int]] = [[] for _ in range(n)]
    for i, j in pattern.tolist():
        if i != j:
            adj[j].append(i)
    comp = _scc(n, [sorted(set(a)) for a in adj])
    ncomp = int(comp.max(initial=-1)) + 1
    # Tarjan numbers components in reverse topological order
    groups: list[list[int]] = [[] for _ in range(ncomp)]
    for v in range(n):
        groups[comp[v]].append(v)
    return groups[::-1]


def fill_reducing_order(n: int, pattern: np.ndarray) -> np.ndarray:
    """An elimination order for a matrix with non-zeros at `pattern` (`(nnz, 2)`
    rows and columns): its strongly connected blocks in topological order, each
    block by minimum degree on its symmetrised pattern.

    Example:
        >>> import numpy as np
        >>> # an arrow: eliminating the hub 0 first would fill the whole matrix
        >>> p = np.array([[0, 1], [0, 2], [0, 3], [1, 0], [2, 0], [3, 0]])
        >>> fill_reducing_order(4, p).tolist().index(0) >= 2
        True
    """
    pattern = np.asarray(pattern, np.int64).reshape(-1, 2)
    adj: dict[int, set[int]] = {v: set() for v in range(n)}
    for i, j in pattern.tolist():
        if i != j:
            adj[i].add(j)
            adj[j].add(i)
    order: list[int] = []
    for block in _sccs_topological(n, pattern):
        order.extend(block if len(block) == 1 else _min_degree(block, adj))
    return np.asarray(order, np.int64)


# ---------------------------------------------------------------------------------
# Symbolic factorisation and schedule.


def _symbolic_fill(n: int, rows: list[set[int]]) -> list[set[int]]:
    """Fill-in of LU without pivoting: `rows[i]` holds the columns of row i."""
    rows = [set(r) for r in rows]
    below: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for j in rows[i]:
            if i > j:
                below[j].add(i)
    for k in range(n):
        upper = [j for j in rows[k] if j > k]
        for i in sorted(below[k]):
            for j in upper:
                if j not in rows[i]:
                    rows[i].add(j)
                    if i > j:
                        below[j].add(i)
    return rows


@dataclasses.dataclass(frozen=True)
class _HostGroup:
    lo: int  # rows [lo, hi) written
    hi: int
    a: np.ndarray  # (E, P) first factors
    b: np.ndarray  # (E, P) second factors (or coefficients)
    d: np.ndarray | None  # (E,) divisors
    level: int = 0  # groups of one level are computed together, written at once


@dataclasses.dataclass(frozen=True)
class LUSchedule:
    """The symbolic LU of one sparsity pattern (host side): see `SparseLU`."""

    n: int
    order: np.ndarray  # elimination position -> variable
    slots: dict  # (i, j) in elimination positions -> slot
    nnz: int
    factor_groups: list
    forward_groups: list
    backward_groups: list
    fwd_rows: np.ndarray  # forward-solve position -> elimination position
    bwd_rows: np.ndarray  # backward-solve position -> elimination position
    n_levels: int
    n_pairs: int  # multiply-adds of one factorisation

    @classmethod
    def build(cls, n: int, pattern: np.ndarray, *, lanes: int = _TYPICAL_LANES):
        pattern = np.asarray(pattern, np.int64).reshape(-1, 2)
        order = fill_reducing_order(n, pattern)
        pos = np.empty(n, np.int64)
        pos[order] = np.arange(n)
        rows: list[set[int]] = [{i} for i in range(n)]  # the diagonal is always there
        for i, j in pattern.tolist():
            rows[pos[i]].add(int(pos[j]))
        rows = _symbolic_fill(n, rows)
        lower = [sorted(j for j in rows[i] if j < i) for i in range(n)]
        upper_cols: list[set[int]] = [set() for _ in range(n)]  # U entries by column
        for i in range(n):
            for j in rows[i]:
                if j >= i:
                    upper_cols[j].add(i)
        # Crout: entry (i, j) = (A_ij - sum_k L_ik U_kj) [/ U_jj if i > j]
        entries = sorted(
            ((i, j) for i in range(n) for j in rows[i]),
            key=lambda e: (min(e), e[0] > e[1], e),
        )
        level: dict[tuple[int, int], int] = {}
        pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i, j in entries:
            m = min(i, j)
            ks = [k for k in lower[i] if k < m and k in upper_cols[j]]
            deps = [level[(i, k)] for k in ks] + [level[(k, j)] for k in ks]
            if i > j:
                deps.append(level[(j, j)])
            level[(i, j)] = 1 + max(deps) if deps else 0
            pairs[(i, j)] = ks
        n_levels = 1 + max(level.values(), default=-1)
        # slots: entries sorted by level; within a level, the entries with work
        # first (a dot product, or a division for L), by decreasing pair count
        by_level: list[list[tuple[int, int]]] = [[] for _ in range(n_levels)]
        for e in entries:
            by_level[level[e]].append(e)

        def idle(e):
            return not pairs[e] and e[0] <= e[1]

        slot_of: dict[tuple[int, int], int] = {}
        factor_host = []
        for lv in by_level:
            lv.sort(key=lambda e: (idle(e), -len(pairs[e]), e))
            start = len(slot_of)
            for e in lv:
                slot_of[e] = len(slot_of)
            work = [e for e in lv if not idle(e)]
            factor_host.append((start, work))
        nnz = len(slot_of)
        n_pairs = sum(len(v) for v in pairs.values())
        upper_rows = [sorted(j for j in rows[i] if j > i) for i in range(n)]

        def grouped(op_cost):
            factor_groups = _factor_groups(factor_host, pairs, slot_of, lanes, op_cost)
            fwd = _solve_schedule(n, lower, slot_of, nnz, lanes, op_cost, unit=True)
            bwd = _solve_schedule(
                n, upper_rows, slot_of, nnz, lanes, op_cost, unit=False, reverse=True
            )
            return factor_groups, fwd, bwd

        # the measured cost model, unless that makes more array operations than
        # compile in reasonable time: then fewer, more padded groups
        factor_groups, fwd, bwd = grouped(OP_COST)
        if len(factor_groups) + len(fwd[0]) + len(bwd[0]) > MAX_GROUPS:
            factor_groups, fwd, bwd = grouped(COARSE_OP_COST)
        (fwd_groups, fwd_rows), (bwd_groups, bwd_rows) = fwd, bwd
        return cls(
            n,
            order,
            slot_of,
            nnz,
            factor_groups,
            fwd_groups,
            bwd_groups,
            fwd_rows,
            bwd_rows,
            n_levels,
            n_pairs,
        )


def _factor_groups(factor_host, pairs, slot_of, lanes, op_cost):
    """The factorisation's groups: per level, its entries with work split by
    `partition_by_count`; `a`/`b` the slots of the pairs' factors, `d` the
    divisor's slot (entries of L) or None."""
    nnz = len(slot_of)
    zero, one = nnz, nnz + 1
    groups = []
    for lv_index, (start, work) in enumerate(factor_host):
        if not work:
            continue
        counts = [len(pairs[e]) for e in work]
        for s, e_ in partition_by_count(counts, lanes, op_cost):
            grp = work[s:e_]
            p = max(len(pairs[e]) for e in grp)
            a = np.full((len(grp), p), zero, np.int32)
            b = np.full((len(grp), p), zero, np.int32)
            d = np.full(len(grp), one, np.int32)
            for r, (i, j) in enumerate(grp):
                for c, k in enumerate(pairs[(i, j)]):
                    a[r, c] = slot_of[(i, k)]
                    b[r, c] = slot_of[(k, j)]
                if i > j:
                    d[r] = slot_of[(j, j)]
            groups.append(
                _HostGroup(
                    start + s,
                    start + e_,
                    a,
                    b,
                    d if (d != one).any() else None,
                    lv_index,
                )
            )
    return groups


def _solve_schedule(n, deps, slot_of, zero, lanes, op_cost, *, unit, reverse=False):
    """Level schedule of a triangular solve: row i needs the rows `deps[i]`.

    Returns groups over solve positions and the map solve position -> row. Group
    arrays: `a` the matrix slots (E, P), `b` the solve positions read (E, P), `d`
    the diagonal slot (backward solve) or None."""
    rows_in = range(n - 1, -1, -1) if reverse else range(n)
    level = [0] * n
    for i in rows_in:
        level[i] = 1 + max((level[j] for j in deps[i]), default=-1)
    n_levels = 1 + max(level, default=-1)
    by_level: list[list[int]] = [[] for _ in range(n_levels)]
    for i in range(n):
        by_level[level[i]].append(i)
    order = []
    for lv in by_level:
        lv.sort(key=lambda i: (-len(deps[i]), i))
        order.extend(lv)
    position = {r: k for k, r in enumerate(order)}
    zero_pos = n  # the extra zero row of the solve vector
    groups = []
    start = 0
    for lv_index, lv in enumerate(by_level):
        counts = [len(deps[i]) for i in lv]
        for s, e in partition_by_count(counts, lanes, op_cost):
            grp = lv[s:e]
            p = max((len(deps[i]) for i in grp), default=0)
            if p == 0 and unit:
                continue  # x_i = b_i: nothing to do
            a = np.full((len(grp), p), zero, np.int32)
            b = np.full((len(grp), p), zero_pos, np.int32)
            for r, i in enumerate(grp):
                for c, j in enumerate(deps[i]):
                    a[r, c] = slot_of[(i, j)]
                    b[r, c] = position[j]
            d = None if unit else np.array([slot_of[(i, i)] for i in grp], np.int32)
            groups.append(_HostGroup(start + s, start + e, a, b, d, lv_index))
        start += len(lv)
    return groups, np.asarray(order, np.int64)


# ---------------------------------------------------------------------------------
# Numeric phase.


def _lanes_shape(x: Array) -> tuple[int, ...]:
    return x.shape[1:]


class _Group(eqx.Module):
    """Rows `[lo, hi)` computed at once: `idx` holds, per row, the `P` first
    factors, the `P` second factors and (with `has_d`) the divisor."""

    lo: int = eqx.field(static=True)
    hi: int = eqx.field(static=True)
    p: int = eqx.field(static=True)
    has_d: bool = eqx.field(static=True)
    level: int = eqx.field(static=True)
    idx: Int[Array, "E K"]

    def gather(self, vals):
        """`(a, b, d)` rows of `vals` (one gather)."""
        g = vals[self.idx]
        p = self.p
        return g[:, :p], g[:, p : 2 * p], (g[:, 2 * p] if self.has_d else None)


def _device_group(g: _HostGroup) -> _Group:
    cols = [g.a, g.b] + ([g.d[:, None]] if g.d is not None else [])
    return _Group(
        g.lo,
        g.hi,
        g.a.shape[1],
        g.d is not None,
        g.level,
        host_array(np.concatenate(cols, axis=1).astype(np.int32)),
    )


def _by_level(groups):
    """Runs of consecutive groups of one level."""
    runs: list[list] = []
    for g in groups:
        if runs and runs[-1][0].level == g.level and runs[-1][-1].hi == g.lo:
            runs[-1].append(g)
        else:
            runs.append([g])
    return runs


def _write(arr, lo, new):
    """`arr` with rows `[lo, lo + len(new))` replaced (one write per level)."""
    return arr.at[lo : lo + new.shape[0]].set(new)


class SparseLU(eqx.Module):
    """`(lam*I - J) x = b` by a sparse LU with a precomputed schedule, for one
    sample (`(n,)` vectors) or many lanes at once (`(n, lanes)`).

    Built from the sparsity pattern of `J` and a list of *terms*: the Jacobian is
    `J[row_q, col_q] = sum_q coeff_q * v[src_q]`, `v` a vector of partial
    derivatives the kinetics computes (one per reaction and reactant slot).
    `factor(lam, v)` assembles `lam*I - J` in the factor's own layout and factors
    it; `solve(factors, b)` does the two triangular solves.
    """

    # assembly: slot s of lam*I - J is lam*[s is diagonal] - sum coeff * v[src]
    assembly: GatherSum  # v -> J in slot order
    asm_diag: Float[Array, " slots"]
    factor_groups: tuple[_Group, ...]
    fwd_groups: tuple[_Group, ...]
    bwd_groups: tuple[_Group, ...]
    # what the solves read, gathered from the factor in one operation: per forward
    # group its `P` entries of L, per backward group its `P` entries of U and its
    # diagonal, concatenated (row-major) in group order
    pack_index: Int[Array, " packed"]
    fwd_rows: Int[Array, " n"]  # forward position -> variable
    bwd_from_fwd: Int[Array, " n"]  # backward position -> forward position
    out_rows: Int[Array, " n"]  # variable -> backward position
    n: int = eqx.field(static=True)
    nnz: int = eqx.field(static=True)
    n_levels: int = eqx.field(static=True)
    n_pairs: int = eqx.field(static=True)

    @property
    def n_solve_levels(self) -> int:
        """Sequential levels of one solve (forward and backward)."""
        return len({g.level for g in self.fwd_groups}) + len(
            {g.level for g in self.bwd_groups}
        )

    @classmethod
    def build(
        cls,
        n: int,
        term_src: np.ndarray,
        term_row: np.ndarray,
        term_col: np.ndarray,
        term_coeff: np.ndarray,
        *,
        n_values: int,
        dtype,
        lanes: int = _TYPICAL_LANES,
        schedule: "LUSchedule | None" = None,
    ) -> "SparseLU":
        """`n_values`: the length of the vector `v` that `factor` takes (every
        `term_src` indexes it)."""
        pattern = np.unique(
            np.stack([term_row, term_col], axis=1).astype(np.int64).reshape(-1, 2),
            axis=0,
        )
        sched = schedule or LUSchedule.build(n, pattern, lanes=lanes)
        pos = np.empty(n, np.int64)
        pos[sched.order] = np.arange(n)
        term_slot = np.array(
            [
                sched.slots[(int(pos[r]), int(pos[c]))]
                for r, c in zip(term_row.tolist(), term_col.tolist(), strict=True)
            ],
            np.int64,
        )
        assembly = GatherSum.build(
            sched.nnz, n_values, term_slot, term_src, term_coeff, dtype=dtype
        )
        diag = np.zeros(sched.nnz)
        for i in range(n):
            diag[sched.slots[(i, i)]] = 1.0
        fwd_position = np.empty(n, np.int64)
        fwd_position[sched.fwd_rows] = np.arange(n)
        bwd_position = np.empty(n, np.int64)
        bwd_position[sched.bwd_rows] = np.arange(n)
        pack = [g.a.reshape(-1) for g in sched.forward_groups] + [
            np.concatenate([g.a, g.d[:, None]], axis=1).reshape(-1)
            for g in sched.backward_groups
        ]
        return cls(
            assembly=assembly,
            asm_diag=host_array(diag, dtype),
            pack_index=host_array(
                np.concatenate(pack) if pack else np.zeros(0), jnp.int32
            ),
            factor_groups=tuple(_device_group(g) for g in sched.factor_groups),
            fwd_groups=tuple(_device_group(g) for g in sched.forward_groups),
            bwd_groups=tuple(_device_group(g) for g in sched.backward_groups),
            fwd_rows=host_array(sched.order[sched.fwd_rows], jnp.int32),
            bwd_from_fwd=host_array(fwd_position[sched.bwd_rows], jnp.int32),
            out_rows=host_array(bwd_position[pos], jnp.int32),
            n=n,
            nnz=sched.nnz,
            n_levels=sched.n_levels,
            n_pairs=sched.n_pairs,
        )

    def factor(self, lam, v: Float[Array, "terms ..."]):
        """Assemble and factor `lam*I - J`. `v` holds the partial derivatives the
        terms read; `lam` is a scalar or has the lanes' shape."""
        lanes = v.shape[1:]
        dt = v.dtype
        asm = self.assembly(v)
        lam = jnp.asarray(lam, dt)
        vals = self.asm_diag.astype(dt)[(slice(None),) + (None,) * len(lanes)] * lam
        vals = vals - asm
        vals = jnp.concatenate(
            [vals, jnp.zeros((1,) + lanes, dt), jnp.ones((1,) + lanes, dt)]
        )
        for run in _by_level(self.factor_groups):
            parts = []
            for g in run:
                a, b, d = g.gather(vals)
                new = vals[g.lo : g.hi]
                if g.p:
                    new = new - jnp.sum(a * b, axis=1)
                if d is not None:
                    new = new / d
                parts.append(new)
            new = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
            vals = _write(vals, run[0].lo, new)
        # pack what the solves read, once per factorisation and in one gather (a
        # gather per group cost 7-10% of a Rodas5P step on egfr_simple and EARM
        # 1.3): the matrix entries of each group, and the inverse diagonal of the
        # backward solve
        flat = vals[self.pack_index]
        fwd, bwd, at = [], [], 0
        for g in self.fwd_groups:
            size = (g.hi - g.lo) * g.p
            fwd.append(flat[at : at + size].reshape((g.hi - g.lo, g.p) + lanes))
            at += size
        for g in self.bwd_groups:
            size = (g.hi - g.lo) * (g.p + 1)
            m = flat[at : at + size].reshape((g.hi - g.lo, g.p + 1) + lanes)
            bwd.append((m[:, : g.p], 1.0 / m[:, g.p]))
            at += size
        return tuple(fwd), tuple(bwd)

    def solve(self, factors, b: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
        """Solve with the output of `factor`."""
        fwd, bwd = factors
        lanes = b.shape[1:]
        dt = b.dtype
        zero = jnp.zeros((1,) + lanes, dt)
        y = jnp.concatenate([b[self.fwd_rows], zero])
        packed = dict(zip((id(g) for g in self.fwd_groups), fwd, strict=True))
        for run in _by_level(self.fwd_groups):
            parts = []
            for g in run:
                src = y[g.idx[:, g.p : 2 * g.p]]
                parts.append(y[g.lo : g.hi] - jnp.sum(packed[id(g)] * src, axis=1))
            y = _write(
                y, run[0].lo, parts[0] if len(parts) == 1 else jnp.concatenate(parts)
            )
        x = jnp.concatenate([y[self.bwd_from_fwd], zero])
        packed = dict(zip((id(g) for g in self.bwd_groups), bwd, strict=True))
        for run in _by_level(self.bwd_groups):
            parts = []
            for g in run:
                uv, dinv = packed[id(g)]
                new = x[g.lo : g.hi]
                if g.p:
                    new = new - jnp.sum(uv * x[g.idx[:, g.p : 2 * g.p]], axis=1)
                parts.append(new * dinv)
            x = _write(
                x, run[0].lo, parts[0] if len(parts) == 1 else jnp.concatenate(parts)
            )
        return x[self.out_rows]


# ---------------------------------------------------------------------------------
# Dense LU (partial pivoting), for patterns whose fill leaves little sparsity and for
# the dense layout.


def dense_lu_factor(a: Float[Array, "n n lanes"]):
    """LU factorisations (partial pivoting) of `a[:, :, l]` for every lane."""
    return jax.vmap(jsl.lu_factor, in_axes=2)(a)


def dense_lu_solve(factors, b: Float[Array, "n lanes"]) -> Float[Array, "n lanes"]:
    return jax.vmap(jsl.lu_solve, in_axes=(0, 1), out_axes=1)(factors, b)


class DenseLU(eqx.Module):
    """`(lam*I - J) x = b` by a dense LU with partial pivoting, `J` assembled from
    the same terms as `SparseLU` (`J[row_q, col_q] += coeff_q * v[src_q]`). Chosen
    when a sparse schedule would be long (its levels compile one by one) or its
    fill leaves little to gain."""

    term_src: Int[Array, " terms"]
    term_row: Int[Array, " terms"]
    term_col: Int[Array, " terms"]
    term_coeff: Float[Array, " terms"]
    n: int = eqx.field(static=True)

    @classmethod
    def build(cls, n, term_src, term_row, term_col, term_coeff, *, dtype) -> "DenseLU":
        return cls(
            host_array(np.asarray(term_src, np.int32)),
            host_array(np.asarray(term_row, np.int32)),
            host_array(np.asarray(term_col, np.int32)),
            host_array(np.asarray(term_coeff, np.float64), dtype),
            n,
        )

    def factor(self, lam, v):
        lanes = v.shape[1:]
        n = self.n
        vals = self.term_coeff.astype(v.dtype)[:, None] * v[self.term_src]
        jac = (
            jnp.zeros((n, n) + lanes, v.dtype)
            .at[self.term_row, self.term_col]
            .add(vals)
        )
        lam = jnp.broadcast_to(jnp.asarray(lam, v.dtype), (1,) + lanes).reshape(
            1, 1, -1
        )
        return dense_lu_factor(lam * jnp.eye(n, dtype=v.dtype)[:, :, None] - jac)

    def solve(self, factors, b):
        return dense_lu_solve(factors, b)
