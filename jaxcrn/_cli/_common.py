"""What the commands share: the parser class and its help format, errors, reading
.crn/.npz/.csv files, writing output files, tables, JSON and solver options.

Nothing here imports JAX or NumPy at module level.
"""

import argparse
import csv
import functools
import io
import math
import os
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence

from .._crn import DECIMAL_NUMBER


class CLIError(Exception):
    """A user-facing error: printed as one line per message on stderr, exit 2."""


class UsageError(Exception):
    """A command line argparse could not parse (raised by `Parser.error`)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog
        self.message = message


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (wrapped by `command`), and every
    option's default shown unless its help already says what it is."""

    def _get_help_string(self, action):
        help = action.help or ""
        if (
            "default" not in help
            and action.default is not None
            and action.default is not False
            and action.default != argparse.SUPPRESS
            and action.option_strings
            and not isinstance(action, argparse.BooleanOptionalAction)
        ):
            help += " (default: %(default)s)"
        return help


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are raised (main prints them in one line
    with a hint) instead of printing the usage block and exiting."""

    def error(self, message):
        raise UsageError(self.prog, message)


@functools.lru_cache(maxsize=64)
def _wrap(description: str) -> str:
    return "\n\n".join(
        textwrap.fill(" ".join(par.split()), 80) for par in description.split("\n\n")
    )


def command(sub, name: str, *, help: str, description: str, examples: str):
    """A subcommand parser: `description` wrapped to 80 columns, then `examples`
    (lines `jaxcrn ...  # what it does`) at the end of `--help`."""
    lines = [ln.strip() for ln in examples.strip().splitlines()]
    epilog = "examples:\n" + "\n".join(f"  {ln}" for ln in lines)
    return sub.add_parser(
        name,
        help=help,
        description=_wrap(description),
        epilog=epilog,
        formatter_class=HelpFormatter,
        # no abbreviations: `--js` would be --json to argparse and not to the
        # JSON error reporting, and a later option could make one ambiguous
        allow_abbrev=False,
    )


# ------------------------------------------------------------------ set-up


def setup_jax(args) -> None:
    """Float64 (unless `--float32`), and JAX's persistent compilation cache where
    `JAXCRN_CACHE` points (by default `~/.cache/jaxcrn/xla`; `off` for none): each
    command is a new process, and without the cache each would compile the engine
    for its network again. A cache that cannot be used is a one-line warning, not
    an error: it changes how long a command takes, never its results."""
    import jax

    from .._compile_cache import use_compilation_cache

    jax.config.update("jax_enable_x64", not getattr(args, "float32", False))
    try:
        use_compilation_cache()
    except ValueError as e:
        print(
            f"jaxcrn {args.command}: warning: {e} Compiling without it.",
            file=sys.stderr,
        )


# counts (steps, samples, lanes, epochs) are int32 in the engine and the trainer
MAX_COUNT = 2**31 - 1
# seeds: NumPy's and JAX's generators both take any integer in [0, 2**32)
MAX_SEED = 2**32 - 1


def check_positive(args, *names: str, integer: bool = False) -> None:
    """Each `args.<name>` (None allowed) is a positive finite number (an integer
    from 1 to MAX_COUNT with `integer`)."""
    for name in names:
        v = getattr(args, name)
        if v is None:
            continue
        flag = "--" + name.replace("_", "-")
        if integer and not 1 <= v <= MAX_COUNT:
            raise CLIError(f"{flag} must be an integer from 1 to {MAX_COUNT}, got {v}.")
        if not integer and not (v > 0 and math.isfinite(v)):
            raise CLIError(f"{flag} must be a positive number, got {v}.")


def check_seed(args) -> None:
    """`args.seed` is an integer from 0 to MAX_SEED."""
    if not 0 <= args.seed <= MAX_SEED:
        raise CLIError(
            f"--seed must be an integer from 0 to {MAX_SEED}, got {args.seed}."
        )


# ------------------------------------------------------------------ input files


def _open_input(path: str, kind: str) -> bytes:
    """The bytes of an input file, or a CLIError saying why it cannot be read."""
    if path == "":
        raise CLIError(f"the file name is empty; expected {kind}.")
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory, not {kind}.")
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            raise CLIError(f"{path} is not a regular file; expected {kind}.")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file.") from None
    except PermissionError:
        raise CLIError(f"{path}: permission denied.") from None
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror or e}.") from None


def load_crn_or_fail(path: str):
    """Parse a .crn file; every problem becomes a CLIError (one line each). A file
    without species (empty, blank, only comments) is an error too."""
    from .._crn import CRNSyntaxError, decode_text, parse_crn

    data = _open_input(path, "a .crn file")
    if data[:4] == b"PK\x03\x04":  # a zip archive: an .npz model, most likely
        raise CLIError(
            f"{path} is a zip archive (a model .npz?), not a .crn text file; "
            f"compile a model first: jaxcrn compile {path} -o net.crn"
        )
    if data[:2] == b"\x1f\x8b":
        raise CLIError(f"{path} is gzip-compressed; decompress it first (gunzip).")
    if b"<sbml" in data[:4096].lower():
        raise CLIError(
            f"{path} is an SBML model, not a .crn text file; convert it first: "
            f"jaxcrn import {path} -o net.crn"
        )
    try:
        crn = parse_crn(decode_text(data, path), path=path)
    except CRNSyntaxError as e:
        raise CLIError("\n".join(e.lines(CRNSyntaxError.MAX_SHOWN))) from None
    if not crn.species:
        what = (
            "only reactions between empty complexes ('0 -> 0')"
            if crn.reactions
            else "nothing (it is empty, blank or only comments)"
        )
        raise CLIError(
            f"{path} declares no species: it holds {what}; a reaction is a line "
            "such as 'A + B -> C' (see the .crn format in the README)."
        )
    return crn


def load_model_or_fail(path: str):
    """Load a model .npz; every problem becomes a CLIError naming the file."""
    from .._nn import load_model

    _open_input(path, "a model file (.npz)")
    try:
        return load_model(path)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def sbml_or_fail(crn, source: str) -> str:
    """`to_sbml(crn)`, or a CLIError naming `source` when SBML cannot hold it
    (e.g. a subnormal rate or initial value)."""
    from .._sbml import to_sbml

    try:
        return to_sbml(crn)
    except ValueError as e:
        raise CLIError(f"{source}: cannot be written as SBML: {e}") from None


def check_model_fits(model, path: str, name: str, dataset) -> None:
    """The network from `path` reads the dataset's features and gives one output
    per class, or a CLIError saying which model the command needs."""
    from .._nn import load_metadata

    n_in, n_out = model.layer_sizes[0], model.layer_sizes[-1]
    if (n_in, n_out) != (dataset.n_features, dataset.n_classes):
        raise CLIError(
            f"{path} is a network with {n_in} inputs and {n_out} outputs, but {name} "
            f"has {dataset.n_features} features and {dataset.n_classes} classes: "
            f"pass a model trained on {name}."
        )
    meta = load_metadata(path)
    trained_on = meta.get("dataset")
    if isinstance(trained_on, str) and trained_on != name:  # shapes can agree
        raise CLIError(
            f"{path} was trained on {trained_on} (its metadata says so), not {name}: "
            f"pass a model trained on {name}, or name {trained_on} as the dataset."
        )
    pre = meta.get("preprocessing")
    features = pre.get("features") if isinstance(pre, dict) else None
    have = (dataset.preprocessing or {}).get("features")
    if isinstance(features, list) and have is not None and features != list(have):
        k = next(
            (i for i, (a, b) in enumerate(zip(features, have)) if a != b),
            min(len(features), len(have)),
        )
        raise CLIError(
            f"{path} reads feature {k} as {features[k : k + 1]}, but the {name} data "
            f"here has {list(have)[k : k + 1]} there: the model expects its inputs in "
            "another order (or other data)."
        )


def load_dataset(name: str, data: str | None):
    from .. import datasets

    try:
        return datasets.load(name, data)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise CLIError(str(e)) from None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_CSV_NUMBER = DECIMAL_NUMBER


def read_csv_rows(path: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file as `(line number, stripped cells)`; a
    leading byte-order mark is ignored; every problem is a CLIError."""
    from .._crn import CRNSyntaxError, decode_text

    data = _open_input(path, "a CSV file")
    try:
        text = decode_text(data, path).removeprefix("\ufeff")
    except CRNSyntaxError as e:
        raise CLIError(e.lines()[0]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((reader.line_num, [c.strip() for c in row]))
    except csv.Error as e:
        limit = csv.field_size_limit()
        msg = str(e)
        if "field larger than field limit" in msg:
            msg = f"a value is longer than {limit:,} characters"
        raise CLIError(f"{path}, line {reader.line_num}: {msg}.") from None
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if rows and all(len(r) == 1 for _, r in rows) and sep in rows[0][1][0]:
            raise CLIError(
                f"{path}, line {rows[0][0]}: the values are separated by {name}; "
                "jaxcrn reads comma-separated values (save the file as CSV with "
                "commas)."
            )
    return rows


def read_inputs_csv(path: str, input_names: Sequence[str]):
    """Read a CSV of input vectors, one per line; an optional header line names the
    inputs (in any order). Blank lines are skipped; a leading byte-order mark is
    ignored. Returns `(x, lines)`: an `(n, inputs)` float64 array and the line of
    each row in the file (for messages)."""
    import numpy as np

    names = list(input_names)
    short = ",".join(names[:6]) + (",..." if len(names) > 6 else "")
    rows = read_csv_rows(path)
    if not rows:
        raise CLIError(
            f"{path} has no input rows; expected one line of {len(names)} "
            f"comma-separated numbers ({short}) per input vector."
        )
    order = list(range(len(names)))
    first_line, first = rows[0]
    if all(_NAME.fullmatch(c) for c in first) and not all(
        _CSV_NUMBER.fullmatch(c) for c in first
    ):  # a header: every cell a name
        if len(set(first)) != len(first) or sorted(first) != sorted(names):
            raise CLIError(
                f"{path}, line {first_line}: the header "
                f"{_clip(','.join(first), 60)!r} does not name the network's inputs "
                f"({short}); give each input once, in any order, or no header."
            )
        order = [first.index(n) for n in names]
        rows = rows[1:]
        if not rows:
            raise CLIError(f"{path} has a header but no input rows.")
    out = np.empty((len(rows), len(names)), dtype=np.float64)
    lines = []
    for k, (lineno, row) in enumerate(rows):
        where = f"{path}, line {lineno}"
        if len(row) != len(names):
            raise CLIError(
                f"{where}: {len(row)} values, but the network has {len(names)} "
                f"inputs ({short})."
            )
        for j, c in enumerate(row):
            if c == "":
                raise CLIError(f"{where}: value {j + 1} is empty.")
            if not _CSV_NUMBER.fullmatch(c):
                hint = " (values are separated by commas)" if ";" in c else ""
                raise CLIError(f"{where}: {_clip(c, 40)!r} is not a number{hint}.")
            v = float(c)
            if not math.isfinite(v):
                raise CLIError(f"{where}: {_clip(c, 40)} is too large (not finite).")
        out[k] = [float(row[i]) for i in order]
        lines.append(lineno)
    return out, lines


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ------------------------------------------------------------------ output files


def _cli_words(e: Exception) -> str:
    return str(e).replace(" --force (overwrite=True)", " --force")


def claim_outputs(
    force: bool, *paths: str | None, make_parents: bool = False, reads=()
) -> list[str]:
    """Check every output path before any work is done (exists without --force, a
    directory, no such folder, the same file twice, one of the command's input
    files `reads`): a CLIError if one cannot be written."""
    from .._files import check_outputs

    if "-" in paths:  # would be a file named "-" in the working folder
        raise CLIError(
            "'-' is not standard output here: name the file to write (commands that "
            "can print their result do so when the output option is left out)."
        )
    try:
        return check_outputs(
            paths, overwrite=force, make_parents=make_parents, reads=reads
        )
    except FileExistsError as e:
        raise CLIError(_cli_words(e)) from None
    except (OSError, ValueError) as e:
        raise CLIError(str(e)) from None


def write_files(files: dict, force: bool, *, make_parents: bool = False) -> list[str]:
    """Write every file (text, bytes or a writer function) atomically, or none."""
    from .._files import write_outputs

    try:
        return write_outputs(files, overwrite=force, make_parents=make_parents)
    except FileExistsError as e:
        raise CLIError(_cli_words(e)) from None
    except OSError as e:
        raise CLIError(str(e)) from None


def say(message: str, *, json_mode: bool = False) -> None:
    """A progress or 'wrote ...' line: stdout, or stderr when stdout is JSON."""
    print(message, file=sys.stderr if json_mode else sys.stdout, flush=True)


def require_matplotlib(option: str = "--plot"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError(
            f"{option} needs matplotlib: pip install 'jaxcrn[plot]'."
        ) from None
    return plt


def plot_target(path: str | None) -> tuple[str, str] | None:
    """`(file, format)` for `--plot PATH`, checked before anything runs: the format
    is the extension's (`.png` is added when there is none, as matplotlib does)."""
    if path is None:
        return None
    if os.path.isdir(path):
        raise CLIError(f"--plot {path} is a directory; name a file to write.")
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    base = os.path.basename(path)
    if base.startswith(".") and "." not in base[1:] and base[1:].lower() in formats:
        raise CLIError(
            f"--plot {path}: name the file before its extension, e.g. --plot "
            f"{os.path.join(os.path.dirname(path), 'out' + base)}"
        )
    root, ext = os.path.splitext(path)
    if ext in ("", "."):
        return (root if ext else path) + ".png", "png"
    fmt = ext[1:].lower()
    if fmt not in formats:
        known = ", ".join("." + f for f in sorted(formats))
        raise CLIError(
            f"--plot {path}: unsupported format {ext!r}; the file name must end in "
            f"one of {known}."
        )
    return path, fmt


def figure_writer(fig, fmt: str, **kwargs):
    """A writer function for `write_files` that saves a matplotlib figure."""

    def write(f):
        fig.savefig(f, format=fmt, **kwargs)

    return write


# ------------------------------------------------------------------ printing


def fmt(x, digits: int = 6) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "never" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def format_table(
    header: Sequence[str], rows: Sequence[Sequence], digits: int = 6
) -> str:
    """Align columns: numbers right, text left."""
    cells = [[fmt(v, digits) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [
        all(
            isinstance(row[i], int | float) and not isinstance(row[i], bool)
            for row in rows
        )
        if rows
        else False
        for i in range(len(header))
    ]

    def line(vals):
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(vals, widths, numeric, strict=True)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def json_num(x):
    """A float for JSON: None where not finite (JSON has no NaN or inf)."""
    x = float(x)
    return None if not math.isfinite(x) else x


def clip_concentrations(y, *, atol: float, rtol: float):
    """Final concentrations as printed: a negative value within the solver's
    tolerance of zero (|y| <= atol + rtol * max|y|, round-off of a species that
    ran out) is shown as 0; larger negative values are shown as they are."""
    import numpy as np

    y = np.array(y, dtype=np.float64)
    finite = np.isfinite(y)
    scale = float(np.max(np.abs(y[finite]), initial=0.0))
    tol = atol + rtol * scale
    y[(y < 0) & (y >= -tol)] = 0.0
    return y


def report_failures(command: str, status, where: Sequence[str] | None = None) -> None:
    """On stderr: how many samples failed, with which status, where, and why."""
    import numpy as np

    from .._simulate import Status

    status = np.atleast_1d(np.asarray(status))
    bad = status != Status.OK
    if not bad.any():
        return
    n = status.size
    head = (
        f"jaxcrn {command}: {int(bad.sum())} of {n} samples failed:"
        if n > 1
        else f"jaxcrn {command}: the simulation failed:"
    )
    print(head, file=sys.stderr)
    for s in Status:
        idx = np.flatnonzero(status == s)
        if s == Status.OK or not idx.size:
            continue
        at = ""
        if where is not None:
            shown = ", ".join(where[i] for i in idx[:5])
            at = f" ({shown}{', ...' if idx.size > 5 else ''})"
        count = f"{idx.size} " if n > 1 else ""
        print(f"  {count}{s.name.lower()}{at}: {s.message()}", file=sys.stderr)


# ------------------------------------------------------------------ solver options

SOLVERS = ("auto", "rodas5p", "tsit5", "dopri5", "kvaerno5")


def solver(name: str):
    import diffrax

    from .._solvers import Rodas5P

    if name == "auto":
        return None  # simulate/simulate_batch choose (see simulate_batch)
    if name == "rodas5p":
        return Rodas5P()
    return {
        "tsit5": diffrax.Tsit5(),
        "dopri5": diffrax.Dopri5(),
        "kvaerno5": diffrax.Kvaerno5(),
    }[name]


def add_solver_options(p: argparse.ArgumentParser, *, t1: float = 50.0) -> None:
    g = p.add_argument_group("solver options")
    g.add_argument("--t1", type=float, default=t1, help=f"end time (default: {t1:g})")
    g.add_argument(
        "--solver",
        choices=SOLVERS,
        default="auto",
        help="ODE solver (default: auto: for a batch of a compiled network, Tsit5 "
        "with stiffness detection and Rodas5P re-runs on small networks, Rodas5P "
        "on large ones; one sample: Rodas5P)",
    )
    g.add_argument(
        "--rtol", type=float, default=1e-6, help="relative tolerance (default: 1e-6)"
    )
    g.add_argument(
        "--atol", type=float, default=1e-9, help="absolute tolerance (default: 1e-9)"
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=16384,
        help="solver steps per sample before it fails with status max_steps "
        "(default: 16384)",
    )
    g.add_argument(
        "--steady",
        action="store_true",
        help="stop each sample as soon as max|dy/dt| <= --steady-tol (default: run "
        "to --t1)",
    )
    g.add_argument(
        "--steady-tol",
        type=float,
        default=1e-6,
        help="a state is steady when max|dy/dt| <= this (default: 1e-6)",
    )
    g.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="samples per engine call (default: 1024 on a CPU, 16384 on a GPU)",
    )
    g.add_argument(
        "--float32",
        action="store_true",
        help="simulate in float32 (default: float64)",
    )


def add_store_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("result store (long runs that survive interruption)")
    g.add_argument(
        "--store",
        metavar="DIR",
        help="write the results to DIR as they are computed, chunk by chunk (each "
        "chunk complete before it is listed as done); an interrupted run keeps "
        "every finished chunk (default: none)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --store DIR: finished chunks are read back, the "
        "others computed; the other arguments must be the same (a fresh run when "
        "DIR does not exist yet)",
    )


def check_store(args) -> None:
    """--store/--resume before any work: DIR a folder (or creatable), and without
    --resume new or empty."""
    store, resume = getattr(args, "store", None), getattr(args, "resume", False)
    if store is None:
        if resume:
            raise CLIError("--resume needs --store DIR (the run to continue).")
        return
    if store == "":
        raise CLIError("--store: the folder name is empty.")
    if os.path.exists(store) and not os.path.isdir(store):
        raise CLIError(f"--store {store} exists and is not a folder.")
    if os.path.isdir(store) and os.listdir(store) and not resume:
        raise CLIError(
            f"--store {store} already holds files (a run?); pass --resume to "
            "continue the run it holds, or choose a new folder (a store is never "
            "overwritten)."
        )
    parent = os.path.dirname(os.path.abspath(store))
    if not os.path.isdir(store) and not os.path.isdir(parent):
        raise CLIError(
            f"--store {store}: the folder {parent} does not exist; create it first."
        )


def store_error(e: Exception) -> CLIError:
    """A store's error (another run, damaged, not writable) for the user."""
    return CLIError(
        str(e)
        .replace("resume=True (--resume)", "--resume")
        .replace("pass resume=True", "pass --resume")
    )


def check_rtol(args) -> None:
    """`--rtol` below 1: a relative tolerance of 1 or more accepts any answer."""
    if args.rtol >= 1:
        raise CLIError(
            f"--rtol must be below 1, got {args.rtol:g} (a relative tolerance of 1 "
            "or more accepts any answer; the default is 1e-6)."
        )


def check_solver_options(args) -> None:
    check_positive(args, "t1", "rtol", "atol", "steady_tol")
    check_rtol(args)
    check_positive(args, "max_steps", "chunk_size", integer=True)


def join(items: Iterable[str]) -> str:
    return ", ".join(items)
