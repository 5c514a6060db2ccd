"""SBML export (Level 3 Version 2 core, mass-action kinetics), for other simulators
such as libRoadRunner, COPASI or Tellurium."""

import os
from xml.sax.saxutils import escape

from ._crn import CRN


__all__ = ["save_sbml", "to_sbml"]


def _mathml_rate(k_id: str, reactants) -> str:
    factors = [f"<ci> {k_id} </ci>"]
    for s, c in reactants:
        if c == 1:
            factors.append(f"<ci> {s} </ci>")
        else:
            factors.append(
                f'<apply><power/><ci> {s} </ci><cn type="integer"> {c} </cn></apply>'
            )
    if len(factors) == 1:
        return factors[0]
    return "<apply><times/>" + "".join(factors) + "</apply>"


def to_sbml(crn: CRN, *, model_id: str = "jaxcrn_model") -> str:
    """The CRN as an SBML Level 3 Version 2 document (a string).

    One compartment of volume 1; every species has an initial concentration (its
    `init` value, else 0); reaction `R{i}` has mass-action kinetics
    `k{i} * prod S^c` with its rate constant as the global parameter `k{i}`.
    Inputs and outputs have no SBML equivalent: set the input species' initial
    concentrations in the simulator, and read outputs as differences of species.

    Example:
        >>> from jaxcrn import parse_crn
        >>> xml = to_sbml(parse_crn("A + B -> C [k=2]\\ninit A = 1"))
        >>> '<species id="A"' in xml and '<parameter id="k0" value="2.0"' in xml
        True
    """
    init = dict(crn.init)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" '
        'version="2">',
        f'  <model id="{escape(model_id)}" name="{escape(model_id)}">',
        "    <listOfCompartments>",
        '      <compartment id="cell" spatialDimensions="3" size="1" constant="true"/>',
        "    </listOfCompartments>",
        "    <listOfSpecies>",
    ]
    for s in crn.species:
        out.append(
            f'      <species id="{s}" compartment="cell" '
            f'initialConcentration="{float(init.get(s, 0.0))!r}" '
            'hasOnlySubstanceUnits="false" boundaryCondition="false" '
            'constant="false"/>'
        )
    out.append("    </listOfSpecies>")
    if crn.reactions:
        out.append("    <listOfParameters>")
        for i, r in enumerate(crn.reactions):
            out.append(
                f'      <parameter id="k{i}" value="{float(r.rate)!r}" '
                'constant="true"/>'
            )
        out.append("    </listOfParameters>")
        out.append("    <listOfReactions>")
        for i, r in enumerate(crn.reactions):
            out.append(f'      <reaction id="R{i}" reversible="false">')
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
            out.append("            " + _mathml_rate(f"k{i}", r.reactants))
            out.append("          </math>")
            out.append("        </kineticLaw>")
            out.append("      </reaction>")
        out.append("    </listOfReactions>")
    out.append("  </model>")
    out.append("</sbml>")
    return "\n".join(out) + "\n"


def save_sbml(crn: CRN, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write `to_sbml(crn)` to `path`; refuses to replace a file unless `overwrite`."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (or --force) to replace it."
        )
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(
            to_sbml(
                crn,
                model_id=os.path.splitext(os.path.basename(path))[0]
                .replace("-", "_")
                .replace(".", "_")
                or "jaxcrn_model",
            )
        )
    os.replace(tmp, path)
