import os
import sys
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given

from jaxcrn import (
    CRN,
    compile_crn,
    load_sbml,
    parse_crn,
    read_sbml,
    save_sbml,
    simulate,
    to_sbml,
)
from jaxcrn._sbml import SBMLImportError, read_sbml_string

from .helpers import build_crn, small_crn_specs


HERE = os.path.dirname(os.path.abspath(__file__))
BIOMODEL = os.path.join(HERE, "data", "BIOMD0000000072.xml")

CRN_TEXT = """
A + B <=> C  [kf=1.5, kr=0.25]
2 C -> D  [k=0.3]
0 -> A  [k=0.1]
D -> 0
init A = 1
init B = 2.5
"""

NS = {
    "s": "http://www.sbml.org/sbml/level3/version2/core",
    "m": "http://www.w3.org/1998/Math/MathML",
}


def _eval_mathml(node, env):
    tag = node.tag.split("}")[1]
    if tag == "ci":
        return env[node.text.strip()]
    if tag == "cn":
        return float(node.text)
    assert tag == "apply"
    op, *args = list(node)
    vals = [_eval_mathml(a, env) for a in args]
    op = op.tag.split("}")[1]
    if op == "times":
        return float(np.prod(vals))
    if op == "power":
        return vals[0] ** vals[1]
    raise AssertionError(op)


def _sbml_rhs(xml: str, y: dict[str, float]) -> dict[str, float]:
    """d[S]/dt from the SBML text itself (an independent reading of the file):
    kinetic laws evaluated, divided by the compartment size."""
    model = ET.fromstring(xml).find("s:model", NS)
    env = dict(y)
    size = {}
    for c in model.iter(f"{{{NS['s']}}}compartment"):
        size[c.get("id")] = env[c.get("id")] = float(c.get("size"))
    for p in model.iter(f"{{{NS['s']}}}parameter"):
        env[p.get("id")] = float(p.get("value"))
    comp = {
        s.get("id"): s.get("compartment") for s in model.iter(f"{{{NS['s']}}}species")
    }
    dy = dict.fromkeys(y, 0.0)
    for rxn in model.iter(f"{{{NS['s']}}}reaction"):
        rate = _eval_mathml(list(rxn.find("s:kineticLaw/m:math", NS))[0], env)
        for tag, sign in (("listOfReactants", -1), ("listOfProducts", 1)):
            for ref in rxn.findall(f"s:{tag}/s:speciesReference", NS):
                s = ref.get("species")
                dy[s] += sign * float(ref.get("stoichiometry")) * rate / size[comp[s]]
    return dy


def test_sbml_rate_laws_match_compiled_rhs():
    crn = parse_crn(CRN_TEXT)
    xml = to_sbml(crn)
    model = ET.fromstring(xml).find("s:model", NS)
    species = [s.get("id") for s in model.iter(f"{{{NS['s']}}}species")]
    init = {
        s.get("id"): float(s.get("initialConcentration"))
        for s in model.iter(f"{{{NS['s']}}}species")
    }
    assert species == list(crn.species)
    assert init == {"A": 1.0, "B": 2.5, "C": 0.0, "D": 0.0}
    y = np.random.default_rng(0).uniform(0.1, 2.0, len(species))
    dy = _sbml_rhs(xml, dict(zip(species, y, strict=True)))
    net = compile_crn(crn)
    np.testing.assert_allclose(
        [dy[s] for s in species], net(0.0, jnp.asarray(y), None), rtol=1e-12
    )


def test_generated_ids_never_collide_with_species_names():
    # species named like the generated ids: k0, R0, cell (and their suffixed forms)
    crn = parse_crn("k0 + cell -> R0  [k=2]\nR0 -> k0_1 + jaxcrn_model\ninit k0 = 1")
    xml = to_sbml(crn)
    model = ET.fromstring(xml).find("s:model", NS)
    ids = [el.get("id") for el in model.iter() if el.get("id") is not None]
    ids = [i for i in ids if not el_is_unit(model, i)]
    assert len(ids) == len(set(ids)), ids
    # the rate law of k0 + cell -> R0 is V * k * [k0] * [cell], not k0 * k0 * cell
    y = {"k0": 0.7, "cell": 1.3, "R0": 0.2, "k0_1": 0.0, "jaxcrn_model": 0.0}
    dy = _sbml_rhs(xml, y)
    net = compile_crn(crn)
    want = net(0.0, jnp.asarray([y[s] for s in net.species]), None)
    np.testing.assert_allclose([dy[s] for s in net.species], want, rtol=1e-12)


def el_is_unit(model, ident: str) -> bool:
    return any(u.get("id") == ident for u in model.iter(f"{{{NS['s']}}}unitDefinition"))


def _consistency_problems(xml: str) -> list[str]:
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.readSBMLFromString(xml)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.checkConsistency()
    return [
        f"{doc.getError(i).getSeverityAsString()}: {doc.getError(i).getMessage()}"
        for i in range(doc.getNumErrors())
    ]


@pytest.mark.parametrize(
    "text",
    [
        CRN_TEXT,
        "k0 + cell -> R0\nR0 -> k0_1 + 3 cell [k=0.5]\n3 X -> 0",
        "init A = 1",  # no reactions
        "0 -> A [k=2]\nA + B + C -> D",  # orders 0 to 3
    ],
)
def test_export_passes_libsbml_consistency_and_units_checks(text):
    assert _consistency_problems(to_sbml(parse_crn(text), name="a test")) == []


def test_export_metadata():
    xml = to_sbml(parse_crn("A -> B"), model_id="my net-1", name="My network")
    model = ET.fromstring(xml).find("s:model", NS)
    assert model.get("id") == "my_net_1" and model.get("name") == "My network"
    assert model.get("timeUnits") == "second"
    assert model.get("substanceUnits") == "mole"
    (param,) = model.iter(f"{{{NS['s']}}}parameter")
    assert param.get("units") == "per_second"


def test_save_sbml_refuses_to_overwrite(tmp_path):
    path = tmp_path / "net.xml"
    save_sbml(parse_crn(CRN_TEXT), path)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_sbml(parse_crn("A -> B"), path)
    assert '<species id="D"' in path.read_text()
    assert os.listdir(tmp_path) == ["net.xml"]


# ---------------------------------------------------------------------------------
# Import.

pytest.importorskip("libsbml")


@given(spec=small_crn_specs())
def test_export_import_round_trip_keeps_the_dynamics(spec):
    crn = build_crn(spec)
    assume(all(v == 0 or v > 1e-300 for _, v in crn.init))  # see the next test
    back = read_sbml_string(to_sbml(crn)).crn
    assert set(back.species) <= set(crn.species)
    init = crn.initial
    assert back.initial == {s: init.get(s, 0.0) for s in back.initial}
    assert {s for s, v in init.items() if v != 0} <= set(back.initial)
    # same right-hand side, species matched by name (reactions that change nothing
    # are dropped, reactant order and species order may differ)
    y = np.random.default_rng(len(crn.species)).uniform(0.2, 1.5, len(crn.species))
    ours = _rhs(crn, dict(zip(crn.species, y, strict=True)))
    theirs = _rhs(back, dict(zip(crn.species, y, strict=True)))
    for s in crn.species:
        assert theirs.get(s, 0.0) == pytest.approx(ours[s], rel=1e-12, abs=1e-12)


def test_high_orders_round_trip():
    # the importer once capped powers at 64, below the parser's order limit
    for n in (65, 1000):
        crn = parse_crn(f"{n} A -> B [k=0.001]\ninit A = 1")
        assert read_sbml_string(to_sbml(crn)).crn == crn


def test_export_refuses_subnormal_numbers():
    with pytest.raises(ValueError, match=r"init A = 5e-324 is a subnormal number"):
        to_sbml(CRN(init=(("A", 5e-324),)))


def _rhs(crn: CRN, y: dict[str, float]) -> dict[str, float]:
    dy = dict.fromkeys(crn.species, 0.0)
    for r in crn.reactions:
        flux = r.rate * np.prod([y[s] ** c for s, c in r.reactants])
        for s, c in r.net.items():
            dy[s] += c * flux
    return dy


# A model with every supported feature: two compartments of different sizes, a
# species in amounts (hasOnlySubstanceUnits), a boundary species, a modifier, a
# local parameter shadowing a global one and a species id, a reversible law, a
# non-unity stoichiometry and a species in no reaction.
FEATURES = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="features" name="All supported features">
    <listOfCompartments>
      <compartment id="c1" spatialDimensions="3" size="2" constant="true"/>
      <compartment id="c2" spatialDimensions="3" size="0.5" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="c1" initialConcentration="1.5"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="B" compartment="c2" initialAmount="0.2"
        hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
      <species id="X" compartment="c1" initialConcentration="0.8"
        hasOnlySubstanceUnits="false" boundaryCondition="true" constant="false"/>
      <species id="E" compartment="c1" initialAmount="0.6"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="Idle" compartment="c2" initialConcentration="0"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="kf" value="100" constant="true"/>
      <parameter id="kr" value="0.3" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="bind" reversible="true">
        <listOfReactants>
          <speciesReference species="A" stoichiometry="2" constant="true"/>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts>
          <speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <listOfModifiers>
          <modifierSpeciesReference species="E"/>
        </listOfModifiers>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><times/><ci> c1 </ci>
              <apply><minus/>
                <apply><times/><ci> kf </ci><ci> E </ci>
                  <apply><power/><ci> A </ci><cn type="integer"> 2 </cn></apply>
                  <ci> X </ci></apply>
                <apply><divide/><apply><times/><ci> kr </ci><ci> B </ci></apply>
                  <ci> c2 </ci></apply>
              </apply>
            </apply>
          </math>
          <listOfLocalParameters>
            <localParameter id="kf" value="0.7"/>
          </listOfLocalParameters>
        </kineticLaw>
      </reaction>
      <reaction id="decay" reversible="false">
        <listOfReactants>
          <speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><times/><ci> A </ci><ci> B </ci></apply>
          </math>
          <listOfLocalParameters>
            <localParameter id="A" value="0.25"/>
          </listOfLocalParameters>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def test_import_of_every_supported_feature():
    model = read_sbml_string(FEATURES)
    assert model.name == "All supported features"
    assert model.amount_species == {"B"} and model.constant_species == {"X"}
    # forward: v = c1 * 0.7 * E * A^2 * X (local kf); A (in c1) changes by -2 v / c1,
    # B (an amount) by +v: two reactions; reverse: v = c1 * kr * B / c2 = 1.2 B,
    # A up by 2 v / c1, B down by v: two reactions again; decay: v = 0.25 B (the
    # local A)
    want = parse_crn(
        """
        2 A + X + E -> X + E  [k=0.7]
        2 A + X + E -> 2 A + X + E + B  [k=1.4]
        B -> B + 2 A  [k=0.6]
        B -> 0  [k=1.2]
        B -> 0  [k=0.25]
        init A = 1.5
        init B = 0.2
        init X = 0.8
        init E = 0.3
        init Idle = 0
        """
    )
    assert model.crn == want
    np.testing.assert_allclose(
        model.amounts(["A", "B", "E"], [1.5, 0.2, 0.3]), [3.0, 0.2, 0.6]
    )
    np.testing.assert_allclose(model.concentrations(["B"], [0.2]), [0.4])


def _roadrunner_traces(xml_or_path, model, names, ts):
    """libRoadRunner's trajectories of the CRN values: concentrations, or amounts
    for amount species."""
    roadrunner = pytest.importorskip("roadrunner")
    rr = roadrunner.RoadRunner(xml_or_path)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    sel = ["time"] + [s if s in model.amount_species else f"[{s}]" for s in names]
    out = rr.simulate(0.0, float(ts[-1]), len(ts), selections=sel)
    return np.asarray(out)[:, 1:]


def _jaxcrn_traces(crn, names, ts):
    net = compile_crn(crn, form="dense")
    res = simulate(
        net,
        net.y_init,
        jnp.asarray(ts[-1]),
        saveat=jnp.asarray(ts),
        rtol=1e-10,
        atol=1e-14,
    )
    return np.asarray(res.ys)[:, [net.index(s) for s in names]]


@pytest.mark.parametrize("source", ["features", "biomodel"])
def test_import_matches_roadrunner_and_round_trips(tmp_path, source):
    """jaxcrn on the imported CRN matches libRoadRunner on the original model, and
    the CRN exported back to SBML gives libRoadRunner the same trajectories."""
    if source == "features":
        original, model, t_end = FEATURES, read_sbml_string(FEATURES), 5.0
    else:
        original, model, t_end = BIOMODEL, read_sbml(BIOMODEL), 600.0
    names = list(model.crn.species)
    ts = np.linspace(0.0, t_end, 13)
    reference = _roadrunner_traces(original, model, names, ts)
    scale = np.abs(reference).max(axis=0)
    ours = _jaxcrn_traces(model.crn, names, ts)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-8 * scale.max())
    path = tmp_path / "back.xml"
    save_sbml(model.crn, path)
    # the exported model: every species a concentration in one compartment
    back = read_sbml(path)
    round_trip = _roadrunner_traces(str(path), back, names, ts)
    np.testing.assert_allclose(
        round_trip, reference, rtol=1e-6, atol=1e-8 * scale.max()
    )


def test_curated_biomodel_imports_as_expected():
    import hashlib

    with open(BIOMODEL, "rb") as f:  # the file as vendored (tests/data/README.md)
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == "dcd28f536dcbf050238dd70d131f06d270fbbee2f77e585d2545919580f568fb"
    model = read_sbml(BIOMODEL)
    assert model.name == "Yi2003_GproteinCycle"
    assert len(model.crn.species) == 7
    # 7 reactions, the ligand binding one reversible (split in two)
    assert len(model.crn.reactions) == 8
    # the modifier RL of "G-protein Activation" becomes a catalyst
    activation = [r for r in model.crn.reactions if dict(r.reactants).get("G")]
    assert [r.text() for r in activation] == ["G + RL -> RL + Ga + Gbg  [k=1e-05]"]
    assert load_sbml(BIOMODEL) == model.crn


# ---------------------------------------------------------------------------------
# Everything outside mass action is an error naming the element and construct.


def _doc(species="", reactions="", extra="", parameters=""):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m">
    {extra}
    <listOfCompartments>
      <compartment id="c" spatialDimensions="3" size="1" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="S" compartment="c" initialConcentration="1"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="P" compartment="c" initialConcentration="0"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      {species}
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="1" constant="true"/>
      {parameters}
    </listOfParameters>
    <listOfReactions>{reactions}</listOfReactions>
  </model>
</sbml>"""


def _reaction(math, rid="R1", stoich="1", extra=""):
    return f"""
      <reaction id="{rid}" reversible="false" {extra}>
        <listOfReactants>
          <speciesReference species="S" stoichiometry="{stoich}" constant="true"/>
        </listOfReactants>
        <listOfProducts>
          <speciesReference species="P" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">{math}</math>
        </kineticLaw>
      </reaction>"""


MA = "<apply><times/><ci> k </ci><ci> S </ci></apply>"
MM = (
    "<apply><divide/><apply><times/><ci> k </ci><ci> S </ci></apply>"
    "<apply><plus/><cn> 1 </cn><ci> S </ci></apply></apply>"
)

UNSUPPORTED = {
    "michaelis-menten": (
        _doc(reactions=_reaction(MM)),
        r"reaction 'R1': kinetic law 'k \* S / \(1 \+ S\)' divides by a species",
    ),
    "wrong power": (
        _doc(reactions=_reaction(MA, stoich="2")),
        r"reaction 'R1': kinetic law 'k \* S' has the term 1\*S, which is not mass "
        "action",
    ),
    "non-integer stoichiometry": (
        _doc(reactions=_reaction(MA, stoich="1.5")),
        r"reaction 'R1': the reactant 'S' has stoichiometry 1.5; mass action needs "
        "a positive integer",
    ),
    "assignment rule": (
        _doc(
            reactions=_reaction(MA),
            extra='<listOfRules><assignmentRule variable="k"><math '
            'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 2 </cn></math>'
            "</assignmentRule></listOfRules>",
        ).replace(
            'id="k" value="1" constant="true"', 'id="k" value="1" constant="false"'
        ),
        r"assignment rule for 'k': rules are not supported",
    ),
    "rate rule": (
        _doc(
            extra='<listOfRules><rateRule variable="S"><math '
            'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 2 </cn></math>'
            "</rateRule></listOfRules>"
        ),
        r"rate rule for 'S': rules are not supported",
    ),
    "event": (
        _doc(
            reactions=_reaction(MA),
            extra='<listOfEvents><event id="ev1" useValuesFromTriggerTime="true">'
            '<trigger initialValue="false" persistent="true"><math '
            'xmlns="http://www.w3.org/1998/Math/MathML"><apply><gt/><csymbol '
            'encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">'
            "t</csymbol><cn> 1 </cn></apply></math></trigger></event>"
            "</listOfEvents>",
        ),
        r"event 'ev1': events are not supported",
    ),
    "function definition": (
        _doc(
            reactions=_reaction("<apply><ci> f </ci><ci> k </ci><ci> S </ci></apply>"),
            extra='<listOfFunctionDefinitions><functionDefinition id="f"><math '
            'xmlns="http://www.w3.org/1998/Math/MathML"><lambda><bvar><ci> a </ci>'
            "</bvar><bvar><ci> b </ci></bvar><apply><times/><ci> a </ci><ci> b </ci>"
            "</apply></lambda></math></functionDefinition>"
            "</listOfFunctionDefinitions>",
        ),
        r"function definition 'f': function definitions are not supported",
    ),
    "initial assignment": (
        _doc(
            reactions=_reaction(MA),
            extra='<listOfInitialAssignments><initialAssignment symbol="S"><math '
            'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 2 </cn></math>'
            "</initialAssignment></listOfInitialAssignments>",
        ),
        r"initial assignment to 'S': initial assignments are not supported",
    ),
    "delay": (
        _doc(
            reactions=_reaction(
                '<apply><times/><ci> k </ci><apply><csymbol encoding="text" '
                'definitionURL="http://www.sbml.org/sbml/symbols/delay">delay'
                "</csymbol><ci> S </ci><cn> 1 </cn></apply></apply>"
            )
        ),
        r"reaction 'R1': kinetic law .* uses delay\(\)",
    ),
    "time": (
        _doc(
            reactions=_reaction(
                '<apply><times/><ci> k </ci><ci> S </ci><csymbol encoding="text" '
                'definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>'
                "</apply>"
            )
        ),
        r"reaction 'R1': kinetic law .* uses time",
    ),
    "exp of a species": (
        _doc(reactions=_reaction("<apply><exp/><ci> S </ci></apply>")),
        r"reaction 'R1': kinetic law 'exp\(S\)' uses 'exp\(S\)' of a species",
    ),
    "reverse term added": (
        _doc(
            reactions=_reaction(
                "<apply><plus/><apply><times/><ci> k </ci><ci> S </ci></apply>"
                "<apply><times/><ci> k </ci><ci> P </ci></apply></apply>"
            )
        ),
        r"reaction 'R1': kinetic law 'k \* S \+ k \* P' adds the products' term "
        r"1\*P; a reverse term is subtracted",
    ),
    "negative rate": (
        _doc(reactions=_reaction("<apply><times/><cn> -2 </cn><ci> S </ci></apply>")),
        r"reaction 'R1': kinetic law '-2 \* S' has a negative forward rate",
    ),
    "fast reaction": (
        _doc(reactions=_reaction(MA))
        .replace(
            'level3/version2/core" level="3" version="2"',
            'level3/version1/core" level="3" version="1"',
        )
        .replace('reversible="false"', 'reversible="false" fast="true"'),
        r"reaction 'R1': is a fast reaction",
    ),
    "unknown symbol": (
        _doc(reactions=_reaction("<apply><times/><ci> q </ci><ci> S </ci></apply>")),
        r"reaction 'R1': kinetic law 'q \* S' uses 'q', which is not a species",
    ),
    "not SBML": ("<html>hello</html>", r"not valid SBML"),
    # values a jaxcrn reaction cannot hold: errors naming the reaction, not
    # exceptions out of the reaction's constructor
    "rate underflow": (
        _doc(reactions=_reaction(MA))
        .replace('size="1"', 'size="1e300"')
        .replace('id="k" value="1"', 'id="k" value="1e-300"'),
        r"reaction 'R1': kinetic law 'k \* S' gives the rate constant 1e-300 \* "
        r"1e-300, which underflows float64 to 0",
    ),
    "stoichiometry beyond int32": (
        _doc(reactions=_reaction(MA)).replace(
            '<speciesReference species="P" stoichiometry="1"',
            '<speciesReference species="P" stoichiometry="3000000000"',
        ),
        r"reaction 'R1': The coefficient of P in the products is 3000000000; "
        "coefficients are at most 2147483647",
    ),
    "power above the largest order": (
        _doc(
            reactions=_reaction(
                "<apply><times/><ci> k </ci><apply><power/><ci> S </ci><cn> 1001 "
                "</cn></apply></apply>",
                stoich="1001",
            )
        ),
        r"reaction 'R1': .* raises a species to the power 1001, above the largest "
        r"reaction order jaxcrn simulates \(1000\)",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_constructs_are_errors_naming_element_and_construct(case):
    text, message = UNSUPPORTED[case]
    with pytest.raises(SBMLImportError, match=message) as info:
        read_sbml_string(text, path="model.xml")
    assert all(line.startswith("model.xml: ") for line in info.value.lines())


@pytest.mark.parametrize(
    "edit, line",
    [
        (
            lambda d: d.replace('id="k" value="1"', 'id="k" value="INF"'),
            "model.xml: parameter 'k': its value is inf; expected a finite number",
        ),
        (
            lambda d: d.replace('size="1"', 'size="NaN"'),
            "model.xml: compartment 'c': its size is nan; expected a finite number",
        ),
        (
            lambda d: d.replace('size="1"', 'size="1e-300"').replace(
                'initialConcentration="1"', 'initialAmount="1e300"'
            ),
            "model.xml: species 'S': its initial concentration (1e+300 / 1e-300) "
            "overflows float64",
        ),
    ],
)
def test_a_bad_definition_is_reported_once(edit, line):
    # not again as an unknown symbol in every kinetic law that uses it
    with pytest.raises(SBMLImportError) as info:
        read_sbml_string(edit(_doc(reactions=_reaction(MA))), path="model.xml")
    assert info.value.lines() == [line]


def test_a_modifier_that_is_also_a_reactant():
    # rate k * S^2 for S -> P with S also a modifier: S catalyses its own use
    text = _doc(
        reactions=_reaction(
            "<apply><times/><ci> k </ci><ci> S </ci><ci> S </ci></apply>",
            extra="",
        ).replace(
            "<kineticLaw>",
            '<listOfModifiers><modifierSpeciesReference species="S"/>'
            "</listOfModifiers><kineticLaw>",
        )
    )
    crn = read_sbml_string(text).crn
    assert crn == parse_crn("2 S -> S + P [k=1]\ninit S = 1")


def test_all_problems_reported_together():
    text = _doc(
        reactions=_reaction(MM, rid="R1") + _reaction(MA, rid="R2", stoich="0.5")
    )
    with pytest.raises(SBMLImportError) as info:
        read_sbml_string(text)
    assert [el for el, _ in info.value.problems] == ["reaction 'R1'", "reaction 'R2'"]
    assert str(info.value).startswith("2 problems:")


def test_constant_expressions_are_evaluated():
    # piecewise with a constant condition, exp and a power of constants: constants
    law = (
        "<apply><times/><piecewise><piece><ci> k </ci><true/></piece>"
        "<otherwise><cn> 5 </cn></otherwise></piecewise>"
        "<apply><exp/><cn> 0 </cn></apply>"
        "<apply><power/><cn> 2 </cn><cn> 3 </cn></apply><ci> S </ci></apply>"
    )
    crn = read_sbml_string(_doc(reactions=_reaction(law))).crn
    assert [r.text() for r in crn.reactions] == ["S -> P  [k=8]"]


def test_missing_libsbml_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "libsbml", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxcrn\[sbml\]'"):
        read_sbml_string(_doc())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_sbml(tmp_path / "nope.xml")
    with pytest.raises(IsADirectoryError):
        read_sbml(tmp_path)
