"""SBML in and out.

Export (`to_sbml`, `save_sbml`) writes SBML Level 3 Version 2 core with mass-action
kinetic laws and needs nothing beyond the standard library. Import (`read_sbml`,
`load_sbml`) reads mass-action models through python-libsbml (the `sbml` extra,
imported only when a model is read).

How an SBML model becomes a `CRN`:

- A species' value in the CRN is the quantity its symbol stands for in the rate
  laws: its concentration (amount / compartment size), or its amount when the
  species has `hasOnlySubstanceUnits="true"`. `SBMLModel.amounts` and
  `SBMLModel.concentrations` convert simulated values back.
- A kinetic law `v` is the reaction's rate in substance per time, so a species of
  compartment size `V` changes by `stoichiometry * v / V` (by `stoichiometry * v`
  for an amount species). Each mass-action term `c * prod(S^n)` becomes a reaction
  whose rate constant is `c / V`; when a reaction's species live in compartments of
  different sizes, it becomes one reaction per size (exact, integer stoichiometry).
- Global and local parameters and compartment sizes are substituted (local
  parameters shadow every other identifier, as SBML says).
- A reversible law `kf * prod(reactants) - kr * prod(products)` becomes two
  reactions, one each way.
- Boundary and constant species are not changed by reactions: they become
  catalysts (on both sides of each reaction they take part in), so they keep their
  initial values.
- Modifiers (`listOfModifiers`) may appear as factors of a mass-action term; they
  become catalysts too.

Anything else (rules, events, function definitions, initial assignments, delays,
other kinetic laws, non-integer stoichiometry, packages such as `comp` or `fbc`)
raises `SBMLImportError` naming the SBML element and the construct, so a model is
never imported as a different one.
"""

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ._crn import CRN, MAX_ORDER, Reaction


__all__ = [
    "SBMLImportError",
    "SBMLModel",
    "load_sbml",
    "read_sbml",
    "save_sbml",
    "to_sbml",
]

# ---------------------------------------------------------------------------------
# Export.

_SID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SMALLEST_NORMAL = 2.2250738585072014e-308  # libsbml rejects subnormal doubles
_MAX_TERMS = 10_000  # a kinetic law expanded to more monomials than this is refused


def _unique(base: str, used: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : the first not in `used` (then added)."""
    name, i = base, 0
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _sid(text: str, default: str) -> str:
    """`text` made into an SBML identifier (letters, digits, '_', no leading digit)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not s or s[0].isdigit():
        s = f"_{s}" if s else default
    return s


def _rate_unit(order: int) -> tuple[str, str]:
    """(id, definition) of the unit of a rate constant of a reaction of `order`:
    `(mole/litre)^(1 - order) / second`."""
    if order == 0:
        uid = "molar_per_second"
    elif order == 1:
        uid = "per_second"
    elif order == 2:
        uid = "per_molar_per_second"
    else:
        uid = f"per_molar{order - 1}_per_second"
    units = []
    if order != 1:
        units.append(
            f'<unit kind="mole" exponent="{1 - order}" scale="0" multiplier="1"/>'
        )
        units.append(
            f'<unit kind="litre" exponent="{order - 1}" scale="0" multiplier="1"/>'
        )
    units.append('<unit kind="second" exponent="-1" scale="0" multiplier="1"/>')
    body = "".join(units)
    return uid, (
        f'      <unitDefinition id="{uid}"><listOfUnits>{body}</listOfUnits>'
        "</unitDefinition>"
    )


def _mathml_rate(compartment: str, k_id: str, reactants) -> str:
    factors = [f"<ci> {compartment} </ci>", f"<ci> {k_id} </ci>"]
    for s, c in reactants:
        if c == 1:
            factors.append(f"<ci> {s} </ci>")
        else:
            factors.append(
                f'<apply><power/><ci> {s} </ci><cn type="integer"> {c} </cn></apply>'
            )
    return "<apply><times/>" + "".join(factors) + "</apply>"


def _attr(text: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(text)


def to_sbml(
    crn: CRN, *, model_id: str = "jaxcrn_model", name: str | None = None
) -> str:
    """The CRN as an SBML Level 3 Version 2 document (a string).

    One compartment of size 1 litre; every species is a concentration (mole/litre)
    with its `init` value (else 0) as the initial concentration. Each reaction has
    the mass-action law `V * k * prod(S^c)` (substance per time, as SBML requires;
    `V` is the compartment size), its rate constant a global parameter with units
    `(mole/litre)^(1 - order) / second`. Generated identifiers (compartment,
    parameters, reactions, model) never collide with species names: `k0`, `R0` or
    `cell` get a suffix when a species already uses the name.

    Inputs and outputs have no SBML equivalent: set the input species' initial
    concentrations in the simulator, and read outputs as differences of species.

    Arguments:
        crn: the network.
        model_id: the SBML model id (made a valid identifier).
        name: the model's name; default `model_id`.

    Example:
        >>> from jaxcrn import parse_crn
        >>> xml = to_sbml(parse_crn("A + B -> C [k=2]\\ninit A = 1"))
        >>> '<species id="A"' in xml and '<parameter id="k0" value="2.0"' in xml
        True
        >>> xml = to_sbml(parse_crn("k0 + cell -> R0"))  # names that collide
        >>> '<parameter id="k0_1"' in xml and '<compartment id="cell_1"' in xml
        True
    """
    init = dict(crn.init)
    tiny = [
        (f"init {s}", v, "use 0 or rescale the concentration unit")
        for s, v in crn.init
        if 0 < v < _SMALLEST_NORMAL
    ] + [
        (
            f"the rate of reaction {i} ({r.text()})",
            r.rate,
            "remove the reaction or rescale the units",
        )
        for i, r in enumerate(crn.reactions)
        if r.rate < _SMALLEST_NORMAL
    ]
    if tiny:
        what, v, fix = tiny[0]
        raise ValueError(
            f"{what} = {v!r} is a subnormal number (below {_SMALLEST_NORMAL:.3g}), "
            f"which libsbml and the simulators built on it cannot read; {fix}."
        )
    used = set(crn.species)
    mid = _unique(_sid(model_id, "jaxcrn_model"), used)
    comp = _unique("cell", used)
    k_ids = [_unique(f"k{i}", used) for i in range(len(crn.reactions))]
    r_ids = [_unique(f"R{i}", used) for i in range(len(crn.reactions))]
    orders = sorted({r.order for r in crn.reactions})
    units = dict(_rate_unit(n) for n in orders)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" '
        'version="2">',
        f"  <model id={_attr(mid)} name={_attr(name if name else model_id)} "
        'substanceUnits="mole" timeUnits="second" volumeUnits="litre" '
        'extentUnits="mole">',
        "    <listOfUnitDefinitions>",
        '      <unitDefinition id="molar"><listOfUnits>'
        '<unit kind="mole" exponent="1" scale="0" multiplier="1"/>'
        '<unit kind="litre" exponent="-1" scale="0" multiplier="1"/>'
        "</listOfUnits></unitDefinition>",
        *(units[n] for n in units),
        "    </listOfUnitDefinitions>",
        "    <listOfCompartments>",
        f'      <compartment id="{comp}" spatialDimensions="3" size="1" '
        'units="litre" constant="true"/>',
        "    </listOfCompartments>",
    ]
    if crn.species:
        out.append("    <listOfSpecies>")
        for s in crn.species:
            out.append(
                f'      <species id="{s}" compartment="{comp}" '
                f'initialConcentration="{float(init.get(s, 0.0))!r}" '
                'substanceUnits="mole" hasOnlySubstanceUnits="false" '
                'boundaryCondition="false" constant="false"/>'
            )
        out.append("    </listOfSpecies>")
    if crn.reactions:
        rate_unit = dict(zip(orders, units, strict=True))
        out.append("    <listOfParameters>")
        for k_id, r in zip(k_ids, crn.reactions, strict=True):
            out.append(
                f'      <parameter id="{k_id}" value="{float(r.rate)!r}" '
                f'units="{rate_unit[r.order]}" constant="true"/>'
            )
        out.append("    </listOfParameters>")
        out.append("    <listOfReactions>")
        for k_id, r_id, r in zip(k_ids, r_ids, crn.reactions, strict=True):
            out.append(f'      <reaction id="{r_id}" reversible="false">')
            for tag, side in (
                ("listOfReactants", r.reactants),
                ("listOfProducts", r.products),
            ):
                if side:
                    out.append(f"        <{tag}>")
                    for s, c in side:
                        out.append(
                            f'          <speciesReference species="{s}" '
                            f'stoichiometry="{c}" constant="true"/>'
                        )
                    out.append(f"        </{tag}>")
            out.append("        <kineticLaw>")
            out.append('          <math xmlns="http://www.w3.org/1998/Math/MathML">')
            out.append("            " + _mathml_rate(comp, k_id, r.reactants))
            out.append("          </math>")
            out.append("        </kineticLaw>")
            out.append("      </reaction>")
        out.append("    </listOfReactions>")
    out.append("  </model>")
    out.append("</sbml>")
    return "\n".join(out) + "\n"


def save_sbml(
    crn: CRN,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    name: str | None = None,
) -> None:
    """Write `to_sbml(crn)` to `path` (atomically); refuses to replace a file unless
    `overwrite`. The model id is the file name without its extension.

    Example:
        >>> import os, tempfile
        >>> from jaxcrn import parse_crn
        >>> path = os.path.join(tempfile.mkdtemp(), "net.xml")
        >>> save_sbml(parse_crn("A -> B"), path)
        >>> with open(path) as f:
        ...     f.read().count("<reaction ")
        1
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a file name.")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (or --force) to replace it."
        )
    from ._files import write_output

    stem = os.path.splitext(os.path.basename(path))[0]
    text = to_sbml(crn, model_id=_sid(stem, "jaxcrn_model"), name=name or stem)
    write_output(path, text, overwrite=overwrite)


# ---------------------------------------------------------------------------------
# Import.


class SBMLImportError(ValueError):
    """An SBML model could not be imported as a mass-action CRN.

    `problems` lists `(element, message)` pairs, `element` naming the SBML element
    (e.g. `"reaction 'R1'"`); all problems of a model are reported together.
    """

    def __init__(self, problems: list[tuple[str, str]], path: str | None = None):
        self.problems = list(problems)
        self.path = path
        super().__init__(self._message())

    def lines(self) -> list[str]:
        where = f"{self.path}: " if self.path else ""
        return [f"{where}{el}: {msg}" for el, msg in self.problems]

    def _message(self) -> str:
        lines = self.lines()
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems:\n" + "\n".join(lines)


@dataclasses.dataclass(frozen=True, eq=False)
class SBMLModel:
    """An SBML model read by `read_sbml`: the `CRN` and what it takes to read the
    CRN's values as SBML quantities.

    Attributes:
        crn: the mass-action network; a species' value is its concentration, or
            its amount for the species in `amount_species`.
        id: the SBML model id.
        name: the SBML model name (the id when unnamed).
        compartments: compartment id -> size.
        species_compartment: species id -> compartment id.
        amount_species: species whose CRN value is an amount
            (`hasOnlySubstanceUnits="true"`).
        constant_species: boundary or constant species (catalysts in `crn`).
        parameters: global parameter id -> value (already substituted in `crn`).
    """

    crn: CRN
    id: str
    name: str
    compartments: Mapping[str, float]
    species_compartment: Mapping[str, str]
    amount_species: frozenset[str]
    constant_species: frozenset[str]
    parameters: Mapping[str, float]

    def _factors(self, species: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per species, the factors that turn a CRN value into an amount and a
        concentration."""
        vol = np.array(
            [self.compartments[self.species_compartment[s]] for s in species], float
        )
        amount = np.array([s in self.amount_species for s in species])
        to_amount = np.where(amount, 1.0, vol)
        return to_amount, to_amount / vol

    def amounts(self, species: Sequence[str], values) -> np.ndarray:
        """Amounts from CRN values (last axis: `species`, e.g. `network.species`).

        Example:
            >>> m = SBMLModel(CRN(init=(("A", 2.0),)), "m", "m", {"c": 0.5},
            ...               {"A": "c"}, frozenset(), frozenset(), {})
            >>> m.amounts(["A"], [2.0]).tolist()  # 2 mol/l in 0.5 l
            [1.0]
        """
        return np.asarray(values, float) * self._factors(list(species))[0]

    def concentrations(self, species: Sequence[str], values) -> np.ndarray:
        """Concentrations from CRN values (last axis: `species`)."""
        return np.asarray(values, float) * self._factors(list(species))[1]


def _libsbml():
    try:
        import libsbml
    except ImportError as e:
        raise ImportError(
            "Reading SBML needs python-libsbml: pip install 'jaxcrn[sbml]' (or pip "
            "install python-libsbml)."
        ) from e
    return libsbml


# packages that do not change a model's dynamics
_HARMLESS_PACKAGES = {"l3v2extendedmath", "layout", "render", "groups"}
_AVOGADRO = 6.02214179e23  # SBML Level 3's value of the avogadro csymbol

_Poly = dict[tuple[tuple[str, int], ...], float]


class _NotMassAction(Exception):
    pass


def _mul(a: _Poly, b: _Poly) -> _Poly:
    out: _Poly = {}
    for ka, ca in a.items():
        for kb, cb in b.items():
            merged = dict(ka)
            for s, e in kb:
                merged[s] = merged.get(s, 0) + e
            key = tuple(sorted(merged.items()))
            out[key] = out.get(key, 0.0) + ca * cb
    return out


def _add(a: _Poly, b: _Poly, sign: float = 1.0) -> _Poly:
    out = dict(a)
    for k, c in b.items():
        out[k] = out.get(k, 0.0) + sign * c
    return out


def _const(p: _Poly) -> float | None:
    if not p:
        return 0.0
    if set(p) == {()}:
        return p[()]
    return None


def _poly(node, resolve, libsbml) -> _Poly:
    """A libsbml AST as a polynomial in the species (other symbols substituted)."""
    t = node.getType()
    n = node.getNumChildren()
    kids = [node.getChild(i) for i in range(n)]
    if t == libsbml.AST_PLUS:
        out: _Poly = {}
        for k in kids:
            out = _add(out, _poly(k, resolve, libsbml))
        return out
    if t == libsbml.AST_MINUS:
        if n == 1:
            return _add({}, _poly(kids[0], resolve, libsbml), -1.0)
        return _add(
            _poly(kids[0], resolve, libsbml), _poly(kids[1], resolve, libsbml), -1.0
        )
    if t == libsbml.AST_TIMES:
        out = {(): 1.0}
        for k in kids:
            out = _mul(out, _poly(k, resolve, libsbml))
        return out
    if t == libsbml.AST_DIVIDE:
        num = _poly(kids[0], resolve, libsbml)
        den = _const(_poly(kids[1], resolve, libsbml))
        if den is None:
            raise _NotMassAction("divides by a species (not mass action)")
        if den == 0:
            raise _NotMassAction("divides by zero")
        return {k: c / den for k, c in num.items()}
    if t in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
        base = _poly(kids[0], resolve, libsbml)
        exp = _const(_poly(kids[1], resolve, libsbml))
        if exp is None:
            raise _NotMassAction("has a species in an exponent (not mass action)")
        cb = _const(base)
        if cb is not None:
            try:
                return {(): float(cb**exp)}
            except (OverflowError, ZeroDivisionError, TypeError) as e:
                raise _NotMassAction(f"cannot evaluate {cb!r}^{exp!r}") from e
        if not float(exp).is_integer() or exp < 0:
            raise _NotMassAction(
                f"raises a species to the power {exp!r} (mass action needs a "
                "non-negative integer power)"
            )
        if exp > MAX_ORDER:
            raise _NotMassAction(
                f"raises a species to the power {exp:g}, above the largest reaction "
                f"order jaxcrn simulates ({MAX_ORDER})"
            )
        out = {(): 1.0}
        for _ in range(int(exp)):
            out = _mul(out, base)
            if len(out) > _MAX_TERMS:
                raise _NotMassAction(
                    f"a power expands to more than {_MAX_TERMS} terms (not mass action)"
                )
        return out
    if t == libsbml.AST_INTEGER:
        return {(): float(node.getInteger())}
    if t in (libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
        return {(): float(node.getReal())}
    if t == libsbml.AST_CONSTANT_PI:
        return {(): math.pi}
    if t == libsbml.AST_CONSTANT_E:
        return {(): math.e}
    if t == libsbml.AST_NAME_AVOGADRO:
        return {(): _AVOGADRO}
    if t == libsbml.AST_NAME:
        return resolve(node.getName())
    if t == libsbml.AST_NAME_TIME:
        raise _NotMassAction("uses time (the csymbol time)")
    if t == libsbml.AST_FUNCTION_DELAY:
        raise _NotMassAction("uses delay()")
    if t == libsbml.AST_FUNCTION:
        raise _NotMassAction(
            f"calls the function definition {node.getName()!r} (function "
            "definitions are not supported)"
        )
    if t == libsbml.AST_FUNCTION_RATE_OF:
        raise _NotMassAction("uses rateOf()")
    what = libsbml.formulaToL3String(node) or node.getName() or f"AST type {t}"
    fn = _constant_functions(libsbml).get(t)
    if fn is not None:  # a function of constants is a constant
        args = [_const(_poly(k, resolve, libsbml)) for k in kids]
        if any(a is None for a in args):
            raise _NotMassAction(
                f"uses {what!r} of a species, which is not a mass-action construct"
            )
        try:
            value = float(fn(*args))
        except (ArithmeticError, ValueError, TypeError) as e:
            raise _NotMassAction(f"cannot evaluate {what!r} ({e})") from None
        return {(): value}
    raise _NotMassAction(f"uses {what!r}, which is not a mass-action construct")


def _piecewise(*args):
    for value, cond in zip(args[0::2], args[1::2], strict=False):
        if cond:
            return value
    if len(args) % 2:
        return args[-1]
    raise ValueError("no piece applies and there is no otherwise")


def _constant_functions(libsbml) -> dict:
    """libsbml AST types that jaxcrn evaluates when every argument is a constant
    (booleans are 1.0 and 0.0)."""
    return {
        libsbml.AST_CONSTANT_TRUE: lambda: 1.0,
        libsbml.AST_CONSTANT_FALSE: lambda: 0.0,
        libsbml.AST_FUNCTION_PIECEWISE: _piecewise,
        libsbml.AST_RELATIONAL_EQ: lambda *a: all(x == a[0] for x in a),
        libsbml.AST_RELATIONAL_NEQ: lambda a, b: a != b,
        libsbml.AST_RELATIONAL_GT: lambda *a: all(x > y for x, y in zip(a, a[1:])),
        libsbml.AST_RELATIONAL_GEQ: lambda *a: all(x >= y for x, y in zip(a, a[1:])),
        libsbml.AST_RELATIONAL_LT: lambda *a: all(x < y for x, y in zip(a, a[1:])),
        libsbml.AST_RELATIONAL_LEQ: lambda *a: all(x <= y for x, y in zip(a, a[1:])),
        libsbml.AST_LOGICAL_AND: lambda *a: all(a),
        libsbml.AST_LOGICAL_OR: lambda *a: any(a),
        libsbml.AST_LOGICAL_NOT: lambda a: not a,
        libsbml.AST_LOGICAL_XOR: lambda *a: sum(bool(x) for x in a) % 2 == 1,
        libsbml.AST_FUNCTION_EXP: math.exp,
        libsbml.AST_FUNCTION_LN: math.log,
        libsbml.AST_FUNCTION_LOG: lambda base, x=None: (
            math.log10(base) if x is None else math.log(x, base)
        ),
        libsbml.AST_FUNCTION_ROOT: lambda deg, x=None: (
            math.sqrt(deg) if x is None else x ** (1.0 / deg)
        ),
        libsbml.AST_FUNCTION_ABS: abs,
        libsbml.AST_FUNCTION_FLOOR: math.floor,
        libsbml.AST_FUNCTION_CEILING: math.ceil,
    }


def _number(value: float, what: str, problems, element) -> float | None:
    if value is None or not math.isfinite(value):
        problems.append((element, f"{what} is {value!r}; expected a finite number"))
        return None
    return float(value)


def read_sbml(path: str | os.PathLike) -> SBMLModel:
    """Read a mass-action SBML model (any level and version) as an `SBMLModel`.

    Needs python-libsbml (`pip install 'jaxcrn[sbml]'`). See the module docstring
    for how SBML constructs map to the CRN; anything outside mass action raises
    `SBMLImportError` naming each offending element and construct.

    Example:
        >>> import os, tempfile
        >>> from jaxcrn import format_crn, parse_crn, save_sbml
        >>> path = os.path.join(tempfile.mkdtemp(), "net.xml")
        >>> save_sbml(parse_crn("A + B <=> C [kf=2, kr=0.5]\\ninit A = 1"), path)
        >>> model = read_sbml(path)
        >>> print(format_crn(model.crn, header=False), end="")
        A + B -> C  [k=2]
        C -> A + B  [k=0.5]
        init A = 1
    """
    libsbml = _libsbml()
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; expected an SBML file.")
    try:
        os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file.") from None
    except OSError as e:  # too long a name, no permission to look, ...
        raise OSError(f"cannot read {path}: {e.strerror or e}.") from None
    doc = libsbml.readSBMLFromFile(path)
    return _from_document(doc, path, libsbml)


def read_sbml_string(text: str, *, path: str | None = None) -> SBMLModel:
    """`read_sbml` for SBML text (`path` is used in messages only).

    Example:
        >>> from jaxcrn import parse_crn, to_sbml
        >>> read_sbml_string(to_sbml(parse_crn("2 X -> Y [k=3]"))).crn.reactions
        (Reaction('2 X -> Y', rate=3.0),)
    """
    libsbml = _libsbml()
    doc = libsbml.readSBMLFromString(text)
    return _from_document(doc, path, libsbml)


def load_sbml(path: str | os.PathLike) -> CRN:
    """Read a mass-action SBML model as a `CRN` (`read_sbml(path).crn`).

    Species values are concentrations (amounts for species with
    `hasOnlySubstanceUnits`); `read_sbml` also gives the compartment sizes to
    convert them.

    Example:
        >>> import os, tempfile
        >>> from jaxcrn import parse_crn, save_sbml
        >>> path = os.path.join(tempfile.mkdtemp(), "net.xml")
        >>> save_sbml(parse_crn("A -> B [k=0.5]\\ninit A = 1"), path)
        >>> load_sbml(path) == parse_crn("A -> B [k=0.5]\\ninit A = 1")
        True
    """
    return read_sbml(path).crn


def _from_document(doc, path: str | None, libsbml) -> SBMLModel:
    problems: list[tuple[str, str]] = []
    where = path or "SBML text"
    fatal = [
        doc.getError(i)
        for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if fatal:
        e = fatal[0]
        raise SBMLImportError(
            [
                (
                    f"line {e.getLine()}",
                    f"not valid SBML: {e.getMessage().strip()}"
                    + (f" ({len(fatal) - 1} more errors)" if len(fatal) > 1 else ""),
                )
            ],
            path,
        )
    model = doc.getModel()
    if model is None:
        raise SBMLImportError([("document", "has no <model>")], path)
    for i in range(doc.getNumPlugins()):
        pkg = doc.getPlugin(i).getPackageName()
        if pkg not in _HARMLESS_PACKAGES:
            problems.append(
                ("document", f"uses the SBML package {pkg!r}, which is not supported")
            )
    for i in range(model.getNumFunctionDefinitions()):
        fd = model.getFunctionDefinition(i)
        problems.append(
            (
                f"function definition {fd.getId()!r}",
                "function definitions are not "
                "supported (write the kinetic laws out as mass action)",
            )
        )
    for i in range(model.getNumRules()):
        rule = model.getRule(i)
        kind = (
            "algebraic rule"
            if rule.isAlgebraic()
            else "rate rule"
            if rule.isRate()
            else "assignment rule"
        )
        name = rule.getVariable() or rule.getId() or f"#{i + 1}"
        problems.append((f"{kind} for {name!r}", "rules are not supported"))
    for i in range(model.getNumEvents()):
        ev = model.getEvent(i)
        problems.append(
            (f"event {ev.getId() or f'#{i + 1}'!r}", "events are not supported")
        )
    for i in range(model.getNumInitialAssignments()):
        ia = model.getInitialAssignment(i)
        problems.append(
            (
                f"initial assignment to {ia.getSymbol()!r}",
                "initial assignments are not supported (give the value directly)",
            )
        )
    for i in range(model.getNumConstraints()):
        problems.append((f"constraint #{i + 1}", "constraints are not supported"))
    if model.isSetConversionFactor():
        problems.append(
            (
                "model",
                f"has the conversion factor {model.getConversionFactor()!r}; "
                "conversion factors are not supported",
            )
        )

    compartments: dict[str, float] = {}
    for i in range(model.getNumCompartments()):
        c = model.getCompartment(i)
        el = f"compartment {c.getId()!r}"
        if c.getLevel() >= 2 and c.getSpatialDimensionsAsDouble() == 0:
            problems.append((el, "0-dimensional compartments are not supported"))
            continue
        if not c.isSetSize():
            if c.getLevel() >= 3:
                problems.append((el, "has no size; give it one"))
                continue
            size = 1.0  # Levels 1-2: the default size is 1
        else:
            size = c.getSize()
        size = _number(size, "its size", problems, el)
        if size is not None and size <= 0:
            problems.append((el, f"has size {size!r}; sizes must be positive"))
            size = None
        if size is not None:
            compartments[c.getId()] = size

    params: dict[str, float] = {}
    for i in range(model.getNumParameters()):
        p = model.getParameter(i)
        el = f"parameter {p.getId()!r}"
        if not p.isSetValue():
            problems.append((el, "has no value; give it one"))
            continue
        v = _number(p.getValue(), "its value", problems, el)
        if v is not None:
            params[p.getId()] = v

    species_comp: dict[str, str] = {}
    x0: dict[str, float] = {}
    amount_species: set[str] = set()
    constant: set[str] = set()
    order: list[str] = []
    for i in range(model.getNumSpecies()):
        s = model.getSpecies(i)
        sid = s.getId()
        el = f"species {sid!r}"
        order.append(sid)
        comp = s.getCompartment()
        if comp not in compartments:
            if not any(e == f"compartment {comp!r}" for e, _ in problems):
                problems.append((el, f"is in the unknown compartment {comp!r}"))
            continue
        if s.isSetConversionFactor():
            problems.append(
                (
                    el,
                    f"has the conversion factor {s.getConversionFactor()!r}; "
                    "conversion factors are not supported",
                )
            )
        vol = compartments[comp]
        only_amount = s.getHasOnlySubstanceUnits()
        if s.isSetInitialAmount():
            amount = _number(s.getInitialAmount(), "its initial amount", problems, el)
        elif s.isSetInitialConcentration():
            conc = _number(
                s.getInitialConcentration(), "its initial concentration", problems, el
            )
            amount = None if conc is None else conc * vol
        else:
            problems.append((el, "has no initial amount or concentration"))
            continue
        if amount is None:
            continue
        if amount < 0:
            problems.append((el, f"starts at {amount!r}; amounts must be >= 0"))
            continue
        species_comp[sid] = comp
        if only_amount:
            amount_species.add(sid)
            x0[sid] = amount
        else:
            x0[sid] = amount / vol
        if not math.isfinite(x0[sid]):
            what = "amount" if only_amount else f"concentration ({amount!r} / {vol!r})"
            problems.append((el, f"its initial {what} overflows float64"))
            del x0[sid], species_comp[sid]
            continue
        if s.getBoundaryCondition() or s.getConstant():
            constant.add(sid)

    # ids reported above as badly defined (their values, or their compartment's)
    refused = (
        (
            {model.getCompartment(i).getId() for i in range(model.getNumCompartments())}
            - set(compartments)
        )
        | (
            {model.getParameter(i).getId() for i in range(model.getNumParameters())}
            - set(params)
        )
        | (set(order) - set(x0))
    )
    reactions: list[Reaction] = []
    for i in range(model.getNumReactions()):
        r = model.getReaction(i)
        try:
            reactions.extend(
                _reaction(
                    r,
                    params,
                    compartments,
                    species_comp,
                    amount_species,
                    constant,
                    libsbml,
                )
            )
        except (_NotMassAction, ValueError) as e:  # ValueError: from Reaction
            message = str(e)
            # an id whose own definition was refused is not reported again as
            # unknown in every law that uses it
            if not any(f"{x!r}" in message for x in refused) or not (
                "unknown species" in message or "which is not a species" in message
            ):
                problems.append((f"reaction {r.getId()!r}", message))
    if problems:
        raise SBMLImportError(problems, path)

    in_reactions = {s for rx in reactions for s, _ in rx.reactants + rx.products}
    init = tuple(
        (s, x0[s]) for s in order if s in x0 and (x0[s] != 0 or s not in in_reactions)
    )
    try:
        crn = CRN(tuple(reactions), init)
    except ValueError as e:  # e.g. a species id that is not a CRN name
        raise SBMLImportError([("model", str(e))], path) from None
    del where
    return SBMLModel(
        crn=crn,
        id=model.getId(),
        name=model.getName() or model.getId(),
        compartments=compartments,
        species_compartment=species_comp,
        amount_species=frozenset(amount_species),
        constant_species=frozenset(constant),
        parameters=params,
    )


def _stoichiometries(refs, what: str) -> tuple[dict[str, int], dict[str, float]]:
    """Summed integer stoichiometry per species, and speciesReference id -> value."""
    out: dict[str, int] = {}
    ids: dict[str, float] = {}
    for j in range(refs.size()):
        ref = refs.get(j)
        sp = ref.getSpecies()
        if ref.getLevel() == 2 and ref.isSetStoichiometryMath():
            raise _NotMassAction(
                f"the {what} {sp!r} has stoichiometryMath (not supported)"
            )
        if ref.getLevel() >= 3 and not ref.isSetStoichiometry():
            raise _NotMassAction(f"the {what} {sp!r} has no stoichiometry")
        c = ref.getStoichiometry()
        if ref.getLevel() == 1 and ref.getDenominator() != 1:
            c = c / ref.getDenominator()
        if not math.isfinite(c) or c <= 0 or not float(c).is_integer():
            raise _NotMassAction(
                f"the {what} {sp!r} has stoichiometry {c!r}; mass action needs a "
                "positive integer"
            )
        out[sp] = out.get(sp, 0) + int(c)
        if ref.isSetId():
            ids[ref.getId()] = float(c)
    return out, ids


def _reaction(
    r, params, compartments, species_comp, amount_species, constant, libsbml
) -> list[Reaction]:
    if r.isSetFast() and r.getFast():
        raise _NotMassAction("is a fast reaction (not supported)")
    reac, reac_ids = _stoichiometries(r.getListOfReactants(), "reactant")
    prod, prod_ids = _stoichiometries(r.getListOfProducts(), "product")
    modifiers = {r.getModifier(j).getSpecies() for j in range(r.getNumModifiers())}
    for s in list(reac) + list(prod) + sorted(modifiers):
        if s not in species_comp:
            raise _NotMassAction(f"refers to the unknown species {s!r}")
    kl = r.getKineticLaw()
    if kl is None or not kl.isSetMath():
        raise _NotMassAction("has no kinetic law")
    local = {}
    for j in range(kl.getNumParameters()):
        p = kl.getParameter(j)
        if not p.isSetValue():
            raise _NotMassAction(f"the local parameter {p.getId()!r} has no value")
        local[p.getId()] = float(p.getValue())
    ref_ids = reac_ids | prod_ids
    species = set(species_comp)

    def resolve(name: str) -> _Poly:
        if name in local:
            return {(): local[name]}
        if name in species:
            return {((name, 1),): 1.0}
        if name in compartments:
            return {(): compartments[name]}
        if name in params:
            return {(): params[name]}
        if name in ref_ids:
            return {(): ref_ids[name]}
        raise _NotMassAction(
            f"uses {name!r}, which is not a species, compartment, "
            "parameter or species reference of this model"
        )

    formula = libsbml.formulaToL3String(kl.getMath())
    try:
        terms = _poly(kl.getMath(), resolve, libsbml)
    except _NotMassAction as e:
        raise _NotMassAction(f"kinetic law {formula!r} {e}") from None
    forward = tuple(reac.items())
    backward = tuple(prod.items())
    # net change of each species the reactions may change
    net: dict[str, int] = {}
    for s, c in reac.items():
        net[s] = net.get(s, 0) - c
    for s, c in prod.items():
        net[s] = net.get(s, 0) + c
    net = {s: c for s, c in net.items() if c != 0 and s not in constant}

    def factor(s: str) -> float:
        return 1.0 if s in amount_species else 1.0 / compartments[species_comp[s]]

    def matches(key, pattern) -> bool:
        rest = dict(key)
        for s, c in pattern:
            p = rest.pop(s, 0)
            # a species that is also a modifier may appear to a higher power
            if p != c and not (p > c and s in modifiers):
                return False
        return all(s in modifiers for s in rest)

    out: list[Reaction] = []
    for key, coeff in terms.items():
        if coeff == 0:
            continue
        if not math.isfinite(coeff):
            raise _NotMassAction(f"kinetic law {formula!r} has a non-finite term")
        if matches(key, forward) and (coeff > 0 or not matches(key, backward)):
            sign = 1
        elif matches(key, backward):
            sign = -1
        else:
            monomial = "*".join(s if e == 1 else f"{s}^{e}" for s, e in key) or "1"
            raise _NotMassAction(
                f"kinetic law {formula!r} has the term {coeff:g}*{monomial}, which "
                "is not mass action: each term must be a constant times the "
                "reactants (forward) or the products (reverse), each to the power "
                "of its stoichiometry, optionally times modifiers"
            )
        rate = coeff * sign
        if rate < 0 and sign < 0:
            monomial = "*".join(s if e == 1 else f"{s}^{e}" for s, e in key) or "1"
            raise _NotMassAction(
                f"kinetic law {formula!r} adds the products' term {coeff:g}*"
                f"{monomial}; a reverse term is subtracted (kf*reactants - "
                "kr*products), so as written the reaction would run backward at a "
                "negative rate"
            )
        if rate < 0:
            raise _NotMassAction(
                f"kinetic law {formula!r} has a negative forward rate ({coeff:g})"
            )
        # the reaction's complex in SBML order: the reactants (or products), then
        # the modifiers
        powers = dict(key)
        pattern = forward if sign > 0 else backward
        complex_ = {s: powers.pop(s) for s, _ in pattern}
        complex_.update(powers)
        change = {s: sign * c for s, c in net.items()}
        if not change:
            continue  # changes nothing (e.g. only boundary species)
        groups: dict[float, dict[str, int]] = {}
        for s, c in change.items():
            groups.setdefault(factor(s), {})[s] = c
        for f, part in groups.items():
            products = dict(complex_)
            for s, c in part.items():
                products[s] = products.get(s, 0) + c
            k = rate * f
            if not math.isfinite(k):
                raise _NotMassAction(
                    f"kinetic law {formula!r} gives the rate constant {k!r}"
                )
            if k == 0:  # terms with coefficient 0 were skipped: an underflow
                raise _NotMassAction(
                    f"kinetic law {formula!r} gives the rate constant {rate:g} * "
                    f"{f:g}, which underflows float64 to 0; rescale the units"
                )
            out.append(
                Reaction(
                    tuple(complex_.items()),
                    tuple((s, c) for s, c in products.items() if c > 0),
                    k,
                )
            )
    return out
