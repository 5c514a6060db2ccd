"""Rate scans: sets of rate constants to simulate in one batch.

Each function returns a NumPy array `(sets, reactions)`, one rate set per row, in
the order of the network's reactions (the order of the `.crn` file, a reversible
`<=>` line counting as two reactions), ready for `simulate_batch(..., rates=...)`:
every lane of the batch engine carries its own rate vector, so a scan of `K` rate
sets costs what a batch of `K` input vectors costs.

- `log_uniform`: random rate sets, each rate log-uniform in `[low, high]` (the
  empirical test of rate independence) or, with `factor`, each of the network's
  rates times a log-uniform factor in `[1/factor, factor]`;
- `grid`: every combination of given values for one or two (or more) rate
  constants, the other rates as they are;
- `one_at_a_time`: the network's rates, then every reaction's rate times and
  divided by a factor, one reaction at a time;
- `cross`: every input vector under every rate set, as the rows of one batch.

Reactions are named by index (`3`, `"3"`), by the name of their rate constant in
jaxcrn's SBML export (`"k3"`) or of the reaction (`"R3"`), or by their text
(`"A + B -> C"`, a `CRN` needed); see `reaction_index`. Nothing here imports JAX.

Example:
    >>> import numpy as np
    >>> from jaxcrn import parse_crn, scan
    >>> crn = parse_crn("A + B <=> C  [kf=1, kr=0.5]\\nC -> D")
    >>> scan.grid(crn, {"C -> D": [0.1, 1.0, 10.0]})
    array([[ 1. ,  0.5,  0.1],
           [ 1. ,  0.5,  1. ],
           [ 1. ,  0.5, 10. ]])
    >>> scan.one_at_a_time(crn, 10.0)[:3]
    array([[ 1. ,  0.5,  1. ],
           [10. ,  0.5,  1. ],
           [ 0.1,  0.5,  1. ]])
"""

import itertools
import math
import re
from collections.abc import Mapping

import numpy as np


__all__ = ["cross", "grid", "log_uniform", "one_at_a_time", "reaction_index"]

_ID = re.compile(r"[kR]?([0-9]+)", re.ASCII)


def _base_rates(network) -> np.ndarray:
    """The rate constants of a `CRN` or a `MassActionNetwork`, float64."""
    from ._crn import CRN

    if isinstance(network, CRN):
        return np.array([r.rate for r in network.reactions], dtype=np.float64)
    rates = getattr(network, "rates", None)
    if rates is None:
        raise TypeError(
            f"expected a CRN or a MassActionNetwork, got {type(network).__name__}."
        )
    return np.asarray(rates, dtype=np.float64).copy()


def reaction_index(network, name) -> int:
    """The index of a reaction named by index, rate-constant id, reaction id or text.

    Arguments:
        network: a `CRN` (every form of name) or a `MassActionNetwork` (indices and
            ids only: it keeps no reaction text).
        name: an int or a string: `"3"`, `"k3"` (the rate constant's id in
            `save_sbml`'s export), `"R3"` (the reaction's id there), all 0-based; or
            the reaction as written in the `.crn` format, without its rate
            (`"A + B -> C"`; spaces and the order within a side do not matter).

    Example:
        >>> from jaxcrn import parse_crn, scan
        >>> crn = parse_crn("A + B <=> C\\nC -> D")
        >>> [scan.reaction_index(crn, n) for n in (2, "k2", "R1", "C -> A + B")]
        [2, 2, 1, 1]
    """
    from ._crn import CRN, CRNSyntaxError, parse_crn

    n = len(_base_rates(network))
    if isinstance(name, bool):
        raise TypeError(f"a reaction is named by an int or a string, got {name!r}.")
    if isinstance(name, int | np.integer):
        i = int(name)
    elif isinstance(name, str):
        text = name.strip()
        m = _ID.fullmatch(text)
        if m:
            i = int(m.group(1))
        elif "->" in text:
            if not isinstance(network, CRN):
                raise ValueError(
                    f"reaction {name!r}: naming a reaction by its text needs the CRN "
                    "(a compiled network keeps no reaction text); pass the CRN or "
                    "an index."
                )
            try:
                parsed = parse_crn(text)
            except CRNSyntaxError as e:
                raise ValueError(f"reaction {name!r}: {e.lines()[0]}") from None
            if len(parsed.reactions) != 1:
                raise ValueError(
                    f"reaction {name!r}: name one irreversible reaction ('A -> B')."
                )
            r = parsed.reactions[0]
            key = (sorted(r.reactants), sorted(r.products))
            hits = [
                j
                for j, s in enumerate(network.reactions)
                if (sorted(s.reactants), sorted(s.products)) == key
            ]
            if not hits:
                raise ValueError(
                    f"reaction {name!r}: the network has no such reaction; name it "
                    "as in the .crn file ('A + B -> C'), or by index (0 to "
                    f"{n - 1})."
                )
            if len(hits) > 1:
                raise ValueError(
                    f"reaction {name!r} occurs {len(hits)} times (reactions "
                    f"{', '.join(map(str, hits))}); name one by index."
                )
            return hits[0]
        else:
            raise ValueError(
                f"reaction {name!r}: expected an index (0 to {n - 1}), 'k3' or 'R3', "
                "or a reaction such as 'A + B -> C'."
            )
    else:
        raise TypeError(f"a reaction is named by an int or a string, got {name!r}.")
    if not 0 <= i < n:
        raise ValueError(
            f"reaction {name!r}: the network has {n} reactions (indices 0 to {n - 1})."
        )
    return i


def _positive_finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}.") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return v


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def log_uniform(
    network,
    n: int,
    low: float | None = None,
    high: float | None = None,
    *,
    factor: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """`n` random rate sets `(n, reactions)`, every rate independently log-uniform.

    Arguments:
        network: a `CRN` or a `MassActionNetwork` (for the number of reactions and,
            with `factor`, their rates).
        n: the number of rate sets.
        low, high: the range of every rate constant, `0 < low <= high` (default
            0.1 and 10).
        factor: instead of `[low, high]` (give one or the other), multiply each
            of the network's rates by a factor log-uniform in `[1/factor,
            factor]` (`factor >= 1`): a perturbation of a network whose rates
            span many orders of magnitude.
        seed: the seed of NumPy's default generator (the same seed, the same sets).

    Example:
        >>> from jaxcrn import parse_crn, scan
        >>> r = scan.log_uniform(parse_crn("A -> B\\nB -> C"), 1000, 0.1, 10.0)
        >>> r.shape, bool(r.min() >= 0.1), bool(r.max() <= 10.0)
        ((1000, 2), True, True)
        >>> bool(abs(np.log(r).mean()) < 0.1)    # log-uniform: centred on 1
        True
    """
    base = _base_rates(network)
    n = _count("n", n)
    rng = np.random.default_rng(seed)
    if factor is not None:
        if low is not None or high is not None:
            raise ValueError(
                f"factor={factor!r} perturbs the network's rates; low and high "
                f"(given: {low!r}, {high!r}) set a range instead: pass one or the "
                "other."
            )
        f = _positive_finite("factor", factor)
        if f < 1:
            raise ValueError(f"factor must be >= 1, got {factor!r}.")
        u = rng.uniform(-math.log(f), math.log(f), size=(n, base.size))
        return base[None, :] * np.exp(u)
    low = 0.1 if low is None else low
    high = 10.0 if high is None else high
    lo, hi = _positive_finite("low", low), _positive_finite("high", high)
    if lo > hi:
        raise ValueError(f"low = {low!r} is larger than high = {high!r}.")
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=(n, base.size)))


def grid(network, values: Mapping) -> np.ndarray:
    """Every combination of the given values of some rate constants; the other
    reactions keep the network's rates. Rows in C order: the last reaction named
    varies fastest, as `np.meshgrid(..., indexing="ij")`.

    Arguments:
        network: a `CRN` or a `MassActionNetwork`.
        values: `{reaction: values}`, one or two entries (more are allowed: the
            grid has the product of their lengths as rows); each reaction named as
            `reaction_index` accepts; values positive and finite (`np.geomspace`
            makes a log-spaced range).

    Example:
        >>> import numpy as np
        >>> from jaxcrn import parse_crn, scan
        >>> crn = parse_crn("A -> B\\nB -> C\\nC -> D")
        >>> scan.grid(crn, {0: [1.0, 2.0], "k2": np.geomspace(0.1, 10.0, 3)})
        array([[ 1. ,  1. ,  0.1],
               [ 1. ,  1. ,  1. ],
               [ 1. ,  1. , 10. ],
               [ 2. ,  1. ,  0.1],
               [ 2. ,  1. ,  1. ],
               [ 2. ,  1. , 10. ]])
    """
    base = _base_rates(network)
    if not isinstance(values, Mapping) or not values:
        raise ValueError(
            "values must be a non-empty mapping {reaction: values}, e.g. "
            "{'k0': np.geomspace(0.1, 10, 5)}."
        )
    index, axes = [], []
    for name, vals in values.items():
        i = reaction_index(network, name)
        if i in index:
            raise ValueError(f"reaction {name!r} is named twice (reaction {i}).")
        v = np.asarray(vals, dtype=np.float64).reshape(-1)
        if v.size == 0:
            raise ValueError(f"reaction {name!r}: no values given.")
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise ValueError(
                f"reaction {name!r}: value {v[bad][0]!r} is not a positive finite "
                "rate constant."
            )
        index.append(i)
        axes.append(v)
    combos = np.array(list(itertools.product(*axes)), dtype=np.float64)
    out = np.repeat(base[None, :], combos.shape[0], axis=0)
    out[:, index] = combos
    return out


def one_at_a_time(network, factor: float = 10.0) -> np.ndarray:
    """The network's rates, then each reaction's rate times `factor` and divided by
    it, one reaction at a time: `1 + 2 * reactions` rows, row `1 + 2 i` the rate
    of reaction `i` times `factor`, row `2 + 2 i` divided by it.

    Example:
        >>> from jaxcrn import parse_crn, scan
        >>> scan.one_at_a_time(parse_crn("A -> B  [k=2]\\nB -> C"), 4.0)
        array([[2.  , 1.  ],
               [8.  , 1.  ],
               [0.5 , 1.  ],
               [2.  , 4.  ],
               [2.  , 0.25]])
    """
    base = _base_rates(network)
    f = _positive_finite("factor", factor)
    r = base.size
    out = np.repeat(base[None, :], 1 + 2 * r, axis=0)
    i = np.arange(r)
    out[1 + 2 * i, i] *= f
    out[2 + 2 * i, i] /= f
    return out


def cross(inputs, rates) -> tuple[np.ndarray, np.ndarray]:
    """Every input vector under every rate set: `(inputs, rates)` of `n * K` rows,
    row `k * n + i` input `i` under rate set `k` (reshape a result's arrays to
    `(K, n, ...)` to index them by rate set).

    Example:
        >>> import numpy as np
        >>> from jaxcrn import scan
        >>> x, r = scan.cross(np.array([[1.0], [2.0]]), np.array([[1.0], [5.0]]))
        >>> x[:, 0].tolist(), r[:, 0].tolist()
        ([1.0, 2.0, 1.0, 2.0], [1.0, 1.0, 5.0, 5.0])
    """
    from ._network import real_array

    x = real_array("inputs", inputs)
    k = real_array("rates", rates)
    if x.ndim != 2 or k.ndim != 2:
        raise ValueError(
            f"inputs has shape {x.shape} and rates {k.shape}; expected (n, inputs) "
            "and (K, reactions)."
        )
    return np.tile(x, (k.shape[0], 1)), np.repeat(k, x.shape[0], axis=0)
