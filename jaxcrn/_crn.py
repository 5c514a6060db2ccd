"""Symbolic, hashable chemical reaction networks: `Reaction`, `Signal`, `CRN`.

The text format (extension `.crn`) has one statement per line; `#` starts a comment:

```
A + B -> C              # rate constant 1 when none is given
2 X -> Y  [k=0.5]
A <=> B   [kf=1, kr=2]  # a reversible pair is two reactions
0 -> A    [k=0.1]       # 0 is the empty complex
init A = 1.5            # initial concentration (default 0)
input x0 = X0p - X0n    # dual-rail input: x0 > 0 sets X0p, x0 < 0 sets X0n
output y0 = Y0p - Y0n   # an output read as a difference of species
```

Names are ASCII letters, digits and `_`, not starting with a digit. A coefficient is
a positive integer (at most `MAX_COEFFICIENT`, and at most `MAX_ORDER` in all on a
reaction's left side) separated from its species by spaces or `*` (`2 X`, `2*X`);
`2X` is an error, never read as `2 X`. Lines end at `\n`,
`\r\n` or `\r` only; outside comments a line holds printable ASCII, spaces and
tabs; a byte-order mark at the very start is ignored.
"""

import dataclasses
import functools
import math
import os
import re
from collections.abc import Iterable, Mapping


__all__ = [
    "CRN",
    "CRNSyntaxError",
    "Reaction",
    "Signal",
    "format_crn",
    "load_crn",
    "parse_crn",
    "save_crn",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_KEYWORDS = ("init", "input", "output")
MAX_COEFFICIENT = 2**31 - 1  # what every compiled layout's int32 arrays hold
# The total reactant coefficient (the order) is bounded too: mass action x**n
# under- or overflows float64 for n above ~1,000 unless x is within 2x of 1, and
# the kinetics expand reactants by multiplicity (one operation each), so that the
# compiled program grows with n (`1000 A -> B`: 26 s to compile for one sample,
# `3000 A -> B`: 105 s and 1.9 GB; a fuzzed reaction of higher order took a test
# process to 20 GB).
MAX_ORDER = 1000


@functools.lru_cache(maxsize=1 << 16)
def _is_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def _check_name(name: object, what: str) -> str:
    if not _is_name(name):
        raise ValueError(
            f"{what} {name!r} is not a valid species name; names match "
            "[A-Za-z_][A-Za-z0-9_]* (letters, digits and '_', not starting with a "
            "digit)."
        )
    return name  # pyright: ignore[reportReturnType]


def _check_positive_float(value: object, what: str) -> float:
    try:
        f = float(value)  # pyright: ignore[reportArgumentType]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}.")
    return f


def _normalise_complex(
    terms: Iterable[tuple[str, int]] | Mapping[str, int] | str, what: str
) -> tuple[tuple[str, int], ...]:
    """Merge repeated species (first appearance wins the position)."""
    if isinstance(terms, str):
        terms = [(terms, 1)]
    elif isinstance(terms, Mapping):
        terms = list(terms.items())
    merged: dict[str, int] = {}
    for term in terms:
        if isinstance(term, str):
            name, coeff = term, 1
        else:
            name, coeff = term
        _check_name(name, f"{what} species")
        if isinstance(coeff, bool) or not isinstance(coeff, int | _np_integer()):
            raise ValueError(
                f"The coefficient of {name} in the {what} must be a positive integer, "
                f"got {coeff!r}."
            )
        coeff = int(coeff)
        if coeff <= 0:
            raise ValueError(
                f"The coefficient of {name} in the {what} must be a positive integer, "
                f"got {coeff}."
            )
        merged[name] = merged.get(name, 0) + coeff
        if merged[name] > MAX_COEFFICIENT:
            raise ValueError(
                f"The coefficient of {name} in the {what} is {merged[name]}; "
                f"coefficients are at most {MAX_COEFFICIENT} (2**31 - 1)."
            )
    return tuple(merged.items())


@functools.cache
def _np_integer():
    import numpy as np

    return np.integer


@dataclasses.dataclass(frozen=True)
class Reaction:
    """One mass-action reaction `reactants -> products` with rate constant `rate`.

    Complexes are tuples of `(species, coefficient)` pairs; a species appears at most
    once per complex (repeats are merged) and coefficients are positive integers.
    The empty complex is `()`.

    Example:
        >>> Reaction((("A", 1), ("B", 1)), (("C", 1),), rate=0.5)
        Reaction('A + B -> C', rate=0.5)
        >>> Reaction.from_text("2 X -> Y").order
        2
    """

    reactants: tuple[tuple[str, int], ...]
    products: tuple[tuple[str, int], ...]
    rate: float = 1.0

    def __post_init__(self):
        object.__setattr__(
            self, "reactants", _normalise_complex(self.reactants, "reactants")
        )
        object.__setattr__(
            self, "products", _normalise_complex(self.products, "products")
        )
        object.__setattr__(self, "rate", _check_positive_float(self.rate, "rate"))
        if self.order > MAX_ORDER:
            raise ValueError(
                f"The reactants have total coefficient {self.order}; a reaction's "
                f"order (its total reactant coefficient) is at most {MAX_ORDER:,} "
                "(mass action of higher order under- or overflows float64)."
            )

    @classmethod
    def from_text(cls, text: str) -> "Reaction":
        """Parse a single irreversible reaction such as `"A + 2 B -> C [k=3]"`."""
        crn = parse_crn(text)
        if len(crn.reactions) != 1 or crn.init or crn.inputs or crn.outputs:
            raise ValueError(
                f"{text!r} is not a single irreversible reaction; use parse_crn for "
                "several statements."
            )
        return crn.reactions[0]

    @property
    def order(self) -> int:
        """Molecularity: the total reactant coefficient (0 for `0 -> X`)."""
        return sum(c for _, c in self.reactants)

    @property
    def net(self) -> dict[str, int]:
        """Net stoichiometry `products - reactants`, zero entries dropped."""
        out: dict[str, int] = {}
        for s, c in self.reactants:
            out[s] = out.get(s, 0) - c
        for s, c in self.products:
            out[s] = out.get(s, 0) + c
        return {s: c for s, c in out.items() if c != 0}

    def text(self) -> str:
        """The reaction as one line of the `.crn` format."""
        lhs = _format_complex(self.reactants)
        rhs = _format_complex(self.products)
        rate = "" if self.rate == 1.0 else f"  [k={_format_float(self.rate)}]"
        return f"{lhs} -> {rhs}{rate}"

    def __repr__(self) -> str:
        lhs = _format_complex(self.reactants)
        rhs = _format_complex(self.products)
        return f"Reaction('{lhs} -> {rhs}', rate={self.rate!r})"


@dataclasses.dataclass(frozen=True)
class Signal:
    """An `input` or `output` declaration: value = [pos] - [neg] (or just [pos]).

    An input may record the preprocessing its network was trained with: the value
    set is `(raw - mean) / std` (`mean=0, std=1`: none). Compiled networks record
    it from the model file; `jaxcrn simulate --inputs raw.csv --preprocess` applies
    it; the concentrations are always set from the value as given.

    Example:
        >>> Signal("x0", "X0p", "X0n").text("input")
        'input x0 = X0p - X0n'
        >>> Signal("x0", "X0p", "X0n", mean=5.8, std=0.5).text("input")
        'input x0 = X0p - X0n  [mean=5.8, std=0.5]'
    """

    name: str
    pos: str
    neg: str | None = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        try:
            mean, std = float(self.mean), float(self.std)
        except (TypeError, ValueError):
            raise ValueError(
                f"Signal {self.name}: mean and std must be numbers, got "
                f"{self.mean!r} and {self.std!r}."
            ) from None
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(
                f"Signal {self.name}: mean must be finite and std positive and "
                f"finite, got mean={self.mean!r}, std={self.std!r}."
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        _check_name(self.name, "signal name")
        _check_name(self.pos, "species")
        if self.neg is not None:
            _check_name(self.neg, "species")
            if self.neg == self.pos:
                raise ValueError(
                    f"Signal {self.name} uses {self.pos} for both rails; a dual-rail "
                    "signal needs two different species."
                )

    @property
    def species(self) -> tuple[str, ...]:
        return (self.pos,) if self.neg is None else (self.pos, self.neg)

    @property
    def preprocessed(self) -> bool:
        """Whether a preprocessing other than the identity is recorded."""
        return self.mean != 0.0 or self.std != 1.0

    def text(self, keyword: str) -> str:
        rhs = self.pos if self.neg is None else f"{self.pos} - {self.neg}"
        opts = ""
        if self.preprocessed:
            opts = f"  [mean={_format_float(self.mean)}, std={_format_float(self.std)}]"
        return f"{keyword} {self.name} = {rhs}{opts}"


@dataclasses.dataclass(frozen=True)
class CRN:
    """A chemical reaction network: reactions, initial concentrations, inputs, outputs.

    Immutable and hashable, so it can be a dictionary key or a static argument.
    Species are ordered by first appearance (reactions, then `init`, then signals).

    Arguments:
        reactions: the reactions, in order.
        init: `(species, concentration)` pairs (a dict is accepted), each species at
            most once, concentrations finite and >= 0. Unlisted species start at 0.
        inputs: `Signal`s that set initial concentrations from an input vector.
        outputs: `Signal`s read off the final state.

    Example:
        >>> crn = parse_crn("A + B -> C\\ninit A = 1\\ninit B = 2")
        >>> crn.species
        ('A', 'B', 'C')
        >>> crn == parse_crn(format_crn(crn))
        True
    """

    reactions: tuple[Reaction, ...] = ()
    init: tuple[tuple[str, float], ...] = ()
    inputs: tuple[Signal, ...] = ()
    outputs: tuple[Signal, ...] = ()

    def __post_init__(self):
        reactions = tuple(self.reactions)
        for r in reactions:
            if not isinstance(r, Reaction):
                raise TypeError(f"reactions must be Reaction objects, got {r!r}.")
        init_items = self.init.items() if isinstance(self.init, Mapping) else self.init
        init: list[tuple[str, float]] = []
        seen: set[str] = set()
        for item in init_items:
            name, value = item
            _check_name(name, "init species")
            if name in seen:
                raise ValueError(f"Species {name} has two `init` values.")
            seen.add(name)
            try:
                value = float(value) + 0.0  # -0 is 0
            except (TypeError, ValueError):
                raise ValueError(
                    f"init {name} must be a number, got {value!r}."
                ) from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"init {name} = {value!r} is not a valid concentration; "
                    "concentrations are finite and >= 0."
                )
            init.append((name, value))
        object.__setattr__(self, "reactions", reactions)
        object.__setattr__(self, "init", tuple(init))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        known = set(self._reaction_species()) | seen
        for kind, signals in (("input", self.inputs), ("output", self.outputs)):
            names: set[str] = set()
            for sig in signals:
                if not isinstance(sig, Signal):
                    raise TypeError(f"{kind}s must be Signal objects, got {sig!r}.")
                if sig.name in names:
                    raise ValueError(f"Two {kind}s are named {sig.name}.")
                if kind == "output" and sig.preprocessed:
                    raise ValueError(
                        f"output {sig.name} has a mean/std; only inputs record "
                        "preprocessing."
                    )
                names.add(sig.name)
                for s in sig.species:
                    if s not in known:
                        raise ValueError(
                            f"{kind} {sig.name} uses species {s}, which appears in no "
                            "reaction or init statement."
                        )

    def _reaction_species(self) -> dict[str, None]:
        out: dict[str, None] = {}
        for r in self.reactions:
            for s, _ in r.reactants:
                out[s] = None
            for s, _ in r.products:
                out[s] = None
        return out

    @functools.cached_property
    def species(self) -> tuple[str, ...]:
        """All species, in order of first appearance."""
        out = self._reaction_species()
        for s, _ in self.init:
            out[s] = None
        for sig in self.inputs + self.outputs:
            for s in sig.species:
                out[s] = None
        return tuple(out)

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.reactions, self.init, self.inputs, self.outputs))

    def __hash__(self) -> int:
        return self._hash

    @property
    def initial(self) -> dict[str, float]:
        """The `init` concentrations as a dict."""
        return dict(self.init)

    def with_rates(self, rates: Iterable[float]) -> "CRN":
        """A copy with new rate constants, one per reaction."""
        rates = list(rates)
        if len(rates) != len(self.reactions):
            raise ValueError(
                f"rates has {len(rates)} entries but the network has "
                f"{len(self.reactions)} reactions."
            )
        return dataclasses.replace(
            self,
            reactions=tuple(
                dataclasses.replace(r, rate=k)
                for r, k in zip(self.reactions, rates, strict=True)
            ),
        )

    def __repr__(self) -> str:
        return (
            f"CRN({len(self.species)} species, {len(self.reactions)} reactions, "
            f"{len(self.inputs)} inputs, {len(self.outputs)} outputs)"
        )

    def __str__(self) -> str:
        return format_crn(self)


def _show(text: str, limit: int = 60) -> str:
    """A line as quoted in a message: stripped, escaped, cut to `limit` characters."""
    text = text.strip(" \t\f\v")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class CRNSyntaxError(ValueError):
    """A `.crn` text could not be parsed. `errors` lists `(line, text, message)`.

    All problems in a file are collected and reported together, one per line (the
    message shows the first `MAX_SHOWN` and counts the rest).
    """

    MAX_SHOWN = 10

    def __init__(self, errors: list[tuple[int, str, str]], path: str | None = None):
        self.errors = list(errors)
        self.path = path
        super().__init__(self._message())

    def lines(self, limit: int | None = None) -> list[str]:
        """One line per error: `path, line N: "text": message`; at most `limit`
        (and one line saying how many more there are)."""
        where = f"{self.path}, " if self.path else ""
        shown = self.errors if limit is None else self.errors[:limit]
        out = [
            f'{where}line {n}: "{_show(text)}": {_show(msg, 1000)}'
            for n, text, msg in shown
        ]
        if len(shown) < len(self.errors):
            out.append(f"... and {len(self.errors) - len(shown)} more errors")
        return out

    def _message(self) -> str:
        lines = self.lines(self.MAX_SHOWN)
        if len(self.errors) == 1:
            return lines[0]
        return f"{len(self.errors)} errors:\n" + "\n".join(lines)


def _format_float(x: float) -> str:
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") and "e" not in s else s


def _format_complex(terms: tuple[tuple[str, int], ...]) -> str:
    if not terms:
        return "0"
    return " + ".join(name if c == 1 else f"{c} {name}" for name, c in terms)


def format_crn(crn: CRN, *, header: bool = True) -> str:
    """Print a CRN in the `.crn` text format; `parse_crn` reads it back unchanged.

    Example:
        >>> print(format_crn(parse_crn("2 X -> Y [k=0.5]"), header=False))
        2 X -> Y  [k=0.5]
        <BLANKLINE>
    """
    lines = []
    if header:
        lines.append(
            f"# jaxcrn CRN: {len(crn.species)} species, {len(crn.reactions)} reactions"
        )
    lines.extend(r.text() for r in crn.reactions)
    lines.extend(f"init {s} = {_format_float(v)}" for s, v in crn.init)
    lines.extend(sig.text("input") for sig in crn.inputs)
    lines.extend(sig.text("output") for sig in crn.outputs)
    return "\n".join(lines) + "\n"


_A = re.ASCII  # \s, \d and \w mean ASCII only: no Unicode digits or spaces
_TERM = re.compile(r"\s*(?:([0-9]+)(?:\s*\*\s*|\s+))?([A-Za-z_][A-Za-z0-9_]*)\s*", _A)
_GLUED = re.compile(r"([0-9]+)\s*([A-Za-z_][A-Za-z0-9_]*)", _A)
_DECIMAL = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# a plain decimal number, the one syntax of numbers in jaxcrn's text files (.crn,
# CSV, the raw dataset tables); float() also takes "5_5", "nan" and "١"
DECIMAL_NUMBER = re.compile(_DECIMAL, _A)
_NUMBER = re.compile(rf"\s*({_DECIMAL}|[-+]?inf|nan)\s*", _A)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _LineError(Exception):
    pass


def _parse_coefficient(digits: str, name: str) -> int:
    if len(digits.lstrip("0")) > len(str(MAX_COEFFICIENT)) or (
        int(digits) > MAX_COEFFICIENT
    ):
        raise _LineError(
            f"the coefficient of {name} is too large: coefficients are at most "
            f"{MAX_COEFFICIENT} (2**31 - 1)"
        )
    coeff = int(digits)
    if coeff == 0:
        raise _LineError(
            f"stoichiometric coefficient of {name} must be a positive integer, got 0"
        )
    return coeff


def _parse_complex(text: str, side: str) -> tuple[tuple[str, int], ...]:
    stripped = text.strip()
    if stripped == "":
        raise _LineError(
            f"expected {side} before the arrow (write 0 for the empty complex)"
            if side == "reactants"
            else f"expected {side} after the arrow (write 0 for the empty complex)"
        )
    if stripped == "0":
        return ()
    parts = text.split("+")
    terms: list[tuple[str, int]] = []
    for i, part in enumerate(parts):
        if part.strip() == "":
            if i == 0:
                raise _LineError("expected a species name before '+'")
            raise _LineError("expected a species name after '+'")
        m = _TERM.fullmatch(part)
        if m is None:
            p = part.strip()
            glued = _GLUED.fullmatch(p)
            if glued is not None:
                n, name = glued.groups()
                raise _LineError(
                    f"{p!r}: a species name cannot start with a digit, and a "
                    "coefficient is separated from its species by a space or '*': "
                    f"write '{n} {name}' for {n} molecules of {name}, or rename "
                    "the species to start with a letter or '_'"
                )
            if re.fullmatch(r"[-+]?[0-9]*\.[0-9]*\s*\*?\s*[A-Za-z_]\w*", p, _A) or (
                re.match(r"-\s*[0-9]", p, _A)
            ):
                raise _LineError(
                    f"stoichiometric coefficient in {p!r} must be a positive integer"
                )
            if re.fullmatch(r"0+", p):
                raise _LineError(
                    "0 is the empty complex and cannot be combined with species"
                )
            raise _LineError(
                f"{_show(p, 40)!r} is not a species; names are letters, digits and "
                "'_', not starting with a digit, optionally preceded by a positive "
                "integer coefficient and a space ('2 X')"
            )
        name = m.group(2)
        coeff = 1 if m.group(1) is None else _parse_coefficient(m.group(1), name)
        terms.append((name, coeff))
    return _normalise_complex(terms, side)


def _parse_number(text: str, what: str) -> float:
    m = _NUMBER.fullmatch(text)
    if m is None:
        raise _LineError(f"expected a number for {what}, got {text.strip()!r}")
    return float(m.group(1))


def _parse_options(text: str, allowed: tuple[str, ...]) -> dict[str, float]:
    """`key=value, ...` inside `[...]`: rates (k, kf, kr) positive and finite, an
    input's mean finite and its std positive and finite."""
    out: dict[str, float] = {}
    if text.strip() == "":
        raise _LineError(
            "empty [...]; expected e.g. "
            + ("[mean=0.5, std=2]" if "mean" in allowed else "[k=0.5]")
        )
    for item in text.split(","):
        if "=" not in item:
            raise _LineError(f"expected key=value inside [...], got {item.strip()!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in allowed:
            raise _LineError(
                f"unknown option {_show(key, 20)!r}; "
                + ("an input takes " if "mean" in allowed else "this reaction takes ")
                + " and ".join(repr(a) for a in allowed)
            )
        if key in out:
            raise _LineError(f"option {key!r} is given twice")
        v = _parse_number(value, key)
        if key == "mean":
            if not math.isfinite(v):
                raise _LineError(f"mean={value} must be a finite number")
        elif not math.isfinite(v) or v <= 0:
            what = "std" if key == "std" else f"rate {key}"
            raise _LineError(f"{what}={value} must be a positive finite number")
        out[key] = v
    return out


def _split_options(line: str) -> tuple[str, str | None]:
    """`body [options]` -> (body, options or None)."""
    m = re.fullmatch(r"(.*?)(?:\[(.*)\])?\s*", line, re.S)
    assert m is not None
    body, opts = m.group(1), m.group(2)
    if "[" in body or "]" in body or (opts is not None and "[" in opts):
        raise _LineError("unbalanced '[' or ']'; options go at the end, as [k=0.5]")
    return body, opts


def _parse_reaction(line: str) -> list[Reaction]:
    body, opts = _split_options(line)
    n_rev = body.count("<=>")
    n_fwd = body.replace("<=>", "").count("->")
    if n_rev + n_fwd != 1:
        raise _LineError("expected exactly one arrow ('->' or '<=>') per reaction")
    if "<-" in body.replace("<=>", "") or "=>" in body.replace("<=>", ""):
        raise _LineError("unknown arrow; use '->' or '<=>'")
    if n_rev:
        lhs, rhs = body.split("<=>")
        options = _parse_options(opts, ("kf", "kr")) if opts is not None else {}
        reactants = _parse_complex(lhs, "reactants")
        products = _parse_complex(rhs, "products")
        return [
            Reaction(reactants, products, options.get("kf", 1.0)),
            Reaction(products, reactants, options.get("kr", 1.0)),
        ]
    lhs, rhs = body.split("->")
    options = _parse_options(opts, ("k",)) if opts is not None else {}
    return [
        Reaction(
            _parse_complex(lhs, "reactants"),
            _parse_complex(rhs, "products"),
            options.get("k", 1.0),
        )
    ]


def _parse_signal(rest: str, keyword: str) -> Signal:
    body, opts = _split_options(rest)
    if opts is not None and keyword == "output":
        raise _LineError("an output takes no options")
    options = _parse_options(opts, ("mean", "std")) if opts is not None else {}
    m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*", body, _A)
    if m is None:
        raise _LineError(
            f"expected '{keyword} NAME = SPECIES' or '{keyword} NAME = POS - NEG'"
        )
    name, rhs = m.group(1), m.group(2)
    parts = [p.strip() for p in rhs.split("-")]
    if len(parts) > 2 or any(p == "" for p in parts):
        raise _LineError(
            f"expected '{keyword} {name} = SPECIES' or '{keyword} {name} = POS - NEG'"
        )
    for p in parts:
        if not _is_name(p):
            raise _LineError(f"{_show(p, 40)!r} is not a species name")
    if len(parts) == 2 and parts[0] == parts[1]:
        raise _LineError(f"{keyword} {name} uses {parts[0]} for both rails")
    return Signal(
        name,
        parts[0],
        parts[1] if len(parts) == 2 else None,
        mean=options.get("mean", 0.0),
        std=options.get("std", 1.0),
    )


def _check_characters(line: str) -> None:
    """Outside comments a line holds printable ASCII, spaces and tabs."""
    for col, c in enumerate(line, start=1):
        if not (" " <= c <= "~" or c in "\t\f\v"):
            import unicodedata

            name = unicodedata.name(c, "a control character")
            raise _LineError(
                f"unexpected character U+{ord(c):04X} ({name}) in column {col}; "
                "outside comments, statements are written in ASCII letters, digits, "
                "spaces and tabs"
            )


def split_lines(text: str) -> list[str]:
    """Lines as the `.crn` format counts them: ended by `\n`, `\r\n` or `\r` only
    (a form feed, U+2028 or U+0085 does not end a line)."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_crn(text: str, *, path: str | None = None) -> CRN:
    """Parse the `.crn` text format into a `CRN`.

    Every problem in the text is reported at once, each with its line number, in a
    `CRNSyntaxError` (a `ValueError`).

    Arguments:
        text: the file contents.
        path: the file name, used in error messages only.

    Example:
        >>> crn = parse_crn('''
        ... A <=> B   [kf=1, kr=2]
        ... init A = 1.5
        ... ''')
        >>> [r.rate for r in crn.reactions]
        [1.0, 2.0]
        >>> parse_crn("A + -> B")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        jaxcrn._crn.CRNSyntaxError: line 1: "A + -> B": expected a species name ...
    """
    reactions: list[Reaction] = []
    init: list[tuple[str, float]] = []
    init_line: dict[str, int] = {}
    signals: dict[str, list[tuple[Signal, int, str]]] = {"input": [], "output": []}
    errors: list[tuple[int, str, str]] = []
    if text.startswith("\ufeff"):  # a byte-order mark (Windows editors write one)
        text = text[1:]
    for lineno, raw in enumerate(split_lines(text), start=1):
        line = raw.split("#", 1)[0]
        try:
            _check_characters(line)
            if line.strip() == "":
                continue
            first = line.split(None, 1)[0]
            if "->" in line or "<=>" in line:
                reactions.extend(_parse_reaction(line))
            elif first == "init":
                m = re.fullmatch(r"\s*init\s+(\S+?)\s*=\s*(.*?)\s*", line, _A)
                if m is None:
                    raise _LineError("expected 'init SPECIES = VALUE'")
                name = m.group(1)
                if not _is_name(name):
                    raise _LineError(f"{_show(name, 40)!r} is not a species name")
                value = _parse_number(m.group(2), f"init {name}")
                if not math.isfinite(value) or value < 0:
                    raise _LineError(
                        f"initial concentration {m.group(2)} is invalid; "
                        "concentrations are finite and >= 0"
                    )
                if name in init_line:
                    raise _LineError(
                        f"duplicate init for {name} (first set on line "
                        f"{init_line[name]})"
                    )
                init_line[name] = lineno
                init.append((name, value))
            elif first in ("input", "output"):
                sig = _parse_signal(line.strip()[len(first) :], first)
                for other, other_line, _ in signals[first]:
                    if other.name == sig.name:
                        raise _LineError(
                            f"duplicate {first} {sig.name} (first declared on line "
                            f"{other_line})"
                        )
                signals[first].append((sig, lineno, raw))
            else:
                raise _LineError(
                    "expected a reaction such as 'A + B -> C' or a statement "
                    "starting with init, input or output"
                )
        except _LineError as e:
            errors.append((lineno, raw, str(e)))
        except ValueError as e:  # from Reaction/Signal validation
            errors.append((lineno, raw, str(e).rstrip(".")))
    known = {s for r in reactions for s, _ in r.reactants + r.products}
    known.update(init_line)
    for kind in ("input", "output"):
        for sig, lineno, raw in signals[kind]:
            for s in sig.species:
                if s not in known:
                    errors.append(
                        (
                            lineno,
                            raw,
                            f"unknown species {s} in {kind} {sig.name} (it appears in "
                            "no reaction or init statement)",
                        )
                    )
    if errors:
        errors.sort(key=lambda e: e[0])
        raise CRNSyntaxError(errors, path)
    return CRN(
        tuple(reactions),
        tuple(init),
        tuple(s for s, _, _ in signals["input"]),
        tuple(s for s, _, _ in signals["output"]),
    )


def decode_text(data: bytes, path: str | None = None) -> str:
    r"""UTF-8 bytes as text; invalid UTF-8 is a `CRNSyntaxError` naming the line,
    column and byte offset of the first bad byte. (A byte-order mark is kept: the
    readers drop one at the start.)

    Example:
        >>> decode_text(b"A -> B\n\xff -> C\n")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        jaxcrn._crn.CRNSyntaxError: line 2: ...: invalid UTF-8: byte 0xff at byte offset 7 ...
    """  # noqa: E501
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        breaks = list(re.finditer(rb"\r\n|\r|\n", before))
        line_start = breaks[-1].end() if breaks else 0
        end = re.search(rb"\r|\n", data[e.start :])
        line_end = e.start + end.start() if end else len(data)
        raw = data[line_start:line_end].decode("utf-8", "replace")
        col = len(data[line_start : e.start].decode("utf-8", "replace")) + 1
        raise CRNSyntaxError(
            [
                (
                    len(breaks) + 1,
                    raw,
                    f"invalid UTF-8: byte 0x{data[e.start]:02x} at byte offset "
                    f"{e.start} (column {col}); save the file as UTF-8 text"
                    + (
                        " (it looks like UTF-16)"
                        if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                        else ""
                    ),
                )
            ],
            path,
        ) from None
    return text


def load_crn(path: str | os.PathLike) -> CRN:
    """Read a `.crn` file. Raises `CRNSyntaxError` naming the file and line.

    The file is UTF-8 (a leading byte-order mark is ignored). `OSError`s (no such
    file, a directory, no permission) are raised as they are.

    Example:
        >>> crn = load_crn("examples/reversible.crn")  # doctest: +SKIP
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return parse_crn(decode_text(data, path), path=path)


def save_crn(crn: CRN, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write `crn` to `path` in the `.crn` format, atomically.

    Refuses to replace an existing file unless `overwrite=True`.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "net.crn")
        >>> save_crn(parse_crn("A -> B"), path)
        >>> import pathlib
        >>> print(pathlib.Path(path).read_text(), end="")
        # jaxcrn CRN: 2 species, 1 reactions
        A -> B
    """
    from ._files import write_output

    write_output(path, format_crn(crn), overwrite=overwrite)
