import os

import pytest
from hypothesis import given

from jaxcrn import (
    CRN,
    CRNSyntaxError,
    Reaction,
    Signal,
    format_crn,
    load_crn,
    parse_crn,
    save_crn,
)

from .helpers import build_crn, small_crn_specs


EXAMPLE = """
A + B -> C              # rate constant 1 when none is given
2 X -> Y  [k=0.5]
A <=> B   [kf=1, kr=2]  # a reversible pair is two reactions
0 -> A    [k=0.1]       # 0 is the empty complex
init A = 1.5            # initial concentration (default 0)
X0p -> X
X0n -> Y
input x0 = X0p - X0n    # dual-rail input: x0 > 0 sets X0p, x0 < 0 sets X0n
output y0 = Y - X       # an output read as a difference of species
"""


def test_parse_example():
    crn = parse_crn(EXAMPLE)
    assert len(crn.reactions) == 7
    assert crn.reactions[0] == Reaction((("A", 1), ("B", 1)), (("C", 1),), 1.0)
    assert crn.reactions[1] == Reaction((("X", 2),), (("Y", 1),), 0.5)
    assert crn.reactions[2] == Reaction((("A", 1),), (("B", 1),), 1.0)
    assert crn.reactions[3] == Reaction((("B", 1),), (("A", 1),), 2.0)
    assert crn.reactions[4] == Reaction((), (("A", 1),), 0.1)
    assert crn.init == (("A", 1.5),)
    assert crn.inputs == (Signal("x0", "X0p", "X0n"),)
    assert crn.outputs == (Signal("y0", "Y", "X"),)
    assert crn.species == ("A", "B", "C", "X", "Y", "X0p", "X0n")


def test_format_is_readable():
    text = format_crn(parse_crn(EXAMPLE), header=False)
    assert text.splitlines()[:2] == ["A + B -> C", "2 X -> Y  [k=0.5]"]
    assert "0 -> A  [k=0.1]" in text
    assert "input x0 = X0p - X0n" in text


@given(spec=small_crn_specs())
def test_format_parse_round_trip(spec):
    crn = build_crn(spec)
    assert parse_crn(format_crn(crn)) == crn
    assert hash(parse_crn(format_crn(crn))) == hash(crn)


def test_round_trip_extreme_floats():
    crn = CRN(
        (Reaction((("A", 1),), (), 1e-300), Reaction((), (("A", 2),), 0.1 + 0.2)),
        (("A", 5e-324),),
    )
    assert parse_crn(format_crn(crn)) == crn


def test_repeated_species_are_merged():
    assert parse_crn("A + A + B -> 2 C + C").reactions[0] == Reaction(
        (("A", 2), ("B", 1)), (("C", 3),)
    )


def test_single_species_signal():
    crn = parse_crn("X -> Y\ninput x = X\noutput y = Y")
    assert crn.inputs[0].neg is None and crn.outputs[0].pos == "Y"


@pytest.mark.parametrize(
    "line, message",
    [
        ("A + -> B", r"line 1: \"A \+ -> B\": expected a species name after '\+'"),
        ("+ A -> B", "expected a species name before"),
        ("A -> B -> C", "exactly one arrow"),
        ("2.5 A -> B", "must be a positive integer"),
        ("0 A -> B", "must be a positive integer, got 0"),
        ("A -> B [k=0]", "positive finite"),
        ("A -> B [k=-2]", "positive finite"),
        ("A -> B [kf=1]", "unknown option 'kf'"),
        ("A <=> B [k=1]", "unknown option 'k'"),
        ("-> B", "expected reactants before the arrow"),
        ("A ->", "expected products after the arrow"),
        ("A -> B-C", "not a species"),
        ("A -> B [k=1", "unbalanced"),
        ("init A = -1", "invalid"),
        ("init A = nan", "invalid"),
        ("init 3A = 1", "not a species name"),
        ("hello world", "expected a reaction"),
        ("output y = Q", "unknown species Q"),
        ("A -> B\ninput x = A - A", "both rails"),
    ],
)
def test_syntax_errors(line, message):
    with pytest.raises(CRNSyntaxError, match=message):
        parse_crn(line)


def test_five_mistakes_five_messages(tmp_path):
    text = "\n".join(
        [
            "A + B -> C",
            "A + -> B",  # 2: missing species
            "init A = 1",
            "init A = 2",  # 4: duplicate init
            "B -> C [k=-1]",  # 5: non-positive rate
            "init C = -3",  # 6: negative concentration
            "output y = Nope",  # 7: unknown species
        ]
    )
    path = tmp_path / "bad.crn"
    path.write_text(text)
    with pytest.raises(CRNSyntaxError) as info:
        load_crn(path)
    err = info.value
    assert [e[0] for e in err.errors] == [2, 4, 5, 6, 7]
    lines = err.lines()
    assert len(lines) == 5 and all(str(path) in ln for ln in lines)
    assert "expected a species name after '+'" in lines[0]
    assert "duplicate init for A (first set on line 3)" in lines[1]
    assert "positive finite" in lines[2]
    assert "concentrations are finite and >= 0" in lines[3]
    assert "unknown species Nope" in lines[4]
    assert str(err).startswith("5 errors:")


def test_constructor_validation():
    with pytest.raises(ValueError, match="positive integer"):
        Reaction((("A", 0),), ())
    with pytest.raises(ValueError, match="valid species name"):
        Reaction((("1A", 1),), ())
    with pytest.raises(ValueError, match="positive finite"):
        Reaction((("A", 1),), (), rate=float("inf"))
    with pytest.raises(ValueError, match="two `init` values"):
        CRN((), (("A", 1.0), ("A", 2.0)))
    with pytest.raises(ValueError, match="not a valid concentration"):
        CRN((), (("A", -1.0),))
    with pytest.raises(ValueError, match="appears in no reaction"):
        CRN((Reaction((("A", 1),), ()),), (), (Signal("x", "B"),))


def test_crn_is_hashable_and_immutable():
    crn = parse_crn(EXAMPLE)
    assert {crn: 1}[parse_crn(EXAMPLE)] == 1
    with pytest.raises(AttributeError):
        crn.init = ()  # type: ignore[misc]


def test_save_refuses_to_overwrite(tmp_path):
    crn = parse_crn(EXAMPLE)
    path = tmp_path / "net.crn"
    save_crn(crn, path)
    assert load_crn(path) == crn
    before = path.read_text()
    with pytest.raises(FileExistsError, match="--force"):
        save_crn(parse_crn("A -> B"), path)
    assert path.read_text() == before
    save_crn(parse_crn("A -> B"), path, overwrite=True)
    assert load_crn(path) == parse_crn("A -> B")
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
