import math
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
    # -0 is 0: it was kept, and printed back as "init A = -0"
    zero = parse_crn("A -> B\ninit A = -0")
    assert math.copysign(1.0, dict(zero.init)["A"]) == 1.0
    assert "init A = 0\n" in format_crn(zero)


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


# ------------------------------------------------- issue 15: what the parser accepts


@pytest.mark.parametrize(
    "text", ["3PG -> A", "A -> 2nd", "2X + Y -> Z", "A + 10B -> C"]
)
def test_a_coefficient_glued_to_a_name_is_an_error(text):
    with pytest.raises(CRNSyntaxError, match="cannot start with a digit") as info:
        parse_crn(text)
    assert "separated from its species by a space or '*'" in str(info.value)
    assert str(info.value).startswith("line 1: ")


@pytest.mark.parametrize("text", ["2 X -> Y", "2*X -> Y", "2 * X -> Y", "2\tX -> Y"])
def test_a_coefficient_is_separated_by_spaces_or_a_star(text):
    assert parse_crn(text).reactions[0] == Reaction((("X", 2),), (("Y", 1),))


@pytest.mark.parametrize(
    "brk", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_only_newlines_end_lines(brk):
    """Characters that `str.splitlines` treats as line breaks do not end a line of a
    .crn file: inside a comment they are part of it, and later lines keep their
    numbers."""
    text = f"A -> B  # a comment{brk}with more\nB -> C\nC -> \n"
    with pytest.raises(CRNSyntaxError) as info:
        parse_crn(text)
    assert [e[0] for e in info.value.errors] == [3]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_line_endings(eol):
    text = eol.join(["A -> B", "", "init A = 1", "B -> "]) + eol
    with pytest.raises(CRNSyntaxError) as info:
        parse_crn(text)
    assert [e[0] for e in info.value.errors] == [4]
    assert parse_crn(text.replace("B -> ", "B -> C")).initial == {"A": 1.0}


def test_byte_order_mark_is_accepted_at_the_start_only(tmp_path):
    path = tmp_path / "bom.crn"
    path.write_bytes(b"\xef\xbb\xbfA -> B\r\ninit A = 1\r\n")
    assert load_crn(path).species == ("A", "B")
    with pytest.raises(CRNSyntaxError, match=r"line 2: .*U\+FEFF"):
        parse_crn("A -> B\n\ufeffB -> C")


@pytest.mark.parametrize(
    "text, col, code",
    [
        ("A\u00a0-> B", 2, "U+00A0 (NO-BREAK SPACE)"),
        ("\u0663 A -> B", 1, "U+0663"),  # an Arabic-Indic digit is not a coefficient
        ("A -> B [k=\u0661]", 11, "U+0661"),
        ("A -> B\x00", 7, "U+0000"),
        ("A\x1b[31m -> B", 2, "U+001B"),
    ],
)
def test_non_ascii_outside_comments_is_an_error(text, col, code):
    with pytest.raises(CRNSyntaxError) as info:
        parse_crn(text)
    msg = str(info.value)
    assert f"column {col}" in msg and code in msg
    assert "\x1b" not in msg and "\x00" not in msg  # quoted text is escaped
    assert parse_crn("A -> B  # caf\u00e9 \u2192 \u0663 \x1b").species == ("A", "B")


def test_invalid_utf8_names_the_line_and_byte_offset(tmp_path):
    path = tmp_path / "bad.crn"
    path.write_bytes(b"A -> B\r\n# fine\nC -> \xe9D\n")
    with pytest.raises(CRNSyntaxError) as info:
        load_crn(path)
    ((line, _, msg),) = info.value.errors
    assert line == 3
    assert "byte 0xe9 at byte offset 20 (column 6)" in msg
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "coefficient", [str(2**31), str(10**30), str(2**63), "9" * 5000]
)
def test_coefficients_too_large_are_errors(coefficient):
    with pytest.raises(CRNSyntaxError, match="too large: coefficients are at most"):
        parse_crn(f"A -> {coefficient} B")


def test_large_valid_coefficients():
    assert parse_crn(f"A -> {2**31 - 1} B").reactions[0].products == (("B", 2**31 - 1),)
    assert parse_crn("1000 A -> B").reactions[0].order == 1000
    with pytest.raises(CRNSyntaxError, match="order .* is at most 1,000"):
        parse_crn("999 A + 2 B -> C")
    with pytest.raises(CRNSyntaxError, match="at most 2147483647"):
        parse_crn(f"A -> {2**30} B + {2**30} B")  # merged: 2**31
    with pytest.raises(ValueError, match="at most 2147483647"):
        Reaction((), (("B", 2**31),))


def test_empty_blank_and_comment_only_texts_are_empty_networks():
    for text in ["", "\n\n", "   \t\n", "# only a comment\n\n# another"]:
        assert parse_crn(text) == CRN()
    assert parse_crn(format_crn(CRN())) == CRN()


def test_input_preprocessing_round_trips():
    text = "X0p -> Y\nX0n -> Z\ninput x0 = X0p - X0n  [mean=5.8, std=0.25]\n"
    crn = parse_crn(text)
    assert crn.inputs[0] == Signal("x0", "X0p", "X0n", mean=5.8, std=0.25)
    assert "input x0 = X0p - X0n  [mean=5.8, std=0.25]" in format_crn(crn)
    assert parse_crn(format_crn(crn)) == crn
    assert parse_crn("A -> B\ninput x = A [std=2]").inputs[0].mean == 0.0
    for bad, match in [
        ("input x = A [std=0]", "std=0 must be a positive"),
        ("input x = A [mean=inf]", "must be a finite number"),
        ("input x = A [k=1]", "an input takes 'mean' and 'std'"),
        ("output y = A [mean=1]", "an output takes no options"),
    ]:
        with pytest.raises(CRNSyntaxError, match=match):
            parse_crn("A -> B\n" + bad)


def test_many_errors_are_summarised():
    text = "\n".join(f"A{i} -> " for i in range(50))
    with pytest.raises(CRNSyntaxError) as info:
        parse_crn(text, path="many.crn")
    lines = str(info.value).splitlines()
    assert lines[0] == "50 errors:" and len(lines) == 12
    assert lines[-1] == "... and 40 more errors"
    assert len(info.value.errors) == 50


def test_long_lines_are_cut_in_messages():
    with pytest.raises(CRNSyntaxError) as info:
        parse_crn("A" * 10_000 + " -> +")
    assert len(str(info.value)) < 300
