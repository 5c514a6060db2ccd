"""Fuzzing the readers and the command line (issue 15).

Every input either works or fails cleanly: `parse_crn`/`load_crn` raise
`CRNSyntaxError` whose errors point at real lines (the quoted text is that line),
`load_model` raises `ValueError` naming the file, and `main(argv)` exits 0, or 2 with
at most a few lines on stderr naming the file (and the line, where there is one). No
other exception, no traceback, and no output file (or temporary) on failure.

The fast part runs in the default suite and never reaches JAX: `compile_crn` is
replaced by a sentinel that stops a command once its input has been accepted. The
`slow` part runs many more cases, and lets valid ones simulate.
"""

import contextlib
import io
import json
import os
import re
import tempfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import jaxcrn._network
from jaxcrn import CRNSyntaxError, format_crn, load_crn, load_model, parse_crn
from jaxcrn._cli import main
from jaxcrn._crn import split_lines

from .helpers import array_npy, npy_bytes, npz_bytes


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
RELU = os.path.join(EXAMPLES, "relu.crn")

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLI = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


SEEDS = [_read(os.path.join(EXAMPLES, n)) for n in sorted(os.listdir(EXAMPLES))]
SEEDS = [s for s in SEEDS if "->" in s]
SEEDS.append(
    "A + B -> C              # rate constant 1 when none is given\n"
    "2 X -> Y  [k=0.5]\n"
    "A <=> B   [kf=1, kr=2]  # a reversible pair is two reactions\n"
    "0 -> A    [k=0.1]       # 0 is the empty complex\n"
    "init A = 1.5            # initial concentration (default 0)\n"
    "X0p -> X\nX0n -> Y\n"
    "input x0 = X0p - X0n  [mean=0.5, std=2]\n"
    "output y0 = Y - X       # an output read as a difference of species\n"
)


def _random_crn_text(seed: int) -> str:
    """A random valid CRN in the printed format (seeds for the mutations; built
    outside Hypothesis, whose strategies may not run jaxcrn's type-checked code)."""
    rng = np.random.default_rng(seed)
    names = ["A", "B", "C", "X_1", "Yp", "Yn", "_tmp", "Zz9"]
    lines = []
    for _ in range(rng.integers(1, 6)):
        side = [
            " + ".join(
                f"{c} {n}" if c > 1 else n
                for n, c in zip(
                    rng.choice(names, rng.integers(0, 3), replace=False),
                    rng.integers(1, 4, 3),
                )
            )
            or "0"
            for _ in range(2)
        ]
        lines.append(f"{side[0]} -> {side[1]}  [k={rng.uniform(1e-3, 1e3)!r}]")
    lines.append(f"init A = {rng.uniform(0, 10)!r}")
    return "\n".join(lines) + "\n"


SEEDS += [_random_crn_text(i) for i in range(8)]

# Things a user, an editor or a file system puts where they do not belong.
ODD = [
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "\f",
    "\v",
    "\x00",
    "\x1b",
    "\x1c",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\u00a0",
    "\u0663",
    "\u00e9",
    "\U0001f9ea",
    "#",
    "[",
    "]",
    "=",
    ",",
    "+",
    "-",
    "*",
    "->",
    "<=>",
    "<-",
    "=>",
    "0",
    "1",
    "2X",
    "3PG",
    "1e400",
    "-1",
    "nan",
    "inf",
    "1e-400",
    ".",
    "[k=]",
    "[k=1",
    str(2**31),
    str(2**63),
    "9" * 40,
    "1" * 5000,
    "A" * 300,
    "init",
    "input",
    "output",
    "init A = ",
    "input x = ",
    "output y = Q",
    "\\",
    '"',
    "'",
]
TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|[0-9.eE+-]+|<=>|->|.", re.S)


@st.composite
def mutated_crn_texts(draw):
    text = draw(st.sampled_from(SEEDS))
    tokens = TOKEN.findall(text)
    for _ in range(draw(st.integers(1, 6))):
        if not tokens:
            tokens = [draw(st.sampled_from(ODD))]
        i = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace"]))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            odd = draw(st.one_of(st.sampled_from(ODD), st.text(min_size=1, max_size=4)))
            if op == "insert":
                tokens.insert(i, odd)
            else:
                tokens[i] = odd
    return "".join(tokens)


def check_syntax_error(err: CRNSyntaxError, text: str, path: str | None = None):
    lines = split_lines(text.removeprefix("\ufeff"))
    assert err.errors
    for line, raw, msg in err.errors:
        assert 1 <= line <= max(len(lines), 1)
        if lines:
            assert raw == lines[line - 1]  # the line named is the line meant
        assert msg and "\n" not in msg
    shown = str(err).split("\n")
    assert len(shown) <= CRNSyntaxError.MAX_SHOWN + 2
    for ln in shown[1:] if len(err.errors) > 1 else shown:
        if ln.startswith("..."):
            continue
        assert re.match(rf"{re.escape(path + ', ') if path else ''}line \d+: ", ln)
        assert all(c.isprintable() for c in ln), ln


def parse_or_error(text: str):
    try:
        crn = parse_crn(text, path="f.crn")
    except CRNSyntaxError as e:
        check_syntax_error(e, text, "f.crn")
        return None
    assert parse_crn(format_crn(crn)) == crn
    return crn


@FAST
@given(mutated_crn_texts())
def test_parse_crn_mutated_text(text):
    parse_or_error(text)


@FAST
@given(st.binary(max_size=300))
def test_load_crn_random_bytes(data):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.crn")
        with open(path, "wb") as f:
            f.write(data)
        try:
            load_crn(path)
        except CRNSyntaxError as e:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as u:  # the first bad byte's line
                ((line, _, msg),) = e.errors
                assert line == len(re.findall(rb"\r\n|\r|\n", data[: u.start])) + 1
                assert f"byte offset {u.start}" in msg
            else:
                check_syntax_error(e, text, path)


class Reached(BaseException):
    """Raised instead of compiling a network: the command accepted its input."""


@contextlib.contextmanager
def stop_before_jax():
    def reached(*args, **kwargs):
        raise Reached

    with mock.patch.object(jaxcrn._network, "compile_crn", reached):
        yield


def run_cli(argv, folder):
    """main(argv): (code or 'reached', stdout, stderr), checking the promises."""
    before = set(os.listdir(folder))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except Reached:
            code = "reached"
    out, err = out.getvalue(), err.getvalue()
    assert "Traceback" not in err and "internal error" not in err, err
    after = set(os.listdir(folder))
    assert not [n for n in after if n.endswith(".tmp")], after  # no temporaries
    if code == 2:
        assert 1 <= len(err.strip().split("\n")) <= CRNSyntaxError.MAX_SHOWN + 2, err
        assert after == before, "an output file was written on failure"
    else:
        assert code in (0, 1, "reached"), (code, err)
    return code, out, err


@CLI
@given(mutated_crn_texts())
def test_cli_on_mutated_crn_files(text):
    expected = parse_or_error(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.crn")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        xml = os.path.join(d, "f.xml")
        code, out, err = run_cli(["export", path, "--sbml", xml], d)
        if expected is None or not expected.species:
            assert code == 2 and path in err
            if expected is None:
                assert re.search(r"line \d+: ", err)
        else:
            assert code == 0 and os.path.isfile(xml)
            assert _read(xml).count("<reaction ") == len(expected.reactions)
            os.remove(xml)
        with stop_before_jax():
            code, out, err = run_cli(["simulate", path, "--json"], d)
        if expected is None or not expected.species:
            assert code == 2 and path in err and json.loads(out)["error"]
        else:
            assert code == "reached"


CSV_SEEDS = ["x\n-1.5\n0.25\n2\n", "-1\n2\n", "x\r\n1\r\n\r\n3\r\n", "\ufeffx\n1\n"]


@st.composite
def mutated_csv(draw):
    text = draw(st.sampled_from(CSV_SEEDS))
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(chars)))
        odd = draw(
            st.one_of(
                st.sampled_from(ODD + [",", ";", '"', "x", "y"]), st.text(max_size=3)
            )
        )
        if draw(st.booleans()) and i < len(chars):
            chars[i] = odd
        else:
            chars.insert(i, odd)
    return "".join(chars)


def _csv_lines(text: str) -> int:
    return len(split_lines(text)) or 1


@CLI
@given(
    st.one_of(mutated_csv(), st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
)
def test_cli_on_mutated_csv(text):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        with stop_before_jax():
            code, out, err = run_cli(["simulate", RELU, "--inputs", path], d)
        assert code in (2, "reached")
        if code == 2:
            assert path in err
            m = re.search(r"line (\d+):", err)
            if m:
                assert 1 <= int(m.group(1)) <= _csv_lines(text)


@CLI
@given(st.binary(max_size=200))
def test_cli_on_random_bytes_as_csv(data):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.csv")
        with open(path, "wb") as f:
            f.write(data)
        with stop_before_jax():
            code, _, err = run_cli(["simulate", RELU, "--inputs", path], d)
        assert code in (2, "reached") and (code != 2 or path in err)


DTYPES = ["<f8", "<i1", "|b1", "<c16", "<U3", "|O", "|V4", ">f4", "<u8", "<f2"]
SHAPES = [(), (2, 3), (3,), (0, 3), (2, 3, 1), (10**9, 10**9), (2**40,), (4, 8)]


@st.composite
def malformed_npz(draw):
    members = {}
    names = draw(
        st.lists(
            st.sampled_from(["W0", "b0", "W1", "b1", "W3", "metadata", "junk"]),
            min_size=0,
            max_size=5,
        )
    )
    for name in names:
        kind = draw(st.sampled_from(["array", "header", "garbage", "object"]))
        if kind == "array":
            shape = draw(st.sampled_from([(2, 3), (3,), (3, 2), (2,), ()]))
            values = draw(st.sampled_from([-1.0, 0.0, 1.0, 0.5, np.nan, 1e308]))
            dtype = draw(st.sampled_from(["f8", "i1", "f4", "bool", "U2"]))
            with np.errstate(invalid="ignore", over="ignore"):
                data = array_npy(np.full(shape, values).astype(dtype))
        elif kind == "header":
            descr = draw(st.sampled_from(DTYPES))
            shape = draw(st.sampled_from(SHAPES))
            data = npy_bytes(descr, shape, draw(st.binary(max_size=64)))
        elif kind == "object":
            obj = np.empty(2, dtype=object)
            obj[:] = [1, "two"]
            data = array_npy(obj)
        else:
            data = draw(st.binary(max_size=64))
        if name == "metadata" and draw(st.booleans()):
            meta = draw(
                st.sampled_from(
                    ["{", "[]", '{"quantization": 7}', '{"dropout_in": 2}', "{}"]
                )
            )
            data = array_npy(np.array(meta))
        members[f"{name}.npy" if draw(st.booleans()) or name != "junk" else name] = data
    blob = npz_bytes(members, compress=draw(st.booleans()))
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(blob) - 1, 0))))
    if cut is not None and draw(st.booleans()):
        blob = blob[:cut]
    return blob


@CLI
@given(malformed_npz())
def test_load_model_and_compile_malformed_npz(blob):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.npz")
        with open(path, "wb") as f:
            f.write(blob)
        try:
            load_model(path)
            ok = True
        except ValueError as e:
            assert path in str(e) and "\n" not in str(e)
            assert "allow_pickle" not in str(e)
            ok = False
        code, _, err = run_cli(["compile", path, "-o", os.path.join(d, "n.crn")], d)
        assert code == (0 if ok else 2), err
        if not ok:
            assert path in err


OPTION_VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "nan",
            "inf",
            "-inf",
            "1e400",
            "1e-400",
            "",
            " ",
            "abc",
            "1_0",
            "\u0661",
            str(2**63),
            "0x10",
            "1e3",
            "50",
            "1e-9",
            "--t1",
        ]
    ),
    st.text(max_size=5),
)
OPTIONS = [
    "--t1",
    "--rtol",
    "--atol",
    "--max-steps",
    "--steady-tol",
    "--chunk-size",
    "--eps",
    "--set",
    "--solver",
    "--plot",
]


@CLI
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), OPTION_VALUES), max_size=3))
def test_cli_option_values(options):
    argv = ["simulate", os.path.join(EXAMPLES, "reversible.crn")]
    for flag, value in options:
        if flag == "--set":
            value = f"A={value}"
        if flag == "--plot":
            value = f"p{value}"
        argv += [flag, value]
    with tempfile.TemporaryDirectory() as d:
        argv = [a if not a.startswith("p") else os.path.join(d, a) for a in argv]
        with stop_before_jax():
            code, out, err = run_cli(argv, d)
        assert code in (2, "reached")
        if code == 2:
            lines = err.strip().split("\n")
            assert len(lines) <= 2 and "error:" in lines[0]


# ----------------------------------------------------------------- unusual, valid

UNUSUAL = [
    ("A -> B\r\ninit A = 1\r\n", "A -> B\ninit A = 1"),
    ("\ufeffA -> B\ninit A = 1\n", "A -> B\ninit A = 1"),
    ("A\t->\tB\t[k=2]\ninit\tA\t=\t1\n", "A -> B [k=2]\ninit A = 1"),
    ("A -> B [k=2]  # comment [k=3] -> x\ninit A = 1 # c\n", "A -> B [k=2]\ninit A=1"),
    ("A -> B # \u2028 \x85 \f \u00e9\ninit A = 1\n", "A -> B\ninit A = 1"),
    ("A->B[k=2]\ninit A=1", "A -> B [k=2]\ninit A = 1"),
    ("1000 A -> B\ninit A = 1\n", "1000 A -> B\ninit A = 1"),
    ("2*A -> 3 * B\ninit A = 1\n", "2 A -> 3 B\ninit A = 1"),
    (f"{'L' * 5000} -> B\n", f"{'L' * 5000} -> B"),
    ("A -> B\n\n\n\ninit A = 1\n\n", "A -> B\ninit A = 1"),
    ("A <=> B [kr=3, kf=2]\n", "A <=> B [kf=2, kr=3]"),
    ("A -> B [k=1e-300]\n", "A -> B [k=1e-300]"),
    ("A -> B\rinit A = 1\r", "A -> B\ninit A = 1"),
]


@pytest.mark.parametrize("text, clean", UNUSUAL)
def test_unusual_valid_texts(text, clean, tmp_path):
    assert parse_crn(text) == parse_crn(clean)
    path = tmp_path / "f.crn"
    path.write_bytes(text.encode("utf-8"))
    assert load_crn(path) == parse_crn(clean)


# ----------------------------------------------------------------- the long run


@pytest.mark.slow
@SLOW
@given(mutated_crn_texts())
def test_slow_parse_crn_mutated_text(text):
    parse_or_error(text)


@pytest.mark.slow
@SLOW
@given(malformed_npz())
def test_slow_malformed_npz(blob):
    test_load_model_and_compile_malformed_npz.hypothesis.inner_test(blob)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_crn_texts())
def test_slow_cli_simulates_what_it_accepts(text):
    """Valid mutations really simulate (few steps): exit 0 or 1, JSON on stdout."""
    expected = parse_or_error(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.crn")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        code, out, err = run_cli(
            ["simulate", path, "--json", "--t1", "1", "--max-steps", "64"], d
        )
        if expected is None or not expected.species:
            assert code == 2
        else:
            assert code in (0, 1), err
            obj = json.loads(out)
            assert set(obj["final"]) == set(expected.species)
            if code == 1:
                assert "failed" in err


@pytest.mark.slow
@SLOW
@given(
    st.one_of(mutated_csv(), st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
)
def test_slow_cli_on_mutated_csv(text):
    test_cli_on_mutated_csv.hypothesis.inner_test(text)
