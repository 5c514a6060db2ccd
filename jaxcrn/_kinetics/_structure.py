"""Host-side structure of a network: stoichiometry tables, the Jacobian's sparsity
pattern, the feed-forward (layered) analysis and the species that decay freely.

Everything here is NumPy and runs once per network, before any array is traced.
"""

import dataclasses
import functools

import numpy as np

from .._crn import CRN


__all__ = ["LayeredStructure", "Stoichiometry", "layered_structure"]


def _coo(items: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    if not items:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy()
    a = np.asarray(items, dtype=np.int64)
    return a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()


def _cycles(edges: dict[int, set[int]]) -> list[list[int]]:
    """The strongly connected sets of two or more nodes of a directed graph
    (Tarjan's algorithm, iterative)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on: set[int] = set()
    out: list[list[int]] = []
    nodes = set(edges) | {v for t in edges.values() for v in t}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


@dataclasses.dataclass(frozen=True)
class GrowthTerms:
    """`Stoichiometry.growth_terms`: the species that can grow by catalysis, the
    terms of each (`rows`, padded with the number of terms: a zero term), and per
    term its reaction, its coefficient `net * multiplicity` and the reaction's
    other reactants (padded with the number of species, a constant-one slot).
    Tuples, so that it is hashable by content (static metadata of a layout)."""

    species: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]
    reaction: tuple[int, ...]
    coef: tuple[float, ...]
    others: tuple[tuple[int, ...], ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Stoichiometry:
    """The stoichiometry of a network as NumPy tables (host side).

    Hashable and compared by content, so it can be static metadata of a compiled
    network: two networks compiled from the same CRN share their compilations.

    Attributes:
        n_species, n_reactions: sizes.
        reactants: per reaction, its reactant species with multiplicity
            (`2 A + B` is `(a, a, b)`), indices into the species.
        net_r, net_s, net_c: the net stoichiometry (products - reactants) in COO
            form: reaction, species, coefficient; zero entries left out.
        reac_r, reac_s, reac_c / prod_r, prod_s, prod_c: reactant and product
            coefficients in COO form.
    """

    n_species: int
    n_reactions: int
    reactants: tuple[tuple[int, ...], ...]
    net_r: np.ndarray
    net_s: np.ndarray
    net_c: np.ndarray
    reac_r: np.ndarray
    reac_s: np.ndarray
    reac_c: np.ndarray
    prod_r: np.ndarray
    prod_s: np.ndarray
    prod_c: np.ndarray

    @classmethod
    def from_crn(cls, crn: CRN, species: tuple[str, ...] | None = None):
        """Tables of `crn` with species numbered as in `species` (default
        `crn.species`)."""
        species = crn.species if species is None else species
        index = {s: i for i, s in enumerate(species)}
        reactant_lists, reac, prod, net = [], [], [], []
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
        return cls(
            len(species),
            len(crn.reactions),
            tuple(reactant_lists),
            *_coo(net),
            *_coo(reac),
            *_coo(prod),
        )

    @classmethod
    def from_arrays(cls, reactant_index: np.ndarray, net: np.ndarray):
        """Tables from a padded reactant index `(reactions, order)` (padding: the
        number of species) and the net stoichiometry `(species, reactions)`."""
        n, r = net.shape
        reactants = tuple(
            tuple(int(s) for s in row if s < n) for row in np.asarray(reactant_index)
        )
        reac = np.zeros((r, n), np.int64)
        for i, lst in enumerate(reactants):
            for s in lst:
                reac[i, s] += 1
        net_rs = np.rint(np.asarray(net).T).astype(np.int64)
        prod = net_rs + reac

        def coo(m):
            rr, ss = np.nonzero(m)
            return rr.astype(np.int64), ss.astype(np.int64), m[rr, ss].astype(np.int64)

        return cls(n, r, reactants, *coo(net_rs), *coo(reac), *coo(prod))

    # -- identity -----------------------------------------------------------------
    def _key(self):
        return (
            self.n_species,
            self.n_reactions,
            self.reactants,
            *(a.tobytes() for a in self._arrays()),
        )

    def _arrays(self):
        return (
            self.net_r,
            self.net_s,
            self.net_c,
            self.reac_r,
            self.reac_s,
            self.reac_c,
            self.prod_r,
            self.prod_s,
            self.prod_c,
        )

    @functools.cached_property
    def _hash(self) -> int:
        return hash(self._key())

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, Stoichiometry) or hash(self) != hash(other):
            return False
        return self._key() == other._key()

    # -- views ----------------------------------------------------------------------
    @property
    def max_order(self) -> int:
        """The largest number of reactant molecules of a reaction (at least 1)."""
        return max([len(r) for r in self.reactants] + [1])

    def padded_reactants(self) -> np.ndarray:
        """`(reactions, max_order)` reactant indices with multiplicity; unused slots
        point at `n_species` (a constant-one slot)."""
        out = np.full((self.n_reactions, self.max_order), self.n_species, np.int32)
        for r, lst in enumerate(self.reactants):
            out[r, : len(lst)] = lst
        return out

    @functools.cached_property
    def growth_terms(self) -> "GrowthTerms | None":
        """A row-sum bound on how fast the species that catalyse their own
        production can grow, term by term; None where nothing can (no reaction
        makes more of one of its reactants, no cycle of catalysts).

        A species `i` grows through catalysis when a reaction that consumes it
        makes more of it (`A + B -> 2 B`: `dJ_BB = k A > 0`), or through a cycle of
        catalysts: reactions whose reactant `j` is not consumed make `i` (`X -> X +
        Y`, `Y -> Y + X`: no diagonal entry, the eigenvalue `k`). For those
        species `g_i = J_ii + sum of the catalytic entries C_ij` over the other
        species `j` of its cycle (a strongly connected set of the graph `j -> i`),
        `C_ij = net[r, i] * dv_r/dy_j`: a Gershgorin bound on the growth rate of
        the catalytic part of the Jacobian. A cycle of first-order conversions
        that multiply molecules (`A -> 2 B`, `B -> 2 A`) adds, per species `j`,
        the column sum of its constant block: `sum_r k_r * (the cycle's molecules
        one reaction r of j makes, net)`. Each term: `coef * k_r * prod(the
        reaction's other reactants)`."""
        net = {
            (int(r), int(sp)): int(c)
            for r, sp, c in zip(self.net_r, self.net_s, self.net_c, strict=True)
        }
        consumers: dict[int, list[int]] = {}
        for r, lst in enumerate(self.reactants):
            for sp in set(lst):
                consumers.setdefault(sp, []).append(r)
        made = {}  # reaction -> species it makes more of
        for (r, sp), c in net.items():
            if c > 0:
                made.setdefault(r, []).append(sp)
        auto = {
            sp
            for sp, rs in consumers.items()
            if any(net.get((r, sp), 0) > 0 for r in rs)
        }
        # catalytic edges j -> i: j a reactant of r that r does not consume
        edges: dict[int, set[int]] = {}
        for r, lst in enumerate(self.reactants):
            for j in set(lst):
                if net.get((r, j), 0) >= 0:
                    edges.setdefault(j, set()).update(
                        i for i in made.get(r, ()) if i != j
                    )
        cycle_of = {sp: k for k, comp in enumerate(_cycles(edges)) for sp in comp}
        # cycles of first-order reactions (A -> 2 B, B -> 2 A): their Jacobian block
        # is a constant Metzler matrix, bounded by its column sums, the net number
        # of the cycle's molecules one reaction of j makes (0 where they convert
        # without multiplying, as in A <=> B)
        first: dict[int, set[int]] = {}
        for r, lst in enumerate(self.reactants):
            if len(lst) == 1:
                first.setdefault(lst[0], set()).update(
                    i for i in made.get(r, ()) if i != lst[0]
                )
        multiplying = []
        for comp in _cycles(first):
            members = set(comp)
            for j in comp:
                gains = [
                    (r, sum(net.get((r, i), 0) for i in members))
                    for r in consumers.get(j, ())
                    if len(self.reactants[r]) == 1
                ]
                if any(c > 0 for _, c in gains):
                    multiplying.append((j, [(r, c) for r, c in gains if c]))
        species = sorted(auto | set(cycle_of))
        if not species and not multiplying:
            return None
        slot, rxn, coef, others = [], [], [], []

        def term(a, r, c, j):
            rest = list(self.reactants[r])
            m = rest.count(j)
            rest.remove(j)
            slot.append(a)
            rxn.append(r)
            coef.append(float(c * m))
            others.append(rest)

        for a, i in enumerate(species):
            for r in consumers.get(i, ()):  # the diagonal entry J_ii
                if net.get((r, i), 0):
                    term(a, r, net[(r, i)], i)
            if i in cycle_of:  # the catalytic entries from its cycle
                for j, targets in edges.items():
                    if j != i and i in targets and cycle_of.get(j) == cycle_of[i]:
                        for r in consumers[j]:
                            if net.get((r, j), 0) >= 0 and net.get((r, i), 0) > 0:
                                term(a, r, net[(r, i)], j)
        for j, gains in multiplying:  # a slot of its own: a column, not a row, sum
            species.append(j)
            for r, c in gains:
                term(len(species) - 1, r, c, j)
        width = max([len(o) for o in others] + [1])
        table = np.full((len(others), width), self.n_species, np.int32)
        for k, o in enumerate(others):
            table[k, : len(o)] = o
        per = [[k for k, a in enumerate(slot) if a == b] for b in range(len(species))]
        rows = np.full((len(species), max(map(len, per))), len(slot), np.int32)
        for b, ks in enumerate(per):
            rows[b, : len(ks)] = ks
        return GrowthTerms(
            tuple(species),
            tuple(map(tuple, rows.tolist())),
            tuple(rxn),
            tuple(coef),
            tuple(map(tuple, table.tolist())),
        )

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense `(reactants, products)` coefficient matrices, `(reactions,
        species)`."""
        shape = (self.n_reactions, self.n_species)
        reac = np.zeros(shape, np.int64)
        prod = np.zeros(shape, np.int64)
        reac[self.reac_r, self.reac_s] = self.reac_c
        prod[self.prod_r, self.prod_s] = self.prod_c
        return reac, prod

    def net_by_reaction(self) -> list[dict[int, int]]:
        out: list[dict[int, int]] = [dict() for _ in range(self.n_reactions)]
        for r, s, c in zip(
            self.net_r.tolist(), self.net_s.tolist(), self.net_c.tolist(), strict=True
        ):
            out[r][s] = c
        return out

    @functools.cached_property
    def jacobian_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The analytic Jacobian as a sum of terms: `J[row, col] += coeff *
        d flux[reaction] / d (reactant slot)`, one term per (reaction, reactant slot,
        species the reaction changes). Returns `(reaction, slot, row, coeff)`; the
        column of a term is `padded_reactants()[reaction, slot]`."""
        net = self.net_by_reaction()
        terms = []
        for r, lst in enumerate(self.reactants):
            for slot in range(len(lst)):
                for row, c in net[r].items():
                    terms.append((r, slot, row, c))
        if not terms:
            z = np.zeros(0, np.int64)
            return z, z.copy(), z.copy(), z.copy()
        a = np.asarray(terms, np.int64)
        return a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(), a[:, 3].copy()

    def jacobian_pattern(self) -> np.ndarray:
        """`(nnz, 2)` sorted `(row, col)` positions where the Jacobian can be
        non-zero."""
        r, slot, row, _ = self.jacobian_terms
        col = self.padded_reactants()[r, slot] if r.size else np.zeros(0, np.int64)
        pairs = np.unique(np.stack([row, col], axis=1).astype(np.int64), axis=0)
        return pairs.reshape(-1, 2)

    def restrict(self, keep_species: np.ndarray, keep_reactions: np.ndarray):
        """The tables of the sub-network of `keep_reactions` on `keep_species`
        (renumbered in the given order). Every species of a kept reaction must be
        kept."""
        s_new = -np.ones(self.n_species, np.int64)
        s_new[keep_species] = np.arange(len(keep_species))
        r_new = -np.ones(self.n_reactions, np.int64)
        r_new[keep_reactions] = np.arange(len(keep_reactions))

        def sub(rr, ss, cc):
            m = r_new[rr] >= 0
            if (s_new[ss[m]] < 0).any():
                raise ValueError("a kept reaction involves a dropped species")
            return r_new[rr[m]], s_new[ss[m]], cc[m]

        reactants = []
        for r in keep_reactions.tolist():
            lst = [int(s_new[s]) for s in self.reactants[r]]
            if min(lst, default=0) < 0:
                raise ValueError("a kept reaction involves a dropped species")
            reactants.append(tuple(lst))
        return Stoichiometry(
            len(keep_species),
            len(keep_reactions),
            tuple(reactants),
            *sub(self.net_r, self.net_s, self.net_c),
            *sub(self.reac_r, self.reac_s, self.reac_c),
            *sub(self.prod_r, self.prod_s, self.prod_c),
        )

    def permuted(self, order: np.ndarray, reaction_order: np.ndarray | None = None):
        """The same network with species `order[i]` renumbered `i` (and reactions
        reordered by `reaction_order`)."""
        rxn = (
            np.arange(self.n_reactions)
            if reaction_order is None
            else np.asarray(reaction_order)
        )
        return self.restrict(np.asarray(order, np.int64), rxn.astype(np.int64))

    @functools.cached_property
    def free_decays(self) -> tuple[np.ndarray, np.ndarray]:
        """Species that decay freely: never produced, consumed only by first-order
        reactions `X -> ...` that have no other reactant, and a reactant of at least
        one. Their concentrations are `X(0) exp(-K t)` with `K` the sum of the rate
        constants of their reactions, whatever the rest of the network does.

        Returns `(species, reactions)`: the species, and the reactions they decay by.
        """
        produced = np.zeros(self.n_species, bool)
        produced[self.prod_s[self.prod_c > 0]] = True
        ok = ~produced
        seen = np.zeros(self.n_species, bool)
        for lst in self.reactants:
            for s in lst:
                seen[s] = True
                if len(lst) != 1:
                    ok[s] = False
        ok &= seen
        rxns = [
            r for r, lst in enumerate(self.reactants) if len(lst) == 1 and ok[lst[0]]
        ]
        return np.flatnonzero(ok), np.asarray(rxns, np.int64)


# ---------------------------------------------------------------------------------
# Feed-forward analysis.


@dataclasses.dataclass(frozen=True)
class LayeredStructure:
    """Result of `layered_structure`: the wavefront of each species, or why the
    network is not layered."""

    ok: bool
    reason: str
    level: np.ndarray | None = None  # wavefront per species
    component: np.ndarray | None = None  # strongly connected component per species

    @property
    def n_wavefronts(self) -> int:
        return 0 if self.level is None else int(self.level.max(initial=-1)) + 1


def _scc(n: int, adj: list[list[int]]) -> np.ndarray:
    """Tarjan's strongly connected components (iterative); components are numbered
    in reverse topological order."""
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
            while i < len(adj[v]):
                w = adj[v][i]
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


def _structure_of(tables: Stoichiometry, names, max_block: int) -> LayeredStructure:
    n = tables.n_species
    net = tables.net_by_reaction()
    adj_sets: list[set[int]] = [set() for _ in range(n)]
    for r, lst in enumerate(tables.reactants):
        for b in set(lst):
            for a in net[r]:
                if a != b:
                    adj_sets[b].add(a)
    adj = [sorted(s) for s in adj_sets]
    comp = _scc(n, adj)
    sizes = np.bincount(comp, minlength=int(comp.max(initial=-1)) + 1)
    if sizes.size and sizes.max() > max_block:
        big = int(np.argmax(sizes))
        members = [names[i] for i in np.flatnonzero(comp == big)[:6]]
        return LayeredStructure(
            False,
            f"species {', '.join(members)}{'...' if sizes[big] > 6 else ''} depend on "
            f"each other in a cycle of {sizes[big]} species (at most {max_block} "
            "allowed); the network is not feed-forward",
        )
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


def layered_structure(crn: CRN, *, max_block: int = 2) -> LayeredStructure:
    """Check whether `crn` is feed-forward enough for the layered layout.

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
    return _structure_of(Stoichiometry.from_crn(crn), crn.species, max_block)
