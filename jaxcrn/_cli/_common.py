"""Helpers shared by the commands: errors, output paths, tables, solver options."""

import argparse
import csv
import math
import os
from collections.abc import Sequence


class CLIError(Exception):
    """A user-facing error: printed as one line per message on stderr, exit 2."""


def _setup_jax(args) -> None:
    import jax

    if getattr(args, "float32", False):
        jax.config.update("jax_enable_x64", False)
    else:
        jax.config.update("jax_enable_x64", True)


def _check_output_path(path: str | None, force: bool) -> None:
    if path is None:
        return
    if os.path.exists(path) and not force:
        raise CLIError(f"{path} already exists; pass --force to overwrite it.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"cannot write {path}: directory {parent} does not exist.")


def _load_crn_or_fail(path: str):
    from .._crn import CRNSyntaxError, load_crn

    try:
        return load_crn(path)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise CLIError(f"{path} is a directory, not a .crn file.") from None
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not a text file.") from None
    except CRNSyntaxError as e:
        raise CLIError("\n".join(e.lines())) from None


def _fmt(x, digits: int = 6) -> str:
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
    cells = [[_fmt(v, digits) for v in row] for row in rows]
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


def _json_num(x):
    x = float(x)
    return None if not math.isfinite(x) else x


def _solver(name: str):
    import diffrax

    from .._solver import Rodas5P

    if name == "auto":
        return None  # simulate/simulate_batch choose (see simulate_batch)
    if name == "rodas5p":
        return Rodas5P()
    return {
        "tsit5": diffrax.Tsit5(),
        "dopri5": diffrax.Dopri5(),
        "kvaerno5": diffrax.Kvaerno5(),
    }[name]


def _add_solver_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--t1", type=float, default=50.0, help="end time (default 50)")
    p.add_argument(
        "--solver",
        choices=["auto", "rodas5p", "tsit5", "dopri5", "kvaerno5"],
        default="auto",
        help="ODE solver (default auto: for a batch of a compiled network, Tsit5 "
        "with stiffness detection and Rodas5P re-runs on small networks, Rodas5P "
        "on large ones; one sample: Rodas5P)",
    )
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-9)
    p.add_argument("--max-steps", type=int, default=16384)
    p.add_argument(
        "--steady",
        action="store_true",
        help="stop each sample as soon as max|dy/dt| <= --steady-tol",
    )
    p.add_argument("--steady-tol", type=float, default=1e-6)
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="samples per engine call (default: 1024 on a CPU, 16384 on a GPU)",
    )
    p.add_argument("--float32", action="store_true", help="simulate in float32")


def _check_solver_options(args) -> None:
    if not (args.t1 > 0 and math.isfinite(args.t1)):
        raise CLIError(f"--t1 must be a positive number, got {args.t1}.")
    for name in ("rtol", "atol", "steady_tol"):
        v = getattr(args, name)
        if not (v > 0 and math.isfinite(v)):
            raise CLIError(f"--{name.replace('_', '-')} must be positive, got {v}.")
    if args.max_steps < 1 or (args.chunk_size is not None and args.chunk_size < 1):
        raise CLIError("--max-steps and --chunk-size must be >= 1.")


def read_inputs_csv(path: str, input_names: Sequence[str]):
    """Read a CSV of input vectors (one per row); an optional header names the
    inputs (in any order). Returns an (n, inputs) float array."""
    import numpy as np

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file.") from None
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not a text file.") from None
    if not rows:
        raise CLIError(f"{path}: no input rows.")
    order = list(range(len(input_names)))
    first = [c.strip() for c in rows[0]]

    def is_number(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return False

    start = 0
    if not all(is_number(c) for c in first):
        start = 1
        names = first
        unknown = [c for c in names if c not in input_names]
        if unknown or sorted(names) != sorted(input_names):
            raise CLIError(
                f"{path}, line 1: header {','.join(names)} does not match the "
                f"network's inputs {','.join(input_names)}."
            )
        order = [names.index(n) for n in input_names]
    data = []
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if len(row) != len(input_names):
            raise CLIError(
                f"{path}, line {lineno}: {len(row)} values, but the network has "
                f"{len(input_names)} inputs ({','.join(input_names[:6])}"
                f"{',...' if len(input_names) > 6 else ''})."
            )
        try:
            vals = [float(c) for c in row]
        except ValueError:
            bad = next(c for c in row if not is_number(c.strip()))
            raise CLIError(f"{path}, line {lineno}: {bad!r} is not a number.") from None
        if not all(math.isfinite(v) for v in vals):
            raise CLIError(f"{path}, line {lineno}: values must be finite.")
        data.append([vals[i] for i in order])
    return np.asarray(data, dtype=np.float64)


def _load_model_or_fail(path: str):
    from .._nn import load_model

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file.")
    try:
        return load_model(path)
    except (ValueError, KeyError, OSError) as e:
        raise CLIError(f"{path}: {e}") from None


def _load_split(name: str, split: str, data: str | None):
    from .. import datasets

    try:
        return datasets.load(name, data).split(split)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def _require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'jaxcrn[plot]'.") from None
    return plt
