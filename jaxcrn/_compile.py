"""The compiled array form of a CRN: `MassActionNetwork` and `compile_crn`.

Three interchangeable array layouts ("kinetics") compute the same mass-action
right-hand side; they differ in speed and in how the implicit solvers' linear systems
`(lam*I - J) x = b` are solved:

- `DenseKinetics`: dense `(reactions, species)` stoichiometry, as in the design card.
  Best for small networks and GPUs. Linear solves use a dense LU.
- `SparseKinetics`: reactant concentrations gathered by index and products
  scatter-added (`segment_sum`). Memory linear in the number of non-zeros.
- `LayeredKinetics`: for feed-forward networks (every strongly connected group of
  species has at most 2 members, as in every CRN compiled from a neural network). The
  species fall into wavefronts; each wavefront's reactions feed later wavefronts
  through one dense (or sparse) block, so the right-hand side is a few matrix products
  and `(lam*I - J) x = b` is solved exactly by block forward substitution at about the
  cost of one right-hand-side evaluation (no LU, no dense Jacobian).
"""

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._crn import CRN


__all__ = [
    "DenseKinetics",
    "LayeredKinetics",
    "MassActionNetwork",
    "SparseKinetics",
    "compile_crn",
    "layered_structure",
]

# ---------------------------------------------------------------------------------
# Host-side stoichiometry tables.


@dataclasses.dataclass(frozen=True)
class _Tables:
    n_species: int
    n_reactions: int
    # reactant multiset per reaction, expanded by multiplicity: list of index tuples
    reactant_lists: list[tuple[int, ...]]
    # net stoichiometry in COO form
    net_r: np.ndarray
    net_s: np.ndarray
    net_c: np.ndarray
    # reactant and product stoichiometry in COO form
    reac_r: np.ndarray
    reac_s: np.ndarray
    reac_c: np.ndarray
    prod_r: np.ndarray
    prod_s: np.ndarray
    prod_c: np.ndarray


def _tables(crn: CRN) -> _Tables:
    index = {s: i for i, s in enumerate(crn.species)}
    reactant_lists = []
    reac, prod, net = [], [], []
    for r, rxn in enumerate(crn.reactions):
        lst: list[int] = []
        for s, c in rxn.reactants:
            lst.extend([index[s]] * c)
            reac.append((r, index[s], c))
        reactant_lists.append(tuple(lst))
        for s, c in rxn.products:
            prod.append((r, index[s], c))
        for s, c in rxn.net.items():
            net.append((r, index[s], c))

    def coo(items):
        if not items:
            z = np.zeros(0, np.int64)
            return z, z.copy(), z.copy()
        a = np.asarray(items, dtype=np.int64)
        return a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()

    return _Tables(
        len(crn.species),
        len(crn.reactions),
        reactant_lists,
        *coo(net),
        *coo(reac),
        *coo(prod),
    )


def _padded_reactants(tables: _Tables) -> np.ndarray:
    """(reactions, K) reactant indices with multiplicity; padding points at the
    constant-one slot `n_species`."""
    k = max((len(lst) for lst in tables.reactant_lists), default=0)
    k = max(k, 1)
    out = np.full((tables.n_reactions, k), tables.n_species, dtype=np.int32)
    for r, lst in enumerate(tables.reactant_lists):
        out[r, : len(lst)] = lst
    return out


def _with_one(y: Float[Array, " species"]) -> Float[Array, " species+1"]:
    return jnp.concatenate([y, jnp.ones((1,), y.dtype)])


def _gather_flux(reactant_index, y, rates):
    """Mass-action fluxes `rates * prod_j y[reactant_index[:, j]]` (padding slots
    point at a constant 1, so every flux has finite gradients at y = 0)."""
    return rates * jnp.prod(_with_one(y)[reactant_index], axis=1)


def leave_one_out(
    gathered: Float[Array, "reactions order"], rates: Float[Array, " reactions"]
) -> Float[Array, "reactions order"]:
    """`rates * prod_{i != j} gathered[:, i]` for each slot j: the derivative of
    each mass-action flux with respect to the reactant in slot j."""
    k = gathered.shape[1]
    cols = []
    for j in range(k):
        p = rates
        for i in range(k):
            if i != j:
                p = p * gathered[:, i]
        cols.append(p)
    return jnp.stack(cols, axis=1)


def _with_zero(x: Float[Array, " species"]) -> Float[Array, " species+1"]:
    return jnp.concatenate([x, jnp.zeros((1,), x.dtype)])


# ---------------------------------------------------------------------------------
# Kinetics: the array layouts.


class AbstractKinetics(eqx.Module):
    """Computes mass-action fluxes and right-hand sides for given rate constants."""

    n_species: eqx.AbstractVar[int]
    n_reactions: eqx.AbstractVar[int]

    def flux(
        self, y: Float[Array, " species"], rates: Float[Array, " reactions"]
    ) -> Float[Array, " reactions"]:
        raise NotImplementedError

    def rhs(
        self, y: Float[Array, " species"], rates: Float[Array, " reactions"]
    ) -> Float[Array, " species"]:
        raise NotImplementedError

    def factor(self, y: Float[Array, " species"], rates, lam):
        """Prepare to solve `(lam*I - J(y)) x = b` for several `b`.

        The default materialises the Jacobian with forward-mode autodiff and takes
        a dense LU factorisation (of the matrix without its derivatives: `solve`
        differentiates through the matrix instead).
        """
        jac = jax.jacfwd(lambda z: self.rhs(z, rates))(y)
        n = y.shape[0]
        matrix = lam * jnp.eye(n, dtype=y.dtype) - jac
        return matrix, jsl.lu_factor(jax.lax.stop_gradient(matrix))

    def solve(self, factors, b: Float[Array, " species"]) -> Float[Array, " species"]:
        """Solve `(lam*I - J) x = b` with the output of `factor`.

        Derivatives, forward and reverse, are those of the solution of the linear
        system (`jax.lax.custom_linear_solve`, with the same factorisation), not of
        the LU algorithm: JAX's derivative of an LU factorisation under `vmap` (many
        tangents, as in `jax.jacfwd`) costs ~1 ms per tangent for 22 species on a
        CPU, against ~1 us per tangent here.
        """
        matrix, lu = factors
        return jax.lax.custom_linear_solve(
            lambda x: matrix @ x,
            b,
            solve=lambda _, c: jsl.lu_solve(lu, c),
            transpose_solve=lambda _, c: jsl.lu_solve(lu, c, trans=1),
        )


class DenseKinetics(AbstractKinetics):
    """Dense `(reactions, species)` reactant and product stoichiometry.

    Fluxes gather the reactant concentrations by index (mass action, finite gradients
    at zero concentration); the right-hand side is one matrix product with the net
    stoichiometry `products - reactants`.
    """

    reactants: Int[Array, "reactions species"]
    products: Int[Array, "reactions species"]
    net: Float[Array, "reactions species"]
    reactant_index: Int[Array, "reactions order"]
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    def __check_init__(self):
        if self.products.shape != self.reactants.shape:
            raise ValueError(
                f"`products` has shape {self.products.shape} but `reactants` "
                f"has shape {self.reactants.shape}."
            )

    def flux(self, y, rates):
        return _gather_flux(self.reactant_index, y, rates)

    def rhs(self, y, rates):
        return self.flux(y, rates) @ self.net.astype(y.dtype)


class SparseKinetics(AbstractKinetics):
    """Gather reactants by index (as `DenseKinetics`); scatter-add the net
    stoichiometry (COO)."""

    reactant_index: Int[Array, "reactions order"]
    net_reaction: Int[Array, " nnz"]
    net_species: Int[Array, " nnz"]
    net_coeff: Int[Array, " nnz"]
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    def flux(self, y, rates):
        return _gather_flux(self.reactant_index, y, rates)

    def rhs(self, y, rates):
        f = self.flux(y, rates)
        contrib = f[self.net_reaction] * self.net_coeff.astype(y.dtype)
        return jax.ops.segment_sum(contrib, self.net_species, self.n_species)


class _Block(eqx.Module):
    """The stoichiometry from one wavefront's reactions to later species."""

    reactions: Int[Array, " r"]
    targets: Int[Array, " t"]
    dense: Float[Array, "r t"] | None
    coo_row: Int[Array, " nnz"] | None
    coo_col: Int[Array, " nnz"] | None
    coo_val: Float[Array, " nnz"] | None

    def apply(self, q: Float[Array, " r"]) -> Float[Array, " t"]:
        if self.dense is not None:
            return q @ self.dense.astype(q.dtype)
        assert self.coo_row is not None and self.coo_col is not None
        assert self.coo_val is not None
        return jax.ops.segment_sum(
            q[self.coo_row] * self.coo_val.astype(q.dtype),
            self.coo_col,
            self.targets.shape[0],
        )


class _Wavefront(eqx.Module):
    # 2x2 diagonal blocks of this wavefront (singletons padded with the dummy slot)
    members: Int[Array, "blocks 2"]
    # Jacobian terms inside the blocks: d flux[r] / d y[reactant j] * net[r, row]
    term_reaction: Int[Array, " terms"]
    term_slot: Int[Array, " terms"]  # which reactant position j of that reaction
    term_block: Int[Array, " terms"]
    term_row: Int[Array, " terms"]  # 0 or 1 within the block
    term_col: Int[Array, " terms"]
    term_coeff: Float[Array, " terms"]
    # own-block entries of this wavefront's reactions that also have a reactant in an
    # earlier wavefront (catalysts): their Jacobian columns are off the diagonal
    mixed_reaction: Int[Array, " mixed"] | None
    mixed_species: Int[Array, " mixed"] | None
    mixed_coeff: Float[Array, " mixed"] | None
    # propagation to later wavefronts
    out: _Block


class LayeredKinetics(AbstractKinetics):
    """Feed-forward layout: wavefronts of 1x1/2x2 blocks and dense feed blocks.

    When every species of the first wavefront is a pure first-order decay (never
    produced, consumed only by reactions `X -> ...` with rate constants summing to
    the same value for every such species, as the input layer of every compiled
    network), `forcing` and the `skip_first=True` variants let a solver replace that
    wavefront by its exact solution `X(t) = X(0) exp(-k t)`: its outflow into later
    species becomes the forcing `c exp(-k t)`, removing the largest matrix product
    from every right-hand side and linear solve.
    """

    reactant_index: Int[Array, "reactions order"]
    # species-internal part of the net stoichiometry (within a reaction's own block);
    # the first `n_own_first` entries belong to first-wavefront reactions
    own_reaction: Int[Array, " n_own"]
    own_species: Int[Array, " n_own"]
    own_coeff: Float[Array, " n_own"]
    wavefronts: tuple[_Wavefront, ...]
    zero_order: _Block | None  # reactions with no reactants (0 -> X)
    decay_species: Int[Array, " n_decay"] | None  # first wavefront, if pure decays
    decay_reactions: Int[Array, " n_decay_rxn"] | None
    decay_reactant: Int[Array, " n_decay_rxn"] | None  # position in decay_species
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)
    n_own_first: int = eqx.field(static=True)

    @property
    def first_is_decay(self) -> bool:
        return self.decay_species is not None

    def flux(self, y, rates):
        return _gather_flux(self.reactant_index, y, rates)

    def rhs(self, y, rates, *, skip_first: bool = False):
        f = self.flux(y, rates)
        start = self.n_own_first if skip_first else 0
        dy = jax.ops.segment_sum(
            f[self.own_reaction[start:]] * self.own_coeff[start:].astype(y.dtype),
            self.own_species[start:],
            self.n_species,
        )
        for wf in self.wavefronts[1:] if skip_first else self.wavefronts:
            blk = wf.out
            dy = dy.at[blk.targets].add(blk.apply(f[blk.reactions]))
        if self.zero_order is not None:
            blk = self.zero_order
            dy = dy.at[blk.targets].add(blk.apply(f[blk.reactions]))
        return dy

    def decay_rates(self, rates) -> Float[Array, " n_decay"]:
        """Total first-order decay rate of each first-wavefront species."""
        assert self.decay_reactions is not None and self.decay_species is not None
        assert self.decay_reactant is not None
        return jax.ops.segment_sum(
            rates[self.decay_reactions],
            self.decay_reactant,
            self.decay_species.shape[0],
        )

    def forcing(self, y0, rates) -> Float[Array, " species"]:
        """Outflow of the first wavefront into later species at state `y0`."""
        blk = self.wavefronts[0].out
        f = self.flux(y0, rates)
        return jnp.zeros_like(y0).at[blk.targets].add(blk.apply(f[blk.reactions]))

    def factor(self, y, rates, lam, *, skip_first: bool = False):
        loo = leave_one_out(_with_one(y)[self.reactant_index], rates)
        inv_blocks = []
        for i, wf in enumerate(self.wavefronts):
            nb = wf.members.shape[0]
            jac = jnp.zeros((nb, 2, 2), y.dtype)
            if not (skip_first and i == 0):
                vals = loo[wf.term_reaction, wf.term_slot] * wf.term_coeff.astype(
                    y.dtype
                )
                jac = jac.at[wf.term_block, wf.term_row, wf.term_col].add(vals)
            a = lam - jac[:, 0, 0]
            b = -jac[:, 0, 1]
            c = -jac[:, 1, 0]
            d = lam - jac[:, 1, 1]
            det = a * d - b * c
            inv_blocks.append(jnp.stack([d, -b, -c, a], axis=1) / det[:, None])
        return loo, tuple(inv_blocks)

    def solve(self, factors, b, *, skip_first: bool = False):
        loo, inv_blocks = factors
        acc = b
        x = jnp.zeros(self.n_species + 1, b.dtype)  # last slot: dummy/one padding
        for i, (wf, inv) in enumerate(zip(self.wavefronts, inv_blocks, strict=True)):
            if wf.mixed_reaction is not None:
                assert wf.mixed_species is not None and wf.mixed_coeff is not None
                # x is still zero on this and later wavefronts here
                r = wf.mixed_reaction
                q = jnp.sum(loo[r] * x[self.reactant_index[r]], axis=1)
                acc = acc.at[wf.mixed_species].add(q * wf.mixed_coeff.astype(b.dtype))
            rhs = _with_zero(acc)[wf.members]  # (blocks, 2)
            x0 = inv[:, 0] * rhs[:, 0] + inv[:, 1] * rhs[:, 1]
            x1 = inv[:, 2] * rhs[:, 0] + inv[:, 3] * rhs[:, 1]
            x = x.at[wf.members[:, 0]].set(x0)
            x = x.at[wf.members[:, 1]].set(x1)
            x = x.at[-1].set(0.0)
            if skip_first and i == 0:
                continue
            blk = wf.out
            q = jnp.sum(loo[blk.reactions] * x[self.reactant_index[blk.reactions]], 1)
            acc = acc.at[blk.targets].add(blk.apply(q))
        return x[:-1]


# ---------------------------------------------------------------------------------
# Structure analysis for the layered layout.


@dataclasses.dataclass(frozen=True)
class LayeredStructure:
    """Result of `layered_structure`: wavefront of each species, or why not layered."""

    ok: bool
    reason: str
    level: np.ndarray | None = None  # wavefront index per species
    component: np.ndarray | None = None  # strongly connected component per species

    @property
    def n_wavefronts(self) -> int:
        return 0 if self.level is None else int(self.level.max(initial=-1)) + 1


def _scc(n: int, adj: list[list[int]]) -> np.ndarray:
    """Tarjan's strongly connected components, iterative. Returns component ids in
    reverse topological order of discovery."""
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    comp = np.full(n, -1, dtype=np.int64)
    counter = 0
    ncomp = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            recurse = False
            nbrs = adj[v]
            while i < len(nbrs):
                w = nbrs[i]
                i += 1
                if index[w] == -1:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp[w] = ncomp
                    if w == v:
                        break
                ncomp += 1
            if work:
                u, _ = work[-1]
                low[u] = min(low[u], low[v])
    return comp


def layered_structure(crn: CRN, *, max_block: int = 2) -> LayeredStructure:
    """Check whether `crn` is feed-forward enough for `LayeredKinetics`.

    Species `a` depends on `b` when some reaction has `b` as a reactant and changes
    `a`. The network is layered when every strongly connected group of this relation
    has at most `max_block` species; the wavefront of a species is the length of the
    longest dependency chain leading to it.

    Example:
        >>> from jaxcrn import parse_crn
        >>> s = layered_structure(parse_crn("A -> B\\nB + C -> D"))
        >>> s.ok, s.level.tolist()
        (True, [0, 1, 1, 2])
        >>> layered_structure(parse_crn("A -> B\\nB -> C\\nC -> A")).ok
        False
    """
    tables = _tables(crn)
    n = tables.n_species
    net_by_r: dict[int, list[int]] = {}
    for r, s in zip(tables.net_r.tolist(), tables.net_s.tolist(), strict=True):
        net_by_r.setdefault(r, []).append(s)
    adj_sets: list[set[int]] = [set() for _ in range(n)]
    for r, lst in enumerate(tables.reactant_lists):
        for b in set(lst):
            for a in net_by_r.get(r, ()):
                if a != b:
                    adj_sets[b].add(a)
    adj = [sorted(s) for s in adj_sets]
    comp = _scc(n, adj)
    sizes = np.bincount(comp, minlength=int(comp.max(initial=-1)) + 1)
    if sizes.size and sizes.max() > max_block:
        big = int(np.argmax(sizes))
        members = [crn.species[i] for i in np.flatnonzero(comp == big)[:6]]
        return LayeredStructure(
            False,
            f"species {', '.join(members)}{'...' if sizes[big] > 6 else ''} depend on "
            f"each other in a cycle of {sizes[big]} species (at most {max_block} "
            "allowed); the network is not feed-forward",
        )
    # Tarjan numbers components in reverse topological order: process from last.
    ncomp = sizes.size
    comp_level = np.zeros(ncomp, dtype=np.int64)
    members_of: list[list[int]] = [[] for _ in range(ncomp)]
    for v in range(n):
        members_of[comp[v]].append(v)
    for c in range(ncomp - 1, -1, -1):
        lvl = comp_level[c]
        for v in members_of[c]:
            for w in adj[v]:
                cw = comp[w]
                if cw != c and comp_level[cw] < lvl + 1:
                    comp_level[cw] = lvl + 1
    return LayeredStructure(True, "", comp_level[comp], comp)


def _make_block(
    reactions: np.ndarray,
    entries: list[tuple[int, int, int]],
    dtype,
    density_threshold: float,
) -> _Block:
    """`entries`: (local reaction row, global species, coefficient)."""
    targets = np.array(sorted({s for _, s, _ in entries}), dtype=np.int32)
    col = {s: i for i, s in enumerate(targets.tolist())}
    nr, nt = len(reactions), len(targets)
    rows = np.array([e[0] for e in entries], dtype=np.int32)
    cols = np.array([col[e[1]] for e in entries], dtype=np.int32)
    vals = np.array([e[2] for e in entries], dtype=np.float64)
    density = len(entries) / max(nr * nt, 1)
    if density >= density_threshold:
        dense = np.zeros((nr, nt), dtype=np.float64)
        np.add.at(dense, (rows, cols), vals)
        return _Block(
            jnp.asarray(reactions, jnp.int32),
            jnp.asarray(targets),
            jnp.asarray(dense, dtype),
            None,
            None,
            None,
        )
    return _Block(
        jnp.asarray(reactions, jnp.int32),
        jnp.asarray(targets),
        None,
        jnp.asarray(rows),
        jnp.asarray(cols),
        jnp.asarray(vals, dtype),
    )


def _layered_kinetics(
    crn: CRN,
    tables: _Tables,
    structure: LayeredStructure,
    dtype,
    density_threshold: float = 0.1,
) -> LayeredKinetics:
    assert structure.level is not None and structure.component is not None
    n = tables.n_species
    level, comp = structure.level, structure.component
    reactant_index = _padded_reactants(tables)
    # wavefront of each reaction: the latest wavefront among its reactants
    r_level = np.array(
        [max((level[s] for s in lst), default=-1) for lst in tables.reactant_lists],
        dtype=np.int64,
    )
    n_wf = structure.n_wavefronts
    # blocks: the components, grouped by wavefront
    comp_members: dict[int, list[int]] = {}
    for v in range(n):
        comp_members.setdefault(int(comp[v]), []).append(v)
    own_r, own_s, own_c = [], [], []
    own_first: list[tuple[int, int, int]] = []
    per_wf_entries: list[list[tuple[int, int, int]]] = [[] for _ in range(n_wf)]
    source_entries: list[tuple[int, int, int]] = []
    for r, s, c in zip(
        tables.net_r.tolist(), tables.net_s.tolist(), tables.net_c.tolist(), strict=True
    ):
        lr = r_level[r]
        if lr == 0 and level[s] == 0:
            own_first.append((r, s, c))
        elif lr >= 0 and level[s] == lr:
            own_r.append(r)
            own_s.append(s)
            own_c.append(c)
        elif lr >= 0:
            assert level[s] > lr, "stoichiometry into an earlier wavefront"
            per_wf_entries[lr].append((r, s, c))
        else:
            source_entries.append((r, s, c))
    n_own_first = len(own_first)
    own_r = [e[0] for e in own_first] + own_r
    own_s = [e[1] for e in own_first] + own_s
    own_c = [e[2] for e in own_first] + own_c
    wavefronts = []
    for w in range(n_wf):
        comps = sorted({int(comp[v]) for v in np.flatnonzero(level == w)})
        members = np.full((len(comps), 2), n, dtype=np.int32)
        block_of = {}
        pos_in_block = {}
        for b, c in enumerate(comps):
            for i, v in enumerate(sorted(comp_members[c])):
                members[b, i] = v
                block_of[v] = b
                pos_in_block[v] = i
        rxns = np.flatnonzero(r_level == w)
        # Jacobian terms within blocks: row species a (own entries of reaction r),
        # column species = reactant at slot j (must be in the same block).
        t_r, t_slot, t_blk, t_row, t_col, t_coeff = [], [], [], [], [], []
        for r, s, c in zip(own_r, own_s, own_c, strict=True):
            if r_level[r] != w:
                continue
            for j, b_sp in enumerate(reactant_index[r].tolist()):
                if b_sp >= n or level[b_sp] != w:
                    continue
                if block_of[b_sp] != block_of[s]:
                    raise AssertionError("a reaction couples two blocks of a wavefront")
                t_r.append(r)
                t_slot.append(j)
                t_blk.append(block_of[s])
                t_row.append(pos_in_block[s])
                t_col.append(pos_in_block[b_sp])
                t_coeff.append(c)
        mixed_r, mixed_s, mixed_c = [], [], []
        for r, s, c in zip(own_r, own_s, own_c, strict=True):
            if r_level[r] == w and any(
                b_sp < n and level[b_sp] < w for b_sp in reactant_index[r].tolist()
            ):
                mixed_r.append(r)
                mixed_s.append(s)
                mixed_c.append(c)
        local = {int(r): i for i, r in enumerate(rxns.tolist())}
        entries = [(local[r], s, c) for r, s, c in per_wf_entries[w]]
        out = _make_block(rxns, entries, dtype, density_threshold)

        def arr(v, dt=jnp.int32):
            return jnp.asarray(np.asarray(v, dtype=np.int64), dt)

        wavefronts.append(
            _Wavefront(
                members=jnp.asarray(members),
                term_reaction=arr(t_r),
                term_slot=arr(t_slot),
                term_block=arr(t_blk),
                term_row=arr(t_row),
                term_col=arr(t_col),
                term_coeff=jnp.asarray(np.asarray(t_coeff, np.float64), dtype),
                mixed_reaction=arr(mixed_r) if mixed_r else None,
                mixed_species=arr(mixed_s) if mixed_r else None,
                mixed_coeff=(
                    jnp.asarray(np.asarray(mixed_c, np.float64), dtype)
                    if mixed_r
                    else None
                ),
                out=out,
            )
        )
    zero_order = None
    src_rxns = np.flatnonzero(r_level < 0)
    if len(src_rxns):
        local = {int(r): i for i, r in enumerate(src_rxns.tolist())}
        zero_order = _make_block(
            src_rxns,
            [(local[r], s, c) for r, s, c in source_entries],
            dtype,
            density_threshold,
        )
    # Is the first wavefront a set of pure first-order decays?
    decay = None
    first = np.flatnonzero(level == 0)
    rxn0 = np.flatnonzero(r_level == 0)
    produced = set(tables.prod_s[tables.prod_c > 0].tolist())
    if (
        n_wf > 1
        and len(src_rxns) == 0
        and len(rxn0)
        and not (set(first.tolist()) & produced)
        and all(len(tables.reactant_lists[r]) == 1 for r in rxn0)
        and not any(
            level[v] == 0
            for r in np.flatnonzero(r_level > 0).tolist()
            for v in tables.reactant_lists[r]
        )
    ):
        first = np.array(
            sorted({tables.reactant_lists[r][0] for r in rxn0}), dtype=np.int64
        )
        pos = {int(v): i for i, v in enumerate(first.tolist())}
        decay = (
            jnp.asarray(first, jnp.int32),
            jnp.asarray(rxn0, jnp.int32),
            jnp.asarray([pos[tables.reactant_lists[r][0]] for r in rxn0], jnp.int32),
        )
    return LayeredKinetics(
        reactant_index=jnp.asarray(reactant_index),
        own_reaction=jnp.asarray(np.asarray(own_r, np.int64), jnp.int32),
        own_species=jnp.asarray(np.asarray(own_s, np.int64), jnp.int32),
        own_coeff=jnp.asarray(np.asarray(own_c, np.float64), dtype),
        wavefronts=tuple(wavefronts),
        zero_order=zero_order,
        decay_species=None if decay is None else decay[0],
        decay_reactions=None if decay is None else decay[1],
        decay_reactant=None if decay is None else decay[2],
        n_species=n,
        n_reactions=tables.n_reactions,
        n_own_first=n_own_first,
    )


# ---------------------------------------------------------------------------------
# The compiled network.


class MassActionNetwork(eqx.Module):
    """A CRN compiled to arrays: mass-action kinetics as a diffrax vector field.

    Call it as `network(t, y, args)` to get `dy/dt` (the signature of
    `diffrax.ODETerm`). The rate constants `rates` and initial concentrations `y_init`
    are array leaves (differentiable); species names and the input/output maps are
    static metadata.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("A + B -> C\\ninit A = 1\\ninit B = 2"))
        >>> net(0.0, net.y_init, None).tolist()
        [-2.0, -2.0, 2.0]
    """

    rates: Float[Array, " reactions"]
    y_init: Float[Array, " species"]
    kinetics: AbstractKinetics
    species: tuple[str, ...] = eqx.field(static=True)
    input_names: tuple[str, ...] = eqx.field(static=True)
    input_pos: tuple[int, ...] = eqx.field(static=True)
    input_neg: tuple[int, ...] = eqx.field(static=True)  # -1: single-rail
    output_names: tuple[str, ...] = eqx.field(static=True)
    output_pos: tuple[int, ...] = eqx.field(static=True)
    output_neg: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self):
        if self.rates.shape != (self.kinetics.n_reactions,):
            raise ValueError(
                f"rates has shape {self.rates.shape} but the network has "
                f"{self.kinetics.n_reactions} reactions."
            )
        if self.y_init.shape != (self.kinetics.n_species,):
            raise ValueError(
                f"y_init has shape {self.y_init.shape} but the network has "
                f"{self.kinetics.n_species} species."
            )

    # -- vector field -------------------------------------------------------------
    autonomous: ClassVar[bool] = True

    def __call__(
        self, t, y: Float[Array, " species"], args
    ) -> Float[Array, " species"]:
        del t, args
        return self.kinetics.rhs(y, self.rates.astype(y.dtype))

    def linear_solver(self, t, y: Float[Array, " species"], lam):
        """`solve(b)` for `(lam*I - J(y)) x = b`; used by `Rodas5P`."""
        del t
        factors = self.kinetics.factor(y, self.rates.astype(y.dtype), lam)
        return lambda b: self.kinetics.solve(factors, b)

    def supports_forcing(self) -> bool:
        """Whether the input layer can be solved exactly (see `ForcedNetwork`):
        layered, first wavefront of pure decays, one common decay rate."""
        kin = self.kinetics
        if not getattr(kin, "first_is_decay", False):
            return False
        decay_rxn = getattr(kin, "decay_rxn", None)
        if decay_rxn is not None:  # aligned layout: on the host (asked per batch)
            k = np.asarray(self.rates)[np.asarray(kin.rxn_perm)][np.asarray(decay_rxn)]
        else:
            k = np.asarray(kin.decay_rates(self.rates))  # pyright: ignore
        k = k[k > 0]
        return k.size > 0 and bool(np.allclose(k, k[0], rtol=1e-12, atol=0))

    def flux(self, y: Float[Array, " species"]) -> Float[Array, " reactions"]:
        """Reaction fluxes `k_r * prod y^reactants` at state `y`."""
        return self.kinetics.flux(y, self.rates.astype(y.dtype))

    # -- sizes and names ----------------------------------------------------------
    @property
    def n_species(self) -> int:
        return self.kinetics.n_species

    @property
    def n_reactions(self) -> int:
        return self.kinetics.n_reactions

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def form(self) -> str:
        from ._aligned import AlignedLayeredKinetics

        return {
            DenseKinetics: "dense",
            SparseKinetics: "sparse",
            LayeredKinetics: "layered",
            AlignedLayeredKinetics: "layered",
        }.get(type(self.kinetics), type(self.kinetics).__name__)

    def index(self, species: str) -> int:
        """Position of a species in the state vector."""
        try:
            return self.species.index(species)
        except ValueError:
            raise KeyError(
                f"No species named {species!r}; the network has {self.n_species} "
                f"species ({', '.join(self.species[:8])}"
                f"{', ...' if self.n_species > 8 else ''})."
            ) from None

    # -- inputs and outputs ---------------------------------------------------------
    def initial_state(
        self,
        x: Float[ArrayLike, " inputs"] | None = None,
        *,
        offset: float | Float[ArrayLike, ""] = 0.0,
        dtype=None,
    ) -> Float[Array, " species"]:
        """Initial concentrations for input vector `x`: `init` values plus the inputs.

        A dual-rail input `x_i = [P] - [N]` sets `[P] = max(x_i, 0) + offset` and
        `[N] = max(-x_i, 0) + offset`; a single-species input sets `[P] = x_i`, which
        must be >= 0 (negative values make the state NaN, and `simulate` flags it).
        The input concentrations add to any `init` value of the same species.

        Arguments:
            x: one input vector, shape `(inputs,)`; None for a network without inputs.
            offset: added to both rails of every dual-rail input (rate-independent
                CRNs compute the same result; it changes how fast they get there).
        """
        dtype = self.y_init.dtype if dtype is None else dtype
        y0 = self.y_init.astype(dtype)
        if self.n_inputs == 0:
            if x is not None and jnp.size(x) != 0:
                raise ValueError(
                    f"x has {jnp.size(x)} entries but the network declares no inputs."
                )
            return y0
        if x is None:
            raise ValueError(
                f"The network has {self.n_inputs} inputs "
                f"({', '.join(self.input_names)}); pass an input vector x."
            )
        x = jnp.asarray(x, dtype)
        if x.shape != (self.n_inputs,):
            raise ValueError(
                f"x has shape {x.shape} but the network has {self.n_inputs} inputs "
                f"({', '.join(self.input_names[:6])}"
                f"{', ...' if self.n_inputs > 6 else ''}); for a batch use "
                "jax.vmap or simulate_batch."
            )
        offset = jnp.asarray(offset, dtype)
        pos = jnp.asarray(self.input_pos)
        neg = np.asarray(self.input_neg)
        dual = neg >= 0
        pos_val = jnp.where(
            jnp.asarray(dual),
            jnp.maximum(x, 0.0) + offset,
            jnp.where(x < 0, jnp.nan, x),
        )
        y0 = y0.at[pos].add(pos_val)
        if dual.any():
            idx = np.flatnonzero(dual)
            y0 = y0.at[jnp.asarray(neg[idx])].add(jnp.maximum(-x[idx], 0.0) + offset)
        return y0

    def read_outputs(
        self, y: Float[Array, "*batch species"]
    ) -> Float[Array, "*batch outputs"]:
        """Output values `[pos] - [neg]` from state(s) `y`."""
        pos = y[..., jnp.asarray(self.output_pos, jnp.int32)]
        neg_idx = np.asarray(self.output_neg)
        if (neg_idx < 0).all():
            return pos
        neg = jnp.where(
            jnp.asarray(neg_idx >= 0), y[..., jnp.asarray(np.maximum(neg_idx, 0))], 0.0
        )
        return pos - neg

    def with_rates(self, rates: Float[ArrayLike, " reactions"]) -> "MassActionNetwork":
        """A copy with new rate constants (same compiled structure, no recompile)."""
        rates = jnp.asarray(rates, self.rates.dtype)
        if rates.shape != self.rates.shape:
            raise ValueError(
                f"rates has {rates.shape[0] if rates.ndim else 'no'} entries but the "
                f"network has {self.n_reactions} reactions."
            )
        return eqx.tree_at(lambda n: n.rates, self, rates)

    # -- dense views ----------------------------------------------------------------
    def stoichiometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense `(reactants, products)` integer matrices, shape (reactions, species).

        Available for the dense layout only; for the others use the CRN.
        """
        if isinstance(self.kinetics, DenseKinetics):
            return np.asarray(self.kinetics.reactants), np.asarray(
                self.kinetics.products
            )
        raise TypeError(
            f"stoichiometry() needs the dense layout; this network is {self.form}. "
            "Compile with compile_crn(crn, form='dense')."
        )


class ForcedNetwork(eqx.Module):
    """A layered network whose input wavefront is solved exactly.

    The first-wavefront species (pure decays with common rate `k`) stay frozen at
    their initial values `X(0)` in the state; their outflow enters the other species
    as the forcing `c exp(-k t)`, `c` the outflow at t=0. `state_at(t, y)` restores
    `X(t) = X(0) exp(-k t)`. Mathematically identical to the network's own vector
    field; the largest feed block drops out of every right-hand side and solve.
    """

    network: MassActionNetwork
    c: Float[Array, " species"]
    decay: Float[Array, ""]
    autonomous: ClassVar[bool] = False

    @classmethod
    def build(cls, network: MassActionNetwork, y0) -> "ForcedNetwork":
        kin = network.kinetics
        assert getattr(kin, "first_is_decay", False)
        rates = network.rates.astype(y0.dtype)
        k = jnp.max(kin.decay_rates(rates))
        return cls(network, kin.forcing(y0, rates), k)

    def __call__(self, t, y, args):
        del args
        kin = self.network.kinetics
        rates = self.network.rates.astype(y.dtype)
        return kin.rhs(y, rates, skip_first=True) + self.c * jnp.exp(-self.decay * t)

    def time_derivative(self, t, y):
        del y
        return -self.decay * self.c * jnp.exp(-self.decay * t)

    def linear_solver(self, t, y, lam):
        del t
        kin = self.network.kinetics
        rates = self.network.rates.astype(y.dtype)
        factors = kin.factor(y, rates, lam, skip_first=True)
        return lambda b: kin.solve(factors, b, skip_first=True)

    def state_at(self, t, y):
        idx = self.network.kinetics.decay_species  # pyright: ignore
        assert idx is not None
        return y.at[idx].set(y[idx] * jnp.exp(-self.decay * t))


def _dense_kinetics(tables: _Tables, dtype) -> DenseKinetics:
    shape = (tables.n_reactions, tables.n_species)
    reac = np.zeros(shape, np.int32)
    prod = np.zeros(shape, np.int32)
    reac[tables.reac_r, tables.reac_s] = tables.reac_c
    prod[tables.prod_r, tables.prod_s] = tables.prod_c
    return DenseKinetics(
        jnp.asarray(reac),
        jnp.asarray(prod),
        jnp.asarray(prod - reac, dtype),
        jnp.asarray(_padded_reactants(tables)),
        tables.n_species,
        tables.n_reactions,
    )


def _sparse_kinetics(tables: _Tables) -> SparseKinetics:
    return SparseKinetics(
        jnp.asarray(_padded_reactants(tables)),
        jnp.asarray(tables.net_r, jnp.int32),
        jnp.asarray(tables.net_s, jnp.int32),
        jnp.asarray(tables.net_c, jnp.int32),
        tables.n_species,
        tables.n_reactions,
    )


# Under form="auto": feed-forward networks with at most this many wavefronts use the
# layered layout (its solve is unrolled per wavefront, so long chains compile slowly);
# other networks up to DENSE_MAX_SPECIES species use the dense layout, larger ones
# the sparse layout (measured: benchmarks/simulate.py).
LAYERED_MAX_WAVEFRONTS = 32
DENSE_MAX_SPECIES = 200


def compile_crn(
    crn: CRN, *, form: str = "auto", dtype=None, aligned_layers: bool = True
) -> MassActionNetwork:
    """Compile a `CRN` to a `MassActionNetwork` (arrays, ready for `simulate`).

    Arguments:
        crn: the symbolic network.
        form: the array layout: `"dense"`, `"sparse"`, `"layered"` (feed-forward
            networks only), or `"auto"`: layered when the network is feed-forward
            with at most 32 wavefronts (every CRN compiled from a neural network
            is), else dense up to 200 species and sparse above.
        dtype: floating dtype of rates and concentrations (default: JAX's default
            float, i.e. float64 when `jax_enable_x64` is on). float32 halves memory
            and is faster on GPUs; use float64 for tolerances below ~1e-6.
        aligned_layers: with the layered layout, store the species in wavefront
            order so that every block operation is a contiguous slice (possible
            when each block is consumed by at most one reaction, as in networks
            compiled from neural networks). `network.species` then lists the
            species in that order; use `network.index(name)` to find one.

    Example:
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> net.species, net.form
        (('X', 'Y'), 'layered')
    """
    if not isinstance(crn, CRN):
        raise TypeError(f"compile_crn expects a CRN, got {type(crn).__name__}.")
    if form not in ("auto", "dense", "sparse", "layered"):
        raise ValueError(
            f"form={form!r} is not one of 'auto', 'dense', 'sparse', 'layered'."
        )
    dtype = jnp.zeros(0).dtype if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}.")
    tables = _tables(crn)
    structure = None
    order: list[int] | None = None
    if form == "auto":
        structure = layered_structure(crn)
        if structure.ok and structure.n_wavefronts <= LAYERED_MAX_WAVEFRONTS:
            form = "layered"
        elif tables.n_species <= DENSE_MAX_SPECIES:
            form = "dense"
        else:
            form = "sparse"
    if form == "dense":
        kinetics: AbstractKinetics = _dense_kinetics(tables, dtype)
    elif form == "sparse":
        kinetics = _sparse_kinetics(tables)
    else:
        structure = layered_structure(crn) if structure is None else structure
        if not structure.ok:
            raise ValueError(
                f"form='layered' needs a feed-forward network, but {structure.reason}. "
                "Use form='sparse' or 'dense'."
            )
        from ._aligned import aligned_layout

        aligned = (
            aligned_layout(crn, tables, structure, _padded_reactants(tables), dtype)
            if aligned_layers
            else None
        )
        if aligned is not None:
            order, kinetics = aligned
        else:
            kinetics = _layered_kinetics(crn, tables, structure, dtype)
    species = tuple(crn.species[i] for i in order) if order else crn.species
    index = {s: i for i, s in enumerate(species)}
    y_init = np.zeros(tables.n_species)
    for s, v in crn.init:
        y_init[index[s]] = v
    rates = np.array([r.rate for r in crn.reactions], dtype=np.float64)
    return MassActionNetwork(
        rates=jnp.asarray(rates, dtype),
        y_init=jnp.asarray(y_init, dtype),
        kinetics=kinetics,
        species=species,
        input_names=tuple(s.name for s in crn.inputs),
        input_pos=tuple(index[s.pos] for s in crn.inputs),
        input_neg=tuple(-1 if s.neg is None else index[s.neg] for s in crn.inputs),
        output_names=tuple(s.name for s in crn.outputs),
        output_pos=tuple(index[s.pos] for s in crn.outputs),
        output_neg=tuple(-1 if s.neg is None else index[s.neg] for s in crn.outputs),
    )
