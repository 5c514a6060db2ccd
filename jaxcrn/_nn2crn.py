"""Neural network -> chemistry: Algorithm 1 (`nn_to_crn`), Algorithm 2 (`reduce_crn`),
reaction counts and the non-competitive check (Vasic et al., ICML 2020).

Species names (dual-rail: value = [..p] - [..n]):

- `X{i}p`, `X{i}n`: input `i` (declared `input x{i} = X{i}p - X{i}n`);
- `A{l}_{j}p`, `A{l}_{j}n`: pre-activation of unit `j` of hidden layer `l` (1-based);
- `M{l}_{j}`: the ReLU helper species of that unit;
- `H{l}_{j}p`, `H{l}_{j}n`: its output, `max(0, A)` at completion;
- `Y{j}p`, `Y{j}n`: network output `j` (declared `output y{j} = Y{j}p - Y{j}n`).
"""

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from ._crn import CRN, Reaction, Signal


__all__ = [
    "NoncompetitiveCheck",
    "ReactionCounts",
    "bind_inputs",
    "count_reactions",
    "is_noncompetitive",
    "network_params",
    "nn_to_crn",
    "reduce_crn",
    "stable_state",
]

Params = list[tuple[np.ndarray, np.ndarray]]


def network_params(model) -> Params:
    """The quantised `(W, b)` pairs of a model, as float64 NumPy arrays.

    Accepts a `BinaryMLP` or a sequence of `(W, b)` pairs with `W` of shape
    `(fan_in, fan_out)` and entries in {-1, 0, +1}. Checks shapes and values.
    """
    if isinstance(model, Sequence) and not isinstance(model, str | bytes):
        raw = list(model)
    else:
        from ._nn import quantized_params

        raw = quantized_params(model)
    if not raw:
        raise ValueError("The network has no layers.")
    params: Params = []
    prev = None
    for i, pair in enumerate(raw):
        try:
            w, b = pair
        except (TypeError, ValueError):
            raise ValueError(
                f"Layer {i} is not a (W, b) pair; expected a list of (W, b) with W of "
                "shape (fan_in, fan_out) and b of shape (fan_out,)."
            ) from None
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"W{i} has shape {w.shape}; expected (fan_in, fan_out).")
        if b.shape != (w.shape[1],):
            raise ValueError(
                f"b{i} has shape {b.shape} but W{i} has {w.shape[1]} outputs; expected "
                f"b{i} of shape ({w.shape[1]},)."
            )
        if prev is not None and w.shape[0] != prev:
            raise ValueError(
                f"W{i} has {w.shape[0]} inputs but layer {i - 1} has {prev} outputs."
            )
        bad = ~np.isin(w, (-1.0, 0.0, 1.0))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"W{i}[{r}, {c}] = {float(w[r, c])!r}: weights must be -1, 0 or +1 "
                "(quantise "
                "the network first: binary W >= 0 -> +1 else -1)."
            )
        if not np.all(np.isfinite(b)):
            raise ValueError(f"b{i} has a non-finite entry.")
        params.append((w, b))
        prev = w.shape[1]
    return params


def _rail(sign: int, rail: str) -> str:
    return rail if sign > 0 else ("n" if rail == "p" else "p")


def nn_to_crn(model) -> CRN:
    """Algorithm 1: compile a binary/ternary ReLU network to a rate-independent CRN.

    For every source unit `i` (input or hidden output) and rail `s`, one reaction
    `src_s -> sum_j tgt_{j,s'}` over the `j` with `W[i, j] != 0` (`s' = s` for +1,
    the other rail for -1); biases are initial concentrations of the target's
    positive (b >= 0) or negative (-b) rail; hidden unit `j` of layer `l` applies ReLU
    with `A{l}_{j}p -> M{l}_{j} + H{l}_{j}p` and `M{l}_{j} + A{l}_{j}n -> H{l}_{j}n`;
    output units are linear. All rates are 1. At equilibrium
    `[Y{j}p] - [Y{j}n]` equals output `j` of the network, whatever the rates.

    Arguments:
        model: a `BinaryMLP` or a list of `(W, b)` pairs (`W` of shape
            `(fan_in, fan_out)`, entries in {-1, 0, +1}).

    Example:
        >>> import numpy as np
        >>> from jaxcrn import format_crn
        >>> W0, b0 = np.array([[1.0, -1.0]]), np.array([0.5, 0.0])
        >>> W1, b1 = np.array([[1.0], [1.0]]), np.array([-1.0])
        >>> crn = nn_to_crn([(W0, b0), (W1, b1)])
        >>> print(format_crn(crn, header=False))  # doctest: +NORMALIZE_WHITESPACE
        X0p -> A1_0p + A1_1n
        X0n -> A1_0n + A1_1p
        A1_0p -> M1_0 + H1_0p
        M1_0 + A1_0n -> H1_0n
        A1_1p -> M1_1 + H1_1p
        M1_1 + A1_1n -> H1_1n
        H1_0p -> Y0p
        H1_0n -> Y0n
        H1_1p -> Y0p
        H1_1n -> Y0n
        init A1_0p = 0.5
        init Y0n = 1
        input x0 = X0p - X0n
        output y0 = Y0p - Y0n
        <BLANKLINE>
    """
    params = network_params(model)
    n_layers = len(params)
    reactions: list[Reaction] = []
    init: list[tuple[str, float]] = []

    def source(l: int, i: int, rail: str) -> str:
        return f"X{i}{rail}" if l == 0 else f"H{l}_{i}{rail}"

    def target(l: int, j: int, rail: str) -> str:
        return f"Y{j}{rail}" if l == n_layers - 1 else f"A{l + 1}_{j}{rail}"

    mentioned: set[str] = set()
    for l, (w, b) in enumerate(params):
        for i in range(w.shape[0]):
            cols = np.flatnonzero(w[i])
            for rail in ("p", "n"):
                if cols.size == 0:
                    continue
                prods = tuple(
                    (target(l, int(j), _rail(int(w[i, j]), rail)), 1) for j in cols
                )
                reactions.append(Reaction(((source(l, i, rail), 1),), prods))
        for j, bj in enumerate(b.tolist()):
            if bj > 0:
                init.append((target(l, j, "p"), bj))
            elif bj < 0:
                init.append((target(l, j, "n"), -bj))
        if l < n_layers - 1:
            for j in range(w.shape[1]):
                a_p, a_n = f"A{l + 1}_{j}p", f"A{l + 1}_{j}n"
                m = f"M{l + 1}_{j}"
                h_p, h_n = f"H{l + 1}_{j}p", f"H{l + 1}_{j}n"
                reactions.append(Reaction(((a_p, 1),), ((m, 1), (h_p, 1))))
                reactions.append(Reaction(((m, 1), (a_n, 1)), ((h_n, 1),)))
    for r in reactions:
        mentioned.update(s for s, _ in r.reactants + r.products)
    mentioned.update(s for s, _ in init)
    # Declare rails that no reaction mentions (all-zero weight rows/columns), so the
    # input/output declarations stay valid.
    n_in, n_out = params[0][0].shape[0], params[-1][0].shape[1]
    for name in [f"X{i}{r}" for i in range(n_in) for r in "pn"] + [
        f"Y{j}{r}" for j in range(n_out) for r in "pn"
    ]:
        if name not in mentioned:
            init.append((name, 0.0))
    inputs = tuple(Signal(f"x{i}", f"X{i}p", f"X{i}n") for i in range(n_in))
    outputs = tuple(Signal(f"y{j}", f"Y{j}p", f"Y{j}n") for j in range(n_out))
    return CRN(tuple(reactions), tuple(init), inputs, outputs)


# ---------------------------------------------------------------------------------
# Algorithm 2.


def _dual_rail_pairs(
    species: Iterable[str], signals: Iterable[Signal]
) -> list[tuple[str, str]]:
    present = set(species)
    pairs: dict[str, str] = {}
    for sig in signals:
        if sig.neg is not None and sig.pos in present and sig.neg in present:
            pairs[sig.pos] = sig.neg
    for s in present:
        if s.endswith("p") and (s[:-1] + "n") in present:
            pairs.setdefault(s, s[:-1] + "n")
    return sorted(pairs.items())


def _net_pairs(
    terms: dict[str, int | float], pairs: list[tuple[str, str]]
) -> dict[str, float]:
    for p, n in pairs:
        a, b = terms.get(p, 0), terms.get(n, 0)
        if a and b:
            m = min(a, b)
            terms[p], terms[n] = a - m, b - m
    return {s: c for s, c in terms.items() if c != 0}


def reduce_crn(
    crn: CRN,
    *,
    keep_inputs: bool = True,
    net_dual_rail: bool = True,
    dual_rail: Iterable[tuple[str, str]] | None = None,
) -> CRN:
    """Algorithm 2: remove unimolecular reactions by substituting their products.

    Every unimolecular reaction `X -> P` whose reactant `X` is consumed by no other
    reaction (and is not an output species, nor an input species when
    `keep_inputs=True`) is removed: `P` replaces `X` wherever `X` is produced, and
    `X`'s initial concentration moves onto `P` with multiplicity. Repeated to a fixed
    point (computed in closed form, one matrix product per dependency level), so
    `A + 2(B + C)` becomes `A + 2B + 2C`. Then, with `net_dual_rail`, equal amounts of
    a value's positive and negative species are cancelled within each reaction's
    products and in the initial concentrations (the paper's simplification). The
    equilibrium of a non-competitive feed-forward CRN is unchanged.

    Arguments:
        crn: typically the output of `nn_to_crn`.
        keep_inputs: keep the input layer's reactions, so the reduced CRN still
            takes inputs (`input` declarations stay valid).
        net_dual_rail: apply the dual-rail cancellation.
        dual_rail: `(pos, neg)` species pairs to cancel; default: the dual-rail
            signals plus every pair of species named `<base>p` / `<base>n`.

    Example:
        >>> import numpy as np
        >>> crn = nn_to_crn([(np.ones((2, 2)), np.zeros(2)), (np.ones((2, 1)),
        ...                   np.zeros(1))])
        >>> red = reduce_crn(crn)
        >>> print(red.reactions[0].text())
        X0p -> M1_0 + M1_1 + 2 Y0p
        >>> len(crn.reactions), len(red.reactions)
        (12, 6)
    """
    species = list(crn.species)
    index = {s: i for i, s in enumerate(species)}
    n = len(species)
    consumers: list[list[int]] = [[] for _ in range(n)]
    for r, rxn in enumerate(crn.reactions):
        for s, _ in rxn.reactants:
            consumers[index[s]].append(r)
    protected = {s for sig in crn.outputs for s in sig.species}
    input_species = {s for sig in crn.inputs for s in sig.species}
    if keep_inputs:
        protected |= input_species
    elim_rxn: dict[int, int] = {}
    for r, rxn in enumerate(crn.reactions):
        if len(rxn.reactants) != 1 or rxn.reactants[0][1] != 1:
            continue
        x = rxn.reactants[0][0]
        xi = index[x]
        if x in protected or len(consumers[xi]) != 1:
            continue
        if any(s == x for s, _ in rxn.products):
            continue
        elim_rxn[xi] = r
    # Order eliminable species so that every species comes after the eliminable
    # species in its products (reverse topological order); drop cycles.
    elim = set(elim_rxn)
    order: list[int] = []
    state: dict[int, int] = {}
    cyclic: set[int] = set()
    for start in sorted(elim):
        if start in state:
            continue
        stack = [(start, iter(crn.reactions[elim_rxn[start]].products))]
        state[start] = 1
        while stack:
            v, it = stack[-1]
            advanced = False
            for s, _ in it:
                w = index[s]
                if w not in elim:
                    continue
                if state.get(w) == 1:
                    cyclic.add(w)
                    continue
                if w not in state:
                    state[w] = 1
                    stack.append((w, iter(crn.reactions[elim_rxn[w]].products)))
                    advanced = True
                    break
            if not advanced:
                state[v] = 2
                order.append(v)
                stack.pop()
    if cyclic:
        # keep every species on a cycle (and those depending on them) uneliminated
        order = [v for v in order if v not in cyclic]
        for v in cyclic:
            del elim_rxn[v]
        elim = set(elim_rxn)
        order = [v for v in order if v in elim]
    if not keep_inputs:
        lost = [s for s in input_species if index[s] in elim]
        if lost:
            raise ValueError(
                "keep_inputs=False would eliminate input species "
                f"{', '.join(sorted(lost))};"
                " bind the inputs first (bind_inputs(crn, x) turns them into init "
                "values) or use keep_inputs=True."
            )
    keep = [i for i in range(n) if i not in elim]
    col = {s: k for k, s in enumerate(keep)}
    # Expansion of each eliminable species over the kept species: E[x] = sum over
    # its products (kept: unit vector; eliminable: their expansion). Computed level by
    # level with dense float64 matrix products (exact for integer counts < 2**53).
    level: dict[int, int] = {}
    for v in order:  # products come first in `order`
        lv = 0
        for s, _ in crn.reactions[elim_rxn[v]].products:
            w = index[s]
            if w in elim:
                lv = max(lv, level[w] + 1)
        level[v] = lv
    erow = {v: k for k, v in enumerate(order)}
    expansion = np.zeros((len(order), len(keep)))
    by_level: dict[int, list[int]] = {}
    for v in order:
        by_level.setdefault(level[v], []).append(v)
    for lv in sorted(by_level):
        vs = by_level[lv]
        direct = np.zeros((len(vs), len(keep)))
        via: list[tuple[int, int, int]] = []
        for a, v in enumerate(vs):
            for s, c in crn.reactions[elim_rxn[v]].products:
                w = index[s]
                if w in elim:
                    via.append((a, erow[w], c))
                else:
                    direct[a, col[w]] += c
        if via:
            rows = sorted({e[1] for e in via})
            rpos = {r: k for k, r in enumerate(rows)}
            coef = np.zeros((len(vs), len(rows)))
            for a, er, c in via:
                coef[a, rpos[er]] += c
            direct += coef @ expansion[rows]
        expansion[[erow[v] for v in vs]] = direct
    kept_names = [species[i] for i in keep]
    pairs = (
        list(dual_rail)
        if dual_rail is not None
        else _dual_rail_pairs(kept_names, crn.inputs + crn.outputs)
    )

    def expand(terms: Iterable[tuple[str, int | float]]) -> dict[str, float]:
        vec = np.zeros(len(keep))
        rows, coefs = [], []
        for s, c in terms:
            i = index[s]
            if i in elim:
                rows.append(erow[i])
                coefs.append(c)
            else:
                vec[col[i]] += c
        if rows:
            vec += np.asarray(coefs, float) @ expansion[rows]
        nz = np.flatnonzero(vec)
        out = {kept_names[k]: vec[k] for k in nz}
        return _net_pairs(out, pairs) if net_dual_rail else out

    elim_reactions = set(elim_rxn.values())
    new_reactions = []
    for r, rxn in enumerate(crn.reactions):
        if r in elim_reactions:
            continue
        prods = expand(rxn.products)
        new_reactions.append(
            Reaction(
                rxn.reactants,
                tuple((s, int(round(c))) for s, c in prods.items()),
                rxn.rate,
            )
        )
    new_init = expand(crn.init)
    # keep kept species with an explicit init (even 0) so declarations stay valid
    init_items = [(s, float(v)) for s, v in new_init.items()]
    present = {s for r in new_reactions for s, _ in r.reactants + r.products}
    present |= {s for s, _ in init_items}
    for sig in crn.inputs + crn.outputs:
        for s in sig.species:
            if s not in present:
                init_items.append((s, 0.0))
                present.add(s)
    return CRN(tuple(new_reactions), tuple(init_items), crn.inputs, crn.outputs)


def bind_inputs(crn: CRN, x: Sequence[float] | np.ndarray) -> CRN:
    """Turn the CRN's inputs into `init` values for input vector `x` (dual-rail
    encoded), removing the `input` declarations. Useful before
    `reduce_crn(..., keep_inputs=False)`.

    Example:
        >>> import numpy as np
        >>> crn = nn_to_crn([(np.ones((1, 1)), np.zeros(1))])
        >>> bind_inputs(crn, [-2.0]).initial
        {'X0n': 2.0}
    """
    x = list(map(float, x))
    if len(x) != len(crn.inputs):
        raise ValueError(
            f"x has {len(x)} entries but the CRN has {len(crn.inputs)} inputs."
        )
    init = dict(crn.init)
    for sig, v in zip(crn.inputs, x, strict=True):
        if v >= 0:
            init[sig.pos] = init.get(sig.pos, 0.0) + v
        elif sig.neg is None:
            raise ValueError(
                f"Input {sig.name} = {v} is negative but is a single species."
            )
        else:
            init[sig.neg] = init.get(sig.neg, 0.0) - v
    return dataclasses.replace(crn, init=tuple(init.items()), inputs=())


# ---------------------------------------------------------------------------------
# Counts and the non-competitive check.


@dataclasses.dataclass(frozen=True)
class ReactionCounts:
    """Size of a CRN (see `count_reactions`)."""

    species: int
    reactions: int
    unimolecular: int
    bimolecular: int
    other: int  # order 0 or >= 3
    max_product_stoichiometry: int  # largest total product count of one reaction
    total_product_stoichiometry: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def count_reactions(crn: CRN) -> ReactionCounts:
    """Count species, reactions by molecularity, and product stoichiometry.

    Example:
        >>> from jaxcrn import parse_crn
        >>> count_reactions(parse_crn("A -> 2 B + C\\nB + C -> D"))
        ReactionCounts(species=4, reactions=2, unimolecular=1, bimolecular=1, \
other=0, max_product_stoichiometry=3, total_product_stoichiometry=4)
    """
    orders = [r.order for r in crn.reactions]
    prods = [sum(c for _, c in r.products) for r in crn.reactions]
    return ReactionCounts(
        species=len(crn.species),
        reactions=len(crn.reactions),
        unimolecular=sum(o == 1 for o in orders),
        bimolecular=sum(o == 2 for o in orders),
        other=sum(o not in (1, 2) for o in orders),
        max_product_stoichiometry=max(prods, default=0),
        total_product_stoichiometry=sum(prods),
    )


@dataclasses.dataclass(frozen=True)
class NoncompetitiveCheck:
    """`bool(check)` is True for a non-competitive CRN; otherwise `species` names
    the offending species and `reason` says why."""

    ok: bool
    reason: str = ""
    species: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def is_noncompetitive(crn: CRN) -> NoncompetitiveCheck:
    """A CRN is non-competitive when no species that a reaction consumes (net
    stoichiometry < 0) is a reactant of any other reaction (Vasic, Chalk,
    Luchsinger, Khurshid, Soloveichik, PNAS 2022). Such CRNs compute their
    equilibrium output independently of the rate constants.

    Example:
        >>> from jaxcrn import parse_crn
        >>> bool(is_noncompetitive(parse_crn("A -> B\\nB + C -> D")))
        True
        >>> is_noncompetitive(parse_crn("A -> B\\nA -> C")).species
        'A'
    """
    reactant_of: dict[str, list[int]] = {}
    for r, rxn in enumerate(crn.reactions):
        for s, _ in rxn.reactants:
            reactant_of.setdefault(s, []).append(r)
    for r, rxn in enumerate(crn.reactions):
        for s, c in rxn.net.items():
            if c < 0:
                others = [k for k in reactant_of.get(s, []) if k != r]
                if others:
                    return NoncompetitiveCheck(
                        False,
                        f"{s} is consumed by reaction {r + 1} ({rxn.text()}) and is "
                        f"also a reactant of reaction {others[0] + 1} "
                        f"({crn.reactions[others[0]].text()})",
                        s,
                    )
    return NoncompetitiveCheck(True)


def stable_state(
    crn: CRN, x: Sequence[float] | np.ndarray | None = None
) -> dict[str, float]:
    """The final state of a feed-forward, non-competitive CRN, computed exactly by
    running each reaction to completion in dependency order (no ODE solve).

    For such CRNs (every CRN that `nn_to_crn` or `reduce_crn` produces) the
    equilibrium does not depend on the rate constants: each reaction, once its
    reactants' producers are done, fires until one reactant is used up. This gives
    the exact rate-independent output, an oracle for the simulated equilibrium.

    Arguments:
        crn: the network; must be non-competitive and feed-forward.
        x: input vector (dual-rail encoded onto the `input` species), if any.

    Returns:
        Concentration of every species at completion.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import nn_to_crn
        >>> crn = nn_to_crn([(np.array([[1.0]]), np.array([-0.5])),
        ...                  (np.array([[-1.0]]), np.array([0.0]))])
        >>> s = stable_state(crn, [2.0])   # y = -relu(2 - 0.5)
        >>> s["Y0p"] - s["Y0n"]
        -1.5
    """
    from ._kinetics import layered_structure

    check = is_noncompetitive(crn)
    if not check:
        raise ValueError(
            f"stable_state needs a non-competitive CRN, but {check.reason}."
        )
    structure = layered_structure(crn)
    if not structure.ok:
        raise ValueError(
            f"stable_state needs a feed-forward CRN, but {structure.reason}."
        )
    assert structure.level is not None
    conc = dict.fromkeys(crn.species, 0.0)
    for s_, v in crn.init:
        conc[s_] += v
    if x is not None:
        bound = bind_inputs(crn, x)
        conc = dict.fromkeys(crn.species, 0.0)
        for s_, v in bound.init:
            conc[s_] += v
    elif crn.inputs:
        raise ValueError(f"the CRN has {len(crn.inputs)} inputs; pass x.")
    level = dict(zip(crn.species, structure.level.tolist(), strict=True))
    order = sorted(
        range(len(crn.reactions)),
        key=lambda r: max(
            (level[s_] for s_, _ in crn.reactions[r].reactants), default=-1
        ),
    )
    for r in order:
        rxn = crn.reactions[r]
        if not rxn.reactants:
            raise ValueError(
                f"reaction {rxn.text()} has no reactants: it never completes."
            )
        extent = min(conc[s_] / c for s_, c in rxn.reactants)
        for s_, c in rxn.reactants:
            conc[s_] -= c * extent
        for s_, c in rxn.products:
            conc[s_] += c * extent
    return conc
