import xml.etree.ElementTree as ET

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import compile_crn, parse_crn, save_sbml, to_sbml


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


def test_sbml_rate_laws_match_compiled_rhs():
    crn = parse_crn(CRN_TEXT)
    root = ET.fromstring(to_sbml(crn))
    model = root.find("s:model", NS)
    species = [s.get("id") for s in model.iter(f"{{{NS['s']}}}species")]
    init = {
        s.get("id"): float(s.get("initialConcentration"))
        for s in model.iter(f"{{{NS['s']}}}species")
    }
    params = {
        p.get("id"): float(p.get("value"))
        for p in model.iter(f"{{{NS['s']}}}parameter")
    }
    assert species == list(crn.species)
    assert init == {"A": 1.0, "B": 2.5, "C": 0.0, "D": 0.0}
    y = np.random.default_rng(0).uniform(0.1, 2.0, len(species))
    env = dict(zip(species, y, strict=True)) | params
    dy = np.zeros(len(species))
    for rxn in model.iter(f"{{{NS['s']}}}reaction"):
        math = rxn.find("s:kineticLaw/m:math", NS)
        rate = _eval_mathml(list(math)[0], env)
        for tag, sign in (("listOfReactants", -1), ("listOfProducts", 1)):
            for ref in rxn.findall(f"s:{tag}/s:speciesReference", NS):
                dy[species.index(ref.get("species"))] += (
                    sign * float(ref.get("stoichiometry")) * rate
                )
    net = compile_crn(crn)
    np.testing.assert_allclose(dy, net(0.0, jnp.asarray(y), None), rtol=1e-12)


def test_roadrunner_agrees_with_jaxcrn():
    roadrunner = pytest.importorskip("roadrunner")
    from jaxcrn import simulate

    crn = parse_crn(CRN_TEXT)
    rr = roadrunner.RoadRunner(to_sbml(crn))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    out = rr.simulate(0, 3.0, 2)
    ids = rr.model.getFloatingSpeciesIds()
    net = compile_crn(crn)
    res = simulate(net, net.y_init, jnp.asarray(3.0), rtol=1e-10, atol=1e-12)
    ours = dict(zip(net.species, np.asarray(res.y_final), strict=True))
    np.testing.assert_allclose([ours[s] for s in ids], out[-1, 1:], rtol=1e-7)


def test_save_sbml_refuses_to_overwrite(tmp_path):
    path = tmp_path / "net.xml"
    save_sbml(parse_crn(CRN_TEXT), path)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_sbml(parse_crn("A -> B"), path)
    assert '<species id="D"' in path.read_text()
