"""Write the generated CRNs of the benchmark corpus (`benchmarks/crns/`).

Two kinds, both deterministic (no JAX, numpy only):

- `random60.crn`, `random600.crn`: fixed-seed random mass-conserving reversible
  networks (see `random_reversible`);
- `crnpp_sqrt.crn`: a CRN++-style program, Newton's iteration for the square root,
  compiled by `crnpp_sqrt` with the module reactions of CRN++ and its clock;
- `cascade155.crn` ... `cascade677.crn`: fixed-seed stiff signalling cascades in the
  form of the curated models, of 155 to 677 species (`signalling_cascade`, also
  the generator of the signalling tests in `tests/test_reference.py`).

The hand-written files of the corpus (Robertson, the Brusselator, approximate
majority, the rock-paper-scissors oscillator, the Huang-Ferrell MAPK cascade) and the
imported signalling models (`benchmarks/import_models.py`) are not written here.

    python benchmarks/make_crns.py            # (re)write the files
    python benchmarks/make_crns.py --check    # exit 1 if a committed file differs
"""

import argparse
import difflib
import os
import sys

import numpy as np


HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "crns")


def _rate(k: float) -> str:
    return f"{k:.4g}"


def _side(counts: dict[str, int]) -> str:
    """One side of a reaction in `.crn` syntax (`2 A + B`; `0` when empty)."""
    return " + ".join(n if c == 1 else f"{c} {n}" for n, c in counts.items()) or "0"


def random_reversible(
    n_species: int, n_pairs: int, *, n_inputs: int = 5, seed: int, t1: float, name: str
) -> str:
    """A random mass-conserving reversible network as `.crn` text.

    Species `S0..S{n-1}` carry integer masses; the first `n_inputs` are monomers of
    mass 1 and the only species present at t = 0 (their initial concentrations are
    the inputs). Every other species `c` gets, in order, one reaction that makes it
    from earlier species (binding `a + b <=> c` with `m(a) + m(b) = m(c)`, or, with
    probability 1/4, isomerisation `a <=> c` with `m(a) = m(c)`), so every species
    is reachable from the inputs; further random binding, isomerisation and exchange
    (`a + b <=> c + d`, equal total mass) pairs bring the count to `n_pairs`.
    Every reaction conserves the total mass `sum_s m(s) [s]`, so the state stays
    bounded. Forward and reverse rate constants are independent, log-uniform on
    [1e-2, 1e2]: four decades of time scales (stiff), and no detailed balance, so
    the steady state need not be an equilibrium.
    """
    rng = np.random.default_rng(seed)
    mass = np.ones(n_species, np.int64)
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    seen: set = set()

    def add(lhs, rhs) -> bool:
        lhs, rhs = tuple(sorted(lhs)), tuple(sorted(rhs))
        key = frozenset([lhs, rhs])
        if lhs == rhs or key in seen:
            return False
        seen.add(key)
        pairs.append((lhs, rhs))
        return True

    for c in range(n_inputs, n_species):
        earlier = np.arange(c)
        if rng.random() < 0.25:  # isomer of an earlier species
            a = int(rng.choice(earlier))
            mass[c] = mass[a]
            add((a,), (c,))
        else:  # a complex of two earlier species, masses up to 8
            while True:
                a, b = (int(v) for v in rng.choice(earlier, size=2))
                if mass[a] + mass[b] <= 8:
                    break
            mass[c] = mass[a] + mass[b]
            add((a, b), (c,))
    by_mass: dict[int, list[int]] = {}
    for s, m in enumerate(mass):
        by_mass.setdefault(int(m), []).append(s)
    tries = 0
    while len(pairs) < n_pairs:
        tries += 1
        if tries > 1000 * n_pairs:
            raise RuntimeError(f"could not place {n_pairs} reaction pairs")
        kind = rng.random()
        if kind < 0.5:  # binding a + b <=> c
            c = int(rng.integers(n_inputs, n_species))
            a = int(rng.integers(n_species))
            rest = by_mass.get(int(mass[c] - mass[a]), [])
            if not rest:
                continue
            add((a, int(rng.choice(rest))), (c,))
        elif kind < 0.75:  # isomerisation a <=> b
            a = int(rng.integers(n_species))
            add((a,), (int(rng.choice(by_mass[int(mass[a])])),))
        else:  # exchange a + b <=> c + d
            a, b, c = (int(v) for v in rng.integers(n_species, size=3))
            rest = by_mass.get(int(mass[a] + mass[b] - mass[c]), [])
            if not rest:
                continue
            add((a, b), (c, int(rng.choice(rest))))
    rates = 10.0 ** rng.uniform(-2.0, 2.0, size=(len(pairs), 2))
    for lhs, rhs in pairs:  # the invariant the docstring promises
        assert sum(mass[list(lhs)]) == sum(mass[list(rhs)])

    def side(species):
        counts: dict[str, int] = {}
        for s in species:
            counts[f"S{s}"] = counts.get(f"S{s}", 0) + 1
        return _side(counts)

    lines = [
        f"# {name}: a fixed-seed random mass-conserving reversible network, "
        f"{n_species} species, {2 * len(pairs)} reactions.",
        "# Source: generated by benchmarks/make_crns.py (random_reversible, "
        f"seed {seed}); regenerate with `python benchmarks/make_crns.py`.",
        "#   Species carry integer masses (S0..S4 are monomers of mass 1); every "
        "reaction is binding, isomerisation",
        "#   or exchange and conserves sum_s mass(s) [s]. Rate constants "
        "log-uniform on [1e-2, 1e2], forward and",
        "#   reverse independent (no detailed balance).",
        f"#   Masses: {' '.join(str(int(m)) for m in mass)}",
        f"# Per sample: the initial concentrations of the {n_inputs} monomers; "
        "everything else starts at 0.",
        f"#@ t1: {t1:g}",
    ]
    lines += [f"#@ sample s{i}: uniform 0.5 1.5" for i in range(n_inputs)]
    for (lhs, rhs), (kf, kr) in zip(pairs, rates, strict=True):
        lines.append(f"{side(lhs)} <=> {side(rhs)}  [kf={_rate(kf)}, kr={_rate(kr)}]")
    lines += [f"input s{i} = S{i}" for i in range(n_inputs)]
    return "\n".join(lines) + "\n"


def signalling_cascade(rng, layers=(2, 6), width=(1, 4)):
    """A stiff signalling cascade in the form of the curated models (BioModels,
    BioNetGen): per layer and branch, an enzyme of the layer above phosphorylates a
    substrate through its complex (`E + S <-> ES -> E + P`), a phosphatase reverses
    it the same way, half the branches are phosphorylated twice, actives of a layer
    may bind each other, and a few species are made and degraded. Rates span eight
    orders of magnitude (binding 1e-5..1, unbinding 1e-3..1e2, catalysis 0.1..1e3),
    enzymes, substrates and phosphatases start at 1e2..1e5 (molecule counts), the
    complexes at 0: tens of species (the defaults) to hundreds (wider layers).

    `rng` a `numpy.random.Generator`; `layers`, `width`: the ranges (low,
    high-exclusive) the number of layers and the width of the first are drawn from.
    Returns `(names, reactions, y0)`: reactions as `(reactants, products, k)` with
    sides `{species index: count}`."""
    names: list[str] = []
    reactions = []

    def new(name):
        names.append(name)
        return len(names) - 1

    def enzymatic(e, s, p):
        c = new(f"C{len(names)}")
        reactions.append(({e: 1, s: 1}, {c: 1}, float(10 ** rng.uniform(-4, 0))))
        reactions.append(({c: 1}, {e: 1, s: 1}, float(10 ** rng.uniform(-2, 2))))
        reactions.append(({c: 1}, {e: 1, p: 1}, float(10 ** rng.uniform(-1, 3))))

    starts = []
    above = [new(f"E{i}") for i in range(int(rng.integers(*width)))]
    starts += above
    for layer in range(int(rng.integers(*layers))):
        active = []
        for w in range(len(above) if layer else int(rng.integers(*width))):
            e = above[int(rng.integers(len(above)))]
            s, p, f = new(f"S{layer}_{w}"), new(f"P{layer}_{w}"), new(f"F{layer}_{w}")
            starts += [s, f]
            enzymatic(e, s, p)
            enzymatic(f, p, s)
            if rng.random() < 0.5:  # a second phosphorylation
                pp = new(f"Q{layer}_{w}")
                enzymatic(e, p, pp)
                reactions.append(({pp: 1}, {p: 1}, float(10 ** rng.uniform(-2, 1))))
                p = pp
            active.append(p)
        if len(active) >= 2 and rng.random() < 0.7:
            a, b = (int(i) for i in rng.choice(active, 2, replace=False))
            ab = new(f"AB{layer}")
            reactions.append(({a: 1, b: 1}, {ab: 1}, float(10 ** rng.uniform(-5, -1))))
            reactions.append(({ab: 1}, {a: 1, b: 1}, float(10 ** rng.uniform(-3, 1))))
        above = active
    for s in rng.choice(len(names), size=min(3, len(names)), replace=False):
        reactions.append(({}, {int(s): 1}, float(10 ** rng.uniform(0, 3))))
        reactions.append(({int(s): 1}, {}, float(10 ** rng.uniform(-3, -1))))
    y0 = np.zeros(len(names))
    y0[starts] = 10 ** rng.uniform(2, 5, len(starts))
    return names, reactions, y0


def cascade_crn(seed: int, layers, width, *, t1: float = 1000.0) -> str:
    """`signalling_cascade` drawn from `seed`, as `.crn` text: the first enzyme of
    the top layer that acts on anything is the per-sample input (log-uniform over
    a factor of 10 either side of its drawn amount), every other species starts at
    its drawn amount."""
    rng = np.random.default_rng(seed)
    names, reactions, y0 = signalling_cascade(rng, layers=layers, width=width)
    used = {s for lhs, _, _ in reactions for s in lhs}
    top = next(i for i, nm in enumerate(names) if nm.startswith("E") and i in used)

    def side(d):
        return _side({names[s]: c for s, c in d.items()})

    n = len(names)
    lines = [
        f"# A stiff signalling cascade: {n} species, {len(reactions)} reactions "
        "(mass action).",
        "# Source: generated by benchmarks/make_crns.py (signalling_cascade, seed "
        f"{seed}, layers {layers[0]}-{layers[1] - 1},",
        f"#   first-layer width {width[0]}-{width[1] - 1}); regenerate with "
        "`python benchmarks/make_crns.py`. The form of the curated",
        "#   models: enzymatic steps through their complexes (E + S <-> ES -> E + P) "
        "and phosphatases reversing them,",
        "#   double phosphorylations, binding of actives, synthesis and degradation; "
        "rates over eight decades,",
        "#   amounts in molecule counts up to 1e5.",
        f"# Per sample: {names[top]} (input e), the top enzyme.",
        f"#@ t1: {t1:g}",
        f"#@ sample e: loguniform {y0[top] / 10:.4g} {y0[top] * 10:.4g}",
    ]
    for lhs, rhs, k in reactions:
        lines.append(f"{side(lhs)} -> {side(rhs)}  [k={k:.6g}]")
    lines += [
        f"init {names[i]} = {v:.6g}" for i, v in enumerate(y0) if v > 0 and i != top
    ]
    lines.append(f"input e = {names[top]}")
    return "\n".join(lines) + "\n"


def crnpp_sqrt(n_clock: int = 9) -> str:
    """Newton's iteration for sqrt(a) as a CRN++-style program.

    The program (one loop body, three clocked steps; `x` starts at 1):

        d := a / x        div[a, x, d]:  A -> A + D,   X + D -> X
        s := x + d        add[x, d, s]:  X -> X + S,   D -> D + S,   S -> 0
        x := s / 2        ld with rate 1/2:  S -> S + X [k=0.5],   X -> 0

    compiled as CRN++ compiles it (Vasic, Soloveichik and Khurshid 2020): a clock
    oscillator `C_i + C_{i+1} -> 2 C_{i+1}` on a ring of `n_clock` species, and every
    reaction of step j catalysed by the clock species `C_{3j}`, so the steps run in
    turn and each holds its output while the others run. X converges to sqrt(a).
    """
    if n_clock != 9:
        raise ValueError("the program has three steps: n_clock must be 9")
    lines = [
        "# A CRN++-style program: Newton's iteration for the square root, x := (x + "
        "a/x) / 2, compiled to",
        f"# {n_clock + 7} reactions (a clock oscillator and three clocked steps).",
        "# Source: the module reactions and the clock construction of M. Vasic, D. "
        "Soloveichik and S. Khurshid,",
        '#   "CRN++: Molecular programming language", Natural Computing 19 (2020) '
        "391-407 (div, add and ld,",
        "#   each reaction of step j catalysed by clock species C(3j) of the ring "
        "oscillator C(i) + C(i+1) -> 2 C(i+1));",
        "#   compiled by benchmarks/make_crns.py (crnpp_sqrt), all rates 1 except "
        "the halving ld.",
        "#   Steps: d := a/x (A -> A + D, X + D -> X); s := x + d (X -> X + S, "
        "D -> D + S, S -> 0);",
        "#   x := s/2 (S -> S + X at rate 1/2, X -> 0), one iteration per clock "
        "cycle (period ~47); X is",
        "#   sqrt(a) within 1e-3 at t1 (tests/test_corpus.py); trimolecular "
        "reactions (clock + two operands), species switched on and off.",
        "# Per sample: the radicand a. Compared at t1 within 1e-2 (#@ tol): the "
        "clock's phase after ~4 cycles;",
        "#   at rtol 1e-6 CVODE BDF was 3.1e-3 off the rtol 1e-10 reference on 100 "
        "samples (benchmarks/peers.py).",
        "#@ t1: 200",
        "#@ tol: 1e-2",
        "#@ sample a: uniform 0.5 5",
    ]
    for i in range(1, n_clock + 1):
        j = i % n_clock + 1
        lines.append(f"C{i} + C{j} -> 2 C{j}")
    lines += [
        "C3 + A -> C3 + A + D",
        "C3 + X + D -> C3 + X",
        "C6 + X -> C6 + X + S",
        "C6 + D -> C6 + D + S",
        "C6 + S -> C6",
        "C9 + S -> C9 + S + X  [k=0.5]",
        "C9 + X -> C9",
        "init C1 = 1",
    ]
    lines += [f"init C{i} = 0.01" for i in range(2, n_clock + 1)]
    lines += ["init X = 1", "input a = A", "output root = X"]
    return "\n".join(lines) + "\n"


GENERATED = {
    "random60.crn": lambda: random_reversible(
        60, 60, seed=60, t1=100.0, name="random60"
    ),
    "random600.crn": lambda: random_reversible(
        600, 660, seed=600, t1=100.0, name="random600"
    ),
    "crnpp_sqrt.crn": crnpp_sqrt,
    # stiff signalling cascades of hundreds of species (layers, first-layer width)
    "cascade155.crn": lambda: cascade_crn(7, (4, 6), (3, 6)),
    "cascade236.crn": lambda: cascade_crn(11, (4, 7), (6, 10)),
    "cascade412.crn": lambda: cascade_crn(12, (5, 8), (8, 14)),
    "cascade677.crn": lambda: cascade_crn(13, (6, 9), (10, 16)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--check", action="store_true", help="compare with the files, write nothing"
    )
    ap.add_argument("--dir", default=CORPUS, help="the corpus folder")
    args = ap.parse_args(argv)
    bad = 0
    for name, make in GENERATED.items():
        path = os.path.join(args.dir, name)
        text = make()
        if args.check:
            try:
                with open(path) as f:
                    old = f.read()
            except FileNotFoundError:
                old = None
            if old != text:
                bad += 1
                print(f"{path}: differs from what make_crns.py writes", file=sys.stderr)
                if old is not None:
                    sys.stderr.writelines(
                        list(
                            difflib.unified_diff(
                                old.splitlines(True), text.splitlines(True), path, "new"
                            )
                        )[:20]
                    )
            continue
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        print(f"wrote {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
