"""The aligned layered layout: feed-forward networks in which every block (strongly
connected group of 1 or 2 species) is consumed by at most one reaction, as in every
CRN compiled from a neural network (Algorithms 1 and 2).

Species are stored wavefront by wavefront; inside a wavefront, first the first
members of its blocks (pair blocks, then single blocks with a reaction, then
blocks without one), then the second members of the pair blocks. Reactions are
stored in the same block order. Every block-local operation (own stoichiometry,
2x2 Jacobian blocks, their inverses) is then elementwise on contiguous slices, and
each wavefront feeds later species through one dense matrix product added to a
contiguous slice: no scatters on the hot path.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._compile import AbstractKinetics, leave_one_out


class _AWave(eqx.Module):
    # static layout
    offset: int = eqx.field(static=True)
    n_blocks: int = eqx.field(static=True)  # nb: first members
    n_pairs: int = eqx.field(static=True)  # P: second members (pair blocks)
    n_rxn: int = eqx.field(static=True)  # reactions, aligned with blocks 0..n_rxn-1
    rxn_offset: int = eqx.field(static=True)
    lo: int = eqx.field(static=True)  # target slice [lo, hi)
    hi: int = eqx.field(static=True)
    has_mixed: bool = eqx.field(static=True)
    # arrays
    c1: Float[Array, " n_rxn"]  # own stoichiometry on the first member
    c2: Float[Array, " n_pairs"]  # own stoichiometry on the second member
    first_mask: Float[Array, "n_rxn order"]  # reactant slot is the first member
    second_mask: Float[Array, "n_pairs order"]  # reactant slot is the second member
    early_mask: Float[Array, "n_rxn order"] | None  # slot in an earlier wavefront
    dense: Float[Array, "n_rxn targets"] | None
    coo_row: Int[Array, " nnz"] | None
    coo_col: Int[Array, " nnz"] | None
    coo_val: Float[Array, " nnz"] | None

    @property
    def size(self) -> int:
        return self.n_blocks + self.n_pairs

    def feed(self, q):
        """Production in species [lo, hi) from reaction values q (n_rxn,)."""
        if self.dense is not None:
            return q @ self.dense.astype(q.dtype)
        if self.coo_row is None:  # nothing produced downstream
            return jnp.zeros((self.hi - self.lo,), q.dtype)
        assert self.coo_col is not None
        assert self.coo_val is not None
        return jax.ops.segment_sum(
            q[self.coo_row] * self.coo_val.astype(q.dtype),
            self.coo_col,
            self.hi - self.lo,
        )


def _add_slice(v, lo, hi, values):
    if hi <= lo:
        return v
    return v.at[lo:hi].add(values)


class AlignedLayeredKinetics(AbstractKinetics):
    """Layered kinetics on an aligned species order (see the module docstring).

    Same interface as `LayeredKinetics` (`rhs`, `factor`, `solve`, `forcing`, with
    `skip_first` to replace the first wavefront by its exact solution).
    """

    reactant_index: Int[Array, "reactions order"]  # internal reaction order
    rxn_perm: Int[Array, " reactions"]  # internal reaction -> CRN reaction
    waves: tuple[_AWave, ...]
    decay_species: Int[Array, " n_decay"] | None
    decay_rxn: Int[Array, " n_decay"] | None  # internal reaction of each decay
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @property
    def first_is_decay(self) -> bool:
        return self.decay_species is not None

    def _rates(self, rates):
        return rates[self.rxn_perm]

    def _gather(self, y):
        return jnp.concatenate([y, jnp.ones((1,), y.dtype)])[self.reactant_index]

    def flux(self, y, rates):
        f = self._rates(rates) * jnp.prod(self._gather(y), axis=1)
        # back to CRN reaction order
        return jnp.zeros_like(f).at[self.rxn_perm].set(f)

    def rhs(self, y, rates, *, skip_first: bool = False):
        f = self._rates(rates) * jnp.prod(self._gather(y), axis=1)
        pieces = []
        for i, w in enumerate(self.waves):
            if skip_first and i == 0:
                pieces.append(jnp.zeros((w.size,), y.dtype))
                continue
            fw = f[w.rxn_offset : w.rxn_offset + w.n_rxn]
            own1 = fw * w.c1.astype(y.dtype)
            first = jnp.concatenate([own1, jnp.zeros((w.n_blocks - w.n_rxn,), y.dtype)])
            second = fw[: w.n_pairs] * w.c2.astype(y.dtype)
            pieces.append(jnp.concatenate([first, second]))
        dy = jnp.concatenate(pieces)
        for i, w in enumerate(self.waves):
            if (skip_first and i == 0) or w.n_rxn == 0:
                continue
            fw = f[w.rxn_offset : w.rxn_offset + w.n_rxn]
            dy = _add_slice(dy, w.lo, w.hi, w.feed(fw))
        return dy

    def decay_rates(self, rates):
        assert self.decay_rxn is not None
        return self._rates(rates)[self.decay_rxn]

    def forcing(self, y0, rates):
        w = self.waves[0]
        f = self._rates(rates) * jnp.prod(self._gather(y0), axis=1)
        fw = f[w.rxn_offset : w.rxn_offset + w.n_rxn]
        return _add_slice(jnp.zeros_like(y0), w.lo, w.hi, w.feed(fw))

    def factor(self, y, rates, lam, *, skip_first: bool = False):
        loo = leave_one_out(self._gather(y), self._rates(rates))
        inv = []
        for i, w in enumerate(self.waves):
            dt = y.dtype
            if (skip_first and i == 0) or w.n_rxn == 0:
                j11 = jnp.zeros((w.n_blocks,), dt)
                j12 = j21 = j22 = jnp.zeros((w.n_pairs,), dt)
            else:
                lw = loo[w.rxn_offset : w.rxn_offset + w.n_rxn]
                d1 = jnp.sum(lw * w.first_mask.astype(dt), axis=1)  # d r / d first
                d2 = jnp.sum(lw[: w.n_pairs] * w.second_mask.astype(dt), axis=1)
                c1 = w.c1.astype(dt)
                c2 = w.c2.astype(dt)
                j11 = jnp.concatenate([c1 * d1, jnp.zeros((w.n_blocks - w.n_rxn,), dt)])
                j12 = c1[: w.n_pairs] * d2
                j21 = c2 * d1[: w.n_pairs]
                j22 = c2 * d2
            a = lam - j11
            p = w.n_pairs
            det = a[:p] * (lam - j22) - j12 * j21
            inv.append(
                (
                    jnp.concatenate([(lam - j22) / det, 1.0 / a[p:]]),  # i11
                    j12 / det,  # i12
                    j21 / det,  # i21
                    a[:p] / det,  # i22
                )
            )
        return loo, tuple(inv)

    def solve(self, factors, b, *, skip_first: bool = False):
        loo, inv = factors
        acc = b
        x = jnp.zeros((self.n_species + 1,), b.dtype)  # last slot: padding (zero)
        for i, (w, (i11, i12, i21, i22)) in enumerate(
            zip(self.waves, inv, strict=True)
        ):
            p = w.n_pairs
            if w.has_mixed and not (skip_first and i == 0):
                assert w.early_mask is not None
                lw = loo[w.rxn_offset : w.rxn_offset + w.n_rxn]
                xs = x[self.reactant_index[w.rxn_offset : w.rxn_offset + w.n_rxn]]
                q = jnp.sum(lw * xs * w.early_mask.astype(b.dtype), axis=1)
                first = jnp.concatenate(
                    [
                        q * w.c1.astype(b.dtype),
                        jnp.zeros((w.n_blocks - w.n_rxn,), b.dtype),
                    ]
                )
                acc = _add_slice(
                    acc,
                    w.offset,
                    w.offset + w.size,
                    jnp.concatenate([first, q[:p] * w.c2.astype(b.dtype)]),
                )
            r0 = acc[w.offset : w.offset + w.n_blocks]
            r1 = acc[w.offset + w.n_blocks : w.offset + w.size]
            x0 = i11 * r0
            x0 = x0.at[:p].add(i12 * r1)
            x1 = i21 * r0[:p] + i22 * r1
            x = jax.lax.dynamic_update_slice(x, jnp.concatenate([x0, x1]), (w.offset,))
            if (skip_first and i == 0) or w.n_rxn == 0:
                continue
            lw = loo[w.rxn_offset : w.rxn_offset + w.n_rxn]
            xs = x[self.reactant_index[w.rxn_offset : w.rxn_offset + w.n_rxn]]
            q = jnp.sum(lw * xs, axis=1)
            acc = _add_slice(acc, w.lo, w.hi, w.feed(q))
        return x[:-1]


@dataclasses.dataclass
class AlignedLayout:
    species_order: list[int]  # internal position -> CRN species index
    kinetics_args: dict


def aligned_layout(
    crn, tables, structure, padded_reactants, dtype, density_threshold: float = 0.1
):
    """Build the aligned layout, or return None when some block is consumed by
    more than one reaction (then the generic `LayeredKinetics` is used)."""
    level, comp = structure.level, structure.component
    n = tables.n_species
    n_wf = structure.n_wavefronts
    reactant_lists = tables.reactant_lists
    r_level = np.array(
        [max((level[s] for s in lst), default=-1) for lst in reactant_lists],
        dtype=np.int64,
    )
    if (r_level < 0).any():
        return None  # zero-order reactions: use the generic layout
    net_by_r: list[dict[int, int]] = [dict() for _ in range(tables.n_reactions)]
    for r, s, c in zip(
        tables.net_r.tolist(), tables.net_s.tolist(), tables.net_c.tolist(), strict=True
    ):
        net_by_r[r][s] = c
    members: dict[int, list[int]] = {}
    for v in range(n):
        members.setdefault(int(comp[v]), []).append(v)
    # the block of a reaction: the component of its own (same-wavefront) entries,
    # else of its latest reactant
    block_rxns: dict[int, list[int]] = {}
    for r in range(tables.n_reactions):
        w = r_level[r]
        own = [s for s in net_by_r[r] if level[s] == w]
        comps = {int(comp[s]) for s in own}
        if not comps:
            latest = [s for s in reactant_lists[r] if level[s] == w]
            comps = {int(comp[latest[0]])}
        if len(comps) != 1:
            return None
        c = comps.pop()
        # reactants at this wavefront must belong to the block
        if any(level[s] == w and int(comp[s]) != c for s in reactant_lists[r]):
            return None
        block_rxns.setdefault(c, []).append(r)
    if any(len(v) > 1 for v in block_rxns.values()):
        return None
    order: list[int] = []
    rxn_order: list[int] = []
    waves_info = []
    pos_of: dict[int, int] = {}
    for w in range(n_wf):
        comps = sorted({int(comp[v]) for v in np.flatnonzero(level == w)})
        pairs = [c for c in comps if len(members[c]) == 2]
        singles = [c for c in comps if len(members[c]) == 1]
        if any(c not in block_rxns for c in pairs):
            return None
        singles_rxn = [c for c in singles if c in block_rxns]
        singles_none = [c for c in singles if c not in block_rxns]
        blocks = pairs + singles_rxn + singles_none
        off = len(order)
        firsts = [sorted(members[c])[0] for c in blocks]
        seconds = [sorted(members[c])[1] for c in pairs]
        for k, v in enumerate(firsts + seconds):
            pos_of[v] = off + k
        order.extend(firsts + seconds)
        rxn_off = len(rxn_order)
        rxns = [block_rxns[c][0] for c in pairs + singles_rxn]
        rxn_order.extend(rxns)
        waves_info.append(
            (off, len(blocks), len(pairs), rxns, rxn_off, firsts, seconds)
        )
    assert len(order) == n
    k_order = padded_reactants.shape[1]
    reactant_index = np.full((len(rxn_order), k_order), n, dtype=np.int32)
    for i, r in enumerate(rxn_order):
        for j, s in enumerate(padded_reactants[r]):
            reactant_index[i, j] = n if s >= n else pos_of[int(s)]
    waves = []
    for w, (off, nb, npairs, rxns, rxn_off, firsts, seconds) in enumerate(waves_info):
        nr = len(rxns)
        c1 = np.zeros(nr)
        c2 = np.zeros(npairs)
        fm = np.zeros((nr, k_order))
        sm = np.zeros((npairs, k_order))
        em = np.zeros((nr, k_order))
        entries = []
        for i, r in enumerate(rxns):
            first = firsts[i]
            c1[i] = net_by_r[r].get(first, 0)
            if i < npairs:
                c2[i] = net_by_r[r].get(seconds[i], 0)
            for j, s in enumerate(padded_reactants[r].tolist()):
                if s >= n:
                    continue
                if s == first:
                    fm[i, j] = 1.0
                elif i < npairs and s == seconds[i]:
                    sm[i, j] = 1.0
                elif level[s] < w:
                    em[i, j] = 1.0
                else:
                    return None
            for s, c in net_by_r[r].items():
                if level[s] > w:
                    entries.append((i, pos_of[s], c))
                elif level[s] < w:
                    return None
        if entries:
            lo = min(e[1] for e in entries)
            hi = max(e[1] for e in entries) + 1
        else:
            lo = hi = off + nb + npairs
        rows = np.array([e[0] for e in entries], np.int32)
        cols = np.array([e[1] - lo for e in entries], np.int32)
        vals = np.array([e[2] for e in entries], np.float64)
        dense = coo = None
        if nr and entries and len(entries) / (nr * (hi - lo)) >= density_threshold:
            dense = np.zeros((nr, hi - lo))
            np.add.at(dense, (rows, cols), vals)
        elif entries:
            coo = (rows, cols, vals)
        waves.append(
            _AWave(
                offset=off,
                n_blocks=nb,
                n_pairs=npairs,
                n_rxn=nr,
                rxn_offset=rxn_off,
                lo=int(lo),
                hi=int(hi),
                has_mixed=bool(em.any()),
                c1=jnp.asarray(c1, dtype),
                c2=jnp.asarray(c2, dtype),
                first_mask=jnp.asarray(fm, dtype),
                second_mask=jnp.asarray(sm, dtype),
                early_mask=jnp.asarray(em, dtype) if em.any() else None,
                dense=None if dense is None else jnp.asarray(dense, dtype),
                coo_row=None if coo is None else jnp.asarray(coo[0]),
                coo_col=None if coo is None else jnp.asarray(coo[1]),
                coo_val=None if coo is None else jnp.asarray(coo[2], dtype),
            )
        )
    # first wavefront: pure decays?
    decay = None
    w0 = waves_info[0]
    produced = set(tables.prod_s[tables.prod_c > 0].tolist())
    first_species = [order[k] for k in range(w0[0], w0[0] + w0[1] + w0[2])]
    rxns0 = w0[3]
    if (
        n_wf > 1
        and rxns0
        and w0[2] == 0
        and not (set(first_species) & produced)
        and all(len(reactant_lists[r]) == 1 for r in rxns0)
        and not any(
            level[v] == 0
            for r in range(tables.n_reactions)
            if r_level[r] > 0
            for v in reactant_lists[r]
        )
    ):
        decay = (
            jnp.arange(w0[0], w0[0] + len(rxns0), dtype=jnp.int32),
            jnp.arange(w0[4], w0[4] + len(rxns0), dtype=jnp.int32),
        )
    kin = AlignedLayeredKinetics(
        reactant_index=jnp.asarray(reactant_index),
        rxn_perm=jnp.asarray(np.asarray(rxn_order, np.int32)),
        waves=tuple(waves),
        decay_species=None if decay is None else decay[0],
        decay_rxn=None if decay is None else decay[1],
        n_species=n,
        n_reactions=tables.n_reactions,
    )
    return order, kin
