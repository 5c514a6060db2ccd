"""`jaxcrn import`: SBML to .crn on the command line."""

import os

import pytest

from jaxcrn import load_crn
from jaxcrn._cli import main


pytest.importorskip("libsbml")

HERE = os.path.dirname(os.path.abspath(__file__))
BIOMODEL = os.path.join(HERE, "data", "BIOMD0000000072.xml")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_writes_the_crn_and_never_overwrites(capsys, tmp_path):
    from jaxcrn import load_sbml

    out = tmp_path / "net.crn"
    code, stdout, err = run(capsys, "import", BIOMODEL, "-o", out)
    assert code == 0, err
    assert stdout == (f"wrote {out} (Yi2003_GproteinCycle: 7 species, 8 reactions)\n")
    assert load_crn(out) == load_sbml(BIOMODEL)
    before = out.read_text()
    code, _, err = run(capsys, "import", BIOMODEL, "-o", out)
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_text() == before
    assert run(capsys, "import", BIOMODEL, "-o", out, "--force")[0] == 0


def test_import_without_output_prints_the_crn(capsys):
    from jaxcrn import format_crn, load_sbml

    code, stdout, err = run(capsys, "import", BIOMODEL)
    assert code == 0
    head = "# imported from BIOMD0000000072.xml: Yi2003_GproteinCycle: 7 species"
    assert stdout == f"{head}, 8 reactions\n" + format_crn(load_sbml(BIOMODEL))
    assert err.startswith("# Yi2003_GproteinCycle")


def test_the_written_crn_says_which_values_are_amounts(capsys, tmp_path):
    # the terminal said so, the file did not: a later simulate printed A's amount
    # under "concentration" with nothing in the file to say otherwise
    import libsbml

    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("m")
    c = m.createCompartment()
    c.setId("c"), c.setSize(3.0), c.setConstant(True)
    for sid, only_amounts in (("A", True), ("B", False)):
        sp = m.createSpecies()
        sp.setId(sid), sp.setCompartment("c"), sp.setInitialConcentration(1.0)
        sp.setHasOnlySubstanceUnits(only_amounts), sp.setBoundaryCondition(False)
        sp.setConstant(False)
    k = m.createParameter()
    k.setId("k"), k.setValue(1.3), k.setConstant(True)
    r = m.createReaction()
    r.setId("r"), r.setReversible(False)
    for ref, sid in ((r.createReactant(), "A"), (r.createProduct(), "B")):
        ref.setSpecies(sid), ref.setStoichiometry(1), ref.setConstant(True)
    r.createKineticLaw().setMath(libsbml.parseL3Formula("k*A"))
    xml = tmp_path / "m.xml"
    xml.write_text(libsbml.writeSBMLToString(doc))
    code, _, err = run(capsys, "import", xml, "-o", tmp_path / "net.crn")
    assert code == 0, err
    first = (tmp_path / "net.crn").read_text().splitlines()[0]
    assert first.startswith("# imported from m.xml: m: 2 species, ")
    assert "amounts for A" in first


def test_import_errors_are_one_line_each(capsys, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("not xml at all")
    code, stdout, err = run(capsys, "import", bad, "-o", tmp_path / "x.crn")
    assert code == 2 and stdout == ""
    assert err.startswith(f"jaxcrn import: error: {bad}: line 1: not valid SBML")
    assert not (tmp_path / "x.crn").exists()
    code, _, err = run(capsys, "import", tmp_path / "missing.xml")
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "import", tmp_path / ("x" * 300 + ".xml"))
    assert code == 2 and "name too long" in err and "no such file" not in err
    # a rule: named, exit 2, nothing written
    model = tmp_path / "rule.xml"
    with open(BIOMODEL, encoding="utf-8") as f:
        original = f.read()
    text = original.replace(
        "<listOfReactions>",
        '<listOfRules><rateRule variable="L"><math '
        'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 1 </cn></math>'
        "</rateRule></listOfRules><listOfReactions>",
    )
    model.write_text(text)
    code, _, err = run(capsys, "import", model, "-o", tmp_path / "y.crn")
    assert code == 2
    assert err == (
        f"jaxcrn import: error: {model}: rate rule for 'L': rules are not supported\n"
    )
    assert not (tmp_path / "y.crn").exists()
