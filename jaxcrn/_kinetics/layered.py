"""The layered layout: feed-forward networks, every operation a slice.

A network is layered when every strongly connected group of species has at most
two members (`layered_structure`), as in every CRN compiled from a neural network:
the species fall into wavefronts of 1x1 and 2x2 blocks (the ReLU's `M`, `A-` pair),
and the Jacobian is block lower-triangular. When, in addition, every block is
consumed by at most one reaction (Algorithms 1 and 2 produce such networks), the
species can be *aligned*: stored wavefront by wavefront, inside a wavefront first
the first members of its blocks (pair blocks, then single blocks with a reaction,
then blocks without one), then the second members of the pair blocks, and the
reactions in the same block order. Then

- every block-local operation (own stoichiometry, the 2x2 Jacobian blocks and their
  inverses) is elementwise on a contiguous band of rows,
- each wavefront's fan-out into later species is a small matrix product, or a few
  gathers when its rows have few sources,
- and `(lam*I - J) x = b` is solved exactly by block forward substitution at about
  the cost of one right-hand side, with no Jacobian and no LU.

Arrays are species-major, `(species, lanes)`: the whole batch moves through the
same slices.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._base import AbstractKinetics, host_array
from ._structure import LayeredStructure, Stoichiometry


__all__ = ["LayeredKinetics", "aligned_order"]

# a reactant slot of a wavefront's reactions: runs of contiguous state rows (and
# of the constant 1 of padding slots), all padding, or rows gathered by index
_SLICE, _ONE, _GATHER = 0, 1, 2
# more runs than this and rows are gathered instead
MAX_RUNS = 4
# the role of a slot in the wavefront's own 2x2 blocks, per reaction: all reactions
# the same (mask omitted) or mixed (a 0/1 column)
_ALL, _NONE, _MIXED = 0, 1, 2


# ---------------------------------------------------------------------------------
# Host side: the aligned order and each wavefront's tables.


class _HostWave:
    """One wavefront of the aligned layout (NumPy)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def aligned_order(tables: Stoichiometry, structure: LayeredStructure):
    """The aligned species and reaction orders of a layered network, and its
    wavefronts; None when some block is consumed by more than one reaction (or the
    network has zero-order reactions), so the network cannot be aligned.

    Returns `(species_order, reaction_order, waves)`: internal position -> index in
    `tables`, for species and reactions."""
    assert structure.level is not None and structure.component is not None
    level, comp = structure.level, structure.component
    n = tables.n_species
    reactant_lists = tables.reactants
    r_level = np.array(
        [max((level[s] for s in lst), default=-1) for lst in reactant_lists],
        dtype=np.int64,
    )
    if (r_level < 0).any():
        return None  # zero-order reactions
    net_by_r = tables.net_by_reaction()
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
        if any(level[s] == w and int(comp[s]) != c for s in reactant_lists[r]):
            return None
        block_rxns.setdefault(c, []).append(r)
    if any(len(v) > 1 for v in block_rxns.values()):
        return None
    order: list[int] = []
    rxn_order: list[int] = []
    waves_info = []
    pos_of: dict[int, int] = {}
    for w in range(structure.n_wavefronts):
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
    padded = tables.padded_reactants()
    k_order = padded.shape[1]
    reactant_index = np.full((len(rxn_order), k_order), n, dtype=np.int64)
    for i, r in enumerate(rxn_order):
        for j, s in enumerate(padded[r]):
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
            for j, s in enumerate(padded[r].tolist()):
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
        feed = np.zeros((hi - lo, nr))  # (targets, reactions)
        for i, t, c in entries:
            feed[t - lo, i] += c
        waves.append(
            _HostWave(
                offset=off,
                n_blocks=nb,
                n_pairs=npairs,
                n_rxn=nr,
                rxn_offset=rxn_off,
                lo=int(lo),
                hi=int(hi),
                c1=c1,
                c2=c2,
                first_mask=fm,
                second_mask=sm,
                early_mask=em,
                feed=feed,
                reactant_index=reactant_index[rxn_off : rxn_off + nr],
            )
        )
    return np.asarray(order, np.int64), np.asarray(rxn_order, np.int64), waves


# ---------------------------------------------------------------------------------
# Species-major kinetics.


def _runs(idx: np.ndarray, pad: int = -2) -> tuple[tuple[int, int], ...] | None:
    """`idx` as maximal runs `(start, length)` of consecutive rows (`start = -1`:
    a run of `pad` entries, the constant 1 of padding slots); None when there are
    more than `MAX_RUNS` runs."""
    runs: list[list[int]] = []
    for i in idx.tolist():
        i = -1 if i == pad else i
        if runs and runs[-1][0] == -1 and i == -1:
            runs[-1][1] += 1
        elif runs and i != -1 and runs[-1][0] != -1 and runs[-1][0] + runs[-1][1] == i:
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    if len(runs) > MAX_RUNS:
        return None
    return tuple((a, b) for a, b in runs)


def _mask_kind(col: np.ndarray) -> int:
    if (col == 1).all():
        return _ALL
    if (col == 0).all():
        return _NONE
    return _MIXED


def _take_rows(q, runs, idx):
    if runs is None:
        return q[idx]
    parts = [q[a : a + b] for a, b in runs]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


class _Block(eqx.Module):
    """One block of a fan-out: rows `[lo, hi)` of the state receive from reactions
    `[c0, c1)` of the wavefront, as `dense @ q[c0:c1]` (a matrix product) or, when
    each row has few sources, `sum_k coef[:, k] * q[src[:, k]]` (runs of consecutive
    sources sliced, not gathered)."""

    lo: int = eqx.field(static=True)
    hi: int = eqx.field(static=True)
    c0: int = eqx.field(static=True)
    c1: int = eqx.field(static=True)
    runs: tuple[tuple[tuple[int, int], ...] | None, ...] = eqx.field(static=True)
    dense: Float[Array, "rows cols"] | None
    src: Int[Array, "rows K"] | None
    coef: Float[Array, "rows K 1"] | None

    def __call__(self, q: Float[Array, "reactions lanes"]) -> Float[Array, "t lanes"]:
        q = q[self.c0 : self.c1]
        if self.dense is not None:
            return self.dense.astype(q.dtype) @ q
        assert self.src is not None and self.coef is not None
        coef = self.coef.astype(q.dtype)
        out = None
        for k, runs in enumerate(self.runs):
            term = coef[:, k] * _take_rows(q, runs, self.src[:, k])
            out = term if out is None else out + term
        assert out is not None
        return out


def _make_block(d: np.ndarray, lo: int, c0: int, dtype) -> _Block:
    rows, cols = d.shape
    nnz = d != 0
    k = max(int(nnz.sum(axis=1).max(initial=0)), 1)
    if 3 * k < cols:
        src = np.zeros((rows, k), np.int32)
        coef = np.zeros((rows, k, 1))
        for t in range(rows):
            nz = np.flatnonzero(nnz[t])
            src[t, : nz.size] = nz
            coef[t, : nz.size, 0] = d[t, nz]
        runs = tuple(_runs(src[:, j]) for j in range(k))
        return _Block(
            lo,
            lo + rows,
            c0,
            c0 + cols,
            runs,
            None,
            host_array(src),
            host_array(coef, dtype),
        )
    return _Block(lo, lo + rows, c0, c0 + cols, (), host_array(d, dtype), None, None)


def _make_feed(dense_t: np.ndarray, lo: int, cuts: list[int], dtype) -> list[_Block]:
    """The fan-out `dense_t` (targets starting at state row `lo`, reactions) as
    blocks: its rows split at the wavefront boundaries `cuts`, each block's columns
    trimmed to its non-zeros, dense or gathered as is cheaper."""
    targets = dense_t.shape[0]
    edges = sorted({0, targets} | {c - lo for c in cuts if lo < c < lo + targets})
    blocks = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        d = dense_t[a:b]
        nzc = np.flatnonzero((d != 0).any(axis=0))
        if nzc.size == 0:
            continue
        c0, c1 = int(nzc[0]), int(nzc[-1]) + 1
        blocks.append(_make_block(d[:, c0:c1], lo + a, c0, dtype))
    return blocks


class _Wave(eqx.Module):
    offset: int = eqx.field(static=True)  # first state row of the wavefront
    n_blocks: int = eqx.field(static=True)
    n_pairs: int = eqx.field(static=True)
    n_rxn: int = eqx.field(static=True)
    rxn_offset: int = eqx.field(static=True)
    slot_kind: tuple[int, ...] = eqx.field(static=True)
    slot_runs: tuple[tuple[tuple[int, int], ...] | None, ...] = eqx.field(static=True)
    first_kind: tuple[int, ...] = eqx.field(static=True)
    second_kind: tuple[int, ...] = eqx.field(static=True)
    early_kind: tuple[int, ...] = eqx.field(static=True)
    gather: tuple[Int[Array, " n_rxn"] | None, ...] | None
    first_mask: Float[Array, "order n_rxn 1"]
    second_mask: Float[Array, "order n_pairs 1"]
    early_mask: Float[Array, "order n_rxn 1"]
    c1: Float[Array, "n_rxn 1"]
    c2: Float[Array, "n_pairs 1"]
    feed: tuple[_Block, ...] | None

    @property
    def size(self) -> int:
        return self.n_blocks + self.n_pairs

    def slot(self, j: int, y_ext: Array) -> Array | None:
        """Rows of reactant slot `j` for this wavefront's reactions (None: 1)."""
        kind = self.slot_kind[j]
        if kind == _ONE:
            return None
        if kind == _SLICE:
            runs = self.slot_runs[j]
            assert runs is not None
            parts = [
                y_ext[a : a + b]
                if a >= 0
                else jnp.ones((b,) + y_ext.shape[1:], y_ext.dtype)
                for a, b in runs
            ]
            return parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        assert self.gather is not None
        idx = self.gather[j]
        assert idx is not None
        return y_ext[idx]

    def masked_sum(self, kinds, mask, terms, rows):
        out = None
        for j, (kind, term) in enumerate(zip(kinds, terms, strict=True)):
            if kind == _NONE:
                continue
            t = term[:rows] if kind == _ALL else term[:rows] * mask[j][:rows]
            out = t if out is None else out + t
        return out


class LayeredKinetics(AbstractKinetics):
    """Aligned layered kinetics (see the module docstring); species in the aligned
    order, rate constants in the network's reaction order."""

    waves: tuple[_Wave, ...]
    rxn_perm: Int[Array, " reactions"]  # internal reaction -> network reaction
    rxn_inv: Int[Array, " reactions"]  # network reaction -> internal reaction
    tables: Stoichiometry = eqx.field(static=True)  # in the aligned species order
    has_gather: bool = eqx.field(static=True)
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry, structure: LayeredStructure, dtype):
        """`(species_order, kinetics)` for a network that can be aligned, else None:
        the kinetics reads states whose row `i` is species `species_order[i]` of
        `tables` (the aligned order, see `aligned_order`)."""
        aligned = aligned_order(tables, structure)
        if aligned is None:
            return None
        order, rxn_order, hwaves = aligned
        n = tables.n_species
        waves = []
        has_gather = False
        for w in hwaves:
            idx = w.reactant_index
            k_order = idx.shape[1]
            kinds, slot_runs, gathers = [], [], []
            for j in range(k_order):
                col = idx[:, j].astype(np.int64)
                runs = _runs(col, n)
                if not col.size or (col >= n).all():
                    kind = _ONE
                elif runs is not None:
                    kind = _SLICE
                else:
                    kind = _GATHER
                    has_gather = True
                kinds.append(kind)
                slot_runs.append(runs)
                gathers.append(
                    host_array(col.astype(np.int32)) if kind == _GATHER else None
                )
            fm, sm, em = w.first_mask.T, w.second_mask.T, w.early_mask.T
            feed = []
            if w.hi > w.lo and w.n_rxn:
                cuts = [v.offset for v in hwaves]
                feed = _make_feed(w.feed, w.lo, cuts, dtype)
            waves.append(
                _Wave(
                    offset=w.offset,
                    n_blocks=w.n_blocks,
                    n_pairs=w.n_pairs,
                    n_rxn=w.n_rxn,
                    rxn_offset=w.rxn_offset,
                    slot_kind=tuple(kinds),
                    slot_runs=tuple(slot_runs),
                    first_kind=tuple(_mask_kind(c) for c in fm),
                    second_kind=tuple(_mask_kind(c) for c in sm)
                    if w.n_pairs
                    else tuple(_NONE for _ in range(k_order)),
                    early_kind=tuple(_mask_kind(c) for c in em),
                    gather=tuple(gathers) or None,  # no empty tuples in a pytree:
                    first_mask=host_array(fm[:, :, None], dtype),
                    second_mask=host_array(sm[:, :, None], dtype),
                    early_mask=host_array(em[:, :, None], dtype),
                    c1=host_array(w.c1[:, None], dtype),
                    c2=host_array(w.c2[:, None], dtype),
                    feed=tuple(feed) or None,  # diffrax's adjoints reject them
                )
            )
        inv = np.empty(tables.n_reactions, np.int64)
        inv[rxn_order] = np.arange(tables.n_reactions)
        return order, cls(
            waves=tuple(waves),
            rxn_perm=host_array(rxn_order.astype(np.int32)),
            rxn_inv=host_array(inv.astype(np.int32)),
            tables=tables.permuted(order),
            has_gather=has_gather,
            n_species=n,
            n_reactions=tables.n_reactions,
        )

    def _ext(self, y, fill=1.0):
        """`y` with one more row of `fill` (what padding slots gather)."""
        if not self.has_gather:
            return y
        return jnp.concatenate([y, jnp.full((1,) + y.shape[1:], fill, y.dtype)])

    def _fluxes(self, y, kr):
        """Per wavefront, `(reactions, lanes)` fluxes, and the reactant rows."""
        y_ext = self._ext(y)
        lanes = jnp.broadcast_shapes(y.shape[1:], kr.shape[1:])
        out = []
        for w in self.waves:
            k = kr[w.rxn_offset : w.rxn_offset + w.n_rxn]
            rows = [w.slot(j, y_ext) for j in range(len(w.slot_kind))]
            f = k
            for r in rows:
                if r is not None:
                    f = f * r
            out.append((jnp.broadcast_to(f, (w.n_rxn,) + lanes), rows))
        return out

    def _flux(self, y, rates):
        kr = rates[self.rxn_perm]
        f = jnp.concatenate([f for f, _ in self._fluxes(y, kr)])
        return f[self.rxn_inv]

    def _rhs(self, y, rates):
        kr = rates[self.rxn_perm]
        dt = y.dtype
        lanes = y.shape[1:]
        pieces = []
        feeds = []
        for w, (f, _) in zip(self.waves, self._fluxes(y, kr), strict=True):
            own = f * w.c1.astype(dt)
            if w.n_blocks > w.n_rxn:
                own = jnp.concatenate(
                    [own, jnp.zeros((w.n_blocks - w.n_rxn,) + f.shape[1:], dt)]
                )
            pieces.append(own)
            if w.n_pairs:
                pieces.append(f[: w.n_pairs] * w.c2.astype(dt))
            feeds.extend((blk, f) for blk in w.feed or ())
        n = self.n_species
        own = jnp.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        own = jnp.broadcast_to(own, (n,) + jnp.broadcast_shapes(lanes, own.shape[1:]))
        # one concatenation of row segments, each the sum of the contributions
        # that cover it (no scatter, no zero padding): XLA fuses it into few loops
        contrib = [(0, n, own)]
        contrib += [(blk.lo, blk.hi, blk(f)) for blk, f in feeds]
        cuts = sorted({c for lo, hi, _ in contrib for c in (lo, hi)})
        segs = []
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            acc = None
            for a, b, v in contrib:
                if a <= lo and hi <= b:
                    part = v[lo - a : hi - a]
                    acc = part if acc is None else acc + part
            assert acc is not None
            segs.append(acc)
        return segs[0] if len(segs) == 1 else jnp.concatenate(segs)

    def _factor(self, y, rates, lam):
        """Per wavefront, the partial derivatives of its fluxes and the inverses of
        its 2x2 blocks."""
        kr = rates[self.rxn_perm]
        dt = y.dtype
        out = []
        for w, (f, rows) in zip(self.waves, self._fluxes(y, kr), strict=True):
            lanes = f.shape[1:]
            k = kr[w.rxn_offset : w.rxn_offset + w.n_rxn]
            loo = []
            for j in range(len(rows)):
                if rows[j] is None:
                    loo.append(None)
                    continue
                p = k
                for i, r in enumerate(rows):
                    if i != j and r is not None:
                        p = p * r
                loo.append(jnp.broadcast_to(p, (w.n_rxn,) + lanes))
            zero = jnp.zeros((w.n_rxn,) + lanes, dt)
            terms = [zero if v is None else v for v in loo]
            fk = tuple(_NONE if v is None else k_ for v, k_ in zip(loo, w.first_kind))
            d1 = w.masked_sum(fk, w.first_mask, terms, w.n_rxn)
            d1 = zero if d1 is None else d1
            p = w.n_pairs
            c1 = w.c1.astype(dt)
            j11 = c1 * d1
            if w.n_blocks > w.n_rxn:
                j11 = jnp.concatenate(
                    [j11, jnp.zeros((w.n_blocks - w.n_rxn,) + lanes, dt)]
                )
            a = lam - j11
            if p:
                sk = tuple(
                    _NONE if v is None else k_ for v, k_ in zip(loo, w.second_kind)
                )
                d2 = w.masked_sum(sk, w.second_mask, terms, p)
                d2 = jnp.zeros((p,) + lanes, dt) if d2 is None else d2
                c2 = w.c2.astype(dt)
                j12 = c1[:p] * d2
                j21 = c2 * d1[:p]
                j22 = c2 * d2
                d22 = lam - j22
                det = a[:p] * d22 - j12 * j21
                inv = (
                    jnp.concatenate([d22 / det, 1.0 / a[p:]])
                    if w.n_blocks > p
                    else d22 / det,
                    j12 / det,
                    j21 / det,
                    a[:p] / det,
                )
                dpair = d2
            else:
                inv = (1.0 / a, None, None, None)
                dpair = None
            out.append((loo, d1, dpair, inv))
        return out

    def _solve(self, factors, b):
        """Block forward substitution."""
        dt = b.dtype
        acc = b
        xs = []
        for w, (loo, d1, d2, inv) in zip(self.waves, factors, strict=True):
            lanes = jnp.broadcast_shapes(b.shape[1:], d1.shape[1:])
            off = w.offset
            p = w.n_pairs
            early = None
            if any(k != _NONE for k in w.early_kind):
                rest = jnp.zeros((self.n_species - off,) + lanes, dt)
                done = [jnp.broadcast_to(x, (x.shape[0],) + lanes) for x in xs]
                x_ext = self._ext(jnp.concatenate(done + [rest]), 0.0)
                early = []
                for j in range(len(loo)):
                    if loo[j] is None or w.early_kind[j] == _NONE:
                        early.append(jnp.zeros((w.n_rxn,) + lanes, dt))
                        continue
                    early.append(loo[j] * w.slot(j, x_ext))
                q = w.masked_sum(w.early_kind, w.early_mask, early, w.n_rxn)
                upd = q * w.c1.astype(dt)
                if w.n_blocks > w.n_rxn:
                    upd = jnp.concatenate(
                        [upd, jnp.zeros((w.n_blocks - w.n_rxn,) + lanes, dt)]
                    )
                if p:
                    upd = jnp.concatenate([upd, q[:p] * w.c2.astype(dt)])
                acc = acc.at[off : off + w.size].add(upd)
            r0 = acc[off : off + w.n_blocks]
            i11, i12, i21, i22 = inv
            if p:
                r1 = acc[off + w.n_blocks : off + w.size]
                x0 = i11 * r0
                x0 = x0.at[:p].add(i12 * r1)
                x1 = i21 * r0[:p] + i22 * r1
                xs += [x0, x1]
                q = (d1 * x0[: w.n_rxn]).at[:p].add(d2 * x1)
            else:
                x0 = i11 * r0
                xs.append(x0)
                q = d1 * x0[: w.n_rxn]
            if early is not None:
                q = q + w.masked_sum(w.early_kind, w.early_mask, early, w.n_rxn)
            for blk in w.feed or ():
                acc = acc.at[blk.lo : blk.hi].add(blk(q))
        return jnp.concatenate(xs) if len(xs) > 1 else xs[0]
