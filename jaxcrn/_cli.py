"""The `jaxcrn` command line: `jaxcrn COMMAND ...`; `jaxcrn --help` lists commands."""

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Sequence


class CLIError(Exception):
    """A user-facing error: printed as one line per message on stderr, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcrn",
        description=(
            "Compile binary-weight ReLU networks to rate-independent chemical reaction "
            "networks and simulate them with JAX."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each command registers itself here: `_add_<name>(sub)` sets `func`.
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        for line in str(e).splitlines():
            print(f"jaxcrn {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------
# Shared helpers.


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
    from ._crn import CRNSyntaxError, load_crn

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

    from ._solvers import Rodas5P

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


# ---------------------------------------------------------------------------------
# jaxcrn simulate


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a .crn file and print final concentrations or outputs",
        description=(
            "Simulate a CRN under mass-action kinetics. Without --inputs, prints the "
            "final concentration of every species; with --inputs, one row per input "
            "vector with the outputs, their argmax, and convergence."
        ),
    )
    p.add_argument("crn", help="the .crn file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SPECIES=VALUE",
        help="override an initial concentration (repeatable)",
    )
    p.add_argument("--inputs", metavar="CSV", help="input vectors, one per row")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--eps",
        type=float,
        default=1e-3,
        help="with --inputs, t_converged is the time from which every output stays "
        "within EPS of its final value (default 1e-3; resolution t1/200)",
    )
    p.add_argument("--plot", metavar="PNG", help="plot the trajectories")
    p.add_argument("--force", action="store_true", help="overwrite --plot output")
    _add_solver_options(p)
    p.set_defaults(func=_cmd_simulate)


def _parse_sets(items, crn) -> dict[str, float]:
    out: dict[str, float] = {}
    species = set(crn.species)
    for item in items:
        if "=" not in item:
            raise CLIError(f"--set {item!r}: expected SPECIES=VALUE.")
        name, value = (s.strip() for s in item.split("=", 1))
        if name not in species:
            raise CLIError(f"--set {item!r}: the network has no species {name!r}.")
        try:
            v = float(value)
        except ValueError:
            raise CLIError(f"--set {item!r}: {value!r} is not a number.") from None
        if not (math.isfinite(v) and v >= 0):
            raise CLIError(f"--set {item!r}: concentrations must be finite and >= 0.")
        out[name] = v
    return out


def _cmd_simulate(args) -> int:
    _check_solver_options(args)
    if not (args.eps > 0 and math.isfinite(args.eps)):
        raise CLIError(f"--eps must be positive, got {args.eps}.")
    crn = _load_crn_or_fail(args.crn)
    sets = _parse_sets(args.set, crn)
    if args.inputs and not crn.inputs:
        raise CLIError(f"{args.crn} declares no inputs, but --inputs was given.")
    _check_output_path(args.plot, args.force)
    _setup_jax(args)
    import jax.numpy as jnp
    import numpy as np

    from ._batch import simulate_batch
    from ._network import compile_crn
    from ._simulate import Status, simulate

    net = compile_crn(crn)
    if sets:
        idx = jnp.asarray([net.index(s) for s in sets])
        net = _with_init(net, idx, jnp.asarray(list(sets.values()), net.y_init.dtype))
    kw = dict(
        solver=_solver(args.solver),
        rtol=args.rtol,
        atol=args.atol,
        max_steps=args.max_steps,
        stop_when_steady=args.steady,
        steady_tol=args.steady_tol,
    )
    if args.inputs:
        x = read_inputs_csv(args.inputs, net.input_names)
        try:
            res = simulate_batch(
                net,
                x,
                args.t1,
                chunk_size=args.chunk_size,
                progress=not args.json,
                saveat=201,
                **kw,
            )
        except ValueError as e:
            raise CLIError(f"{args.inputs}: {e}") from None
        outs = np.asarray(res.outputs_final)
        t_conv = _output_settling_times(res, args.eps)
        rows_json = []
        rows = []
        for i in range(x.shape[0]):
            ok = int(res.status[i]) == Status.OK
            am = int(np.argmax(outs[i])) if ok and outs.shape[1] else None
            rows_json.append(
                {
                    "input": [float(v) for v in x[i]],
                    "outputs": [_json_num(v) for v in outs[i]],
                    "argmax": am,
                    "converged": bool(res.converged[i]),
                    "t_converged": _json_num(t_conv[i]),
                    "status": Status(int(res.status[i])).name.lower(),
                }
            )
            rows.append(
                [i]
                + [float(v) for v in x[i]]
                + [float(v) for v in outs[i]]
                + [
                    am if am is not None else "-",
                    bool(res.converged[i]),
                    float(t_conv[i]),
                ]
            )
        if args.json:
            print(json.dumps({"t1": args.t1, "rows": rows_json}))
        else:
            header = (
                ["row"]
                + list(net.input_names)
                + list(net.output_names)
                + ["argmax", "converged", "t_converged"]
            )
            print(format_table(header, rows))
            print(f"\n{res.summary()}; t1 = {args.t1:g}")
        if args.plot:
            _plot_outputs(args.plot, res, net, max_rows=8)
        return 0 if bool(np.all(res.status == Status.OK)) else 1
    y0 = net.y_init
    res = simulate(net, y0, jnp.asarray(args.t1, y0.dtype), saveat=201, **kw)
    final = np.asarray(res.y_final)
    status = Status(int(res.status))
    if args.json:
        obj = {
            "t1": args.t1,
            "final": {s: _json_num(v) for s, v in zip(net.species, final, strict=True)},
            "converged": bool(res.converged),
            "t_converged": _json_num(res.t_converged),
            "status": status.name.lower(),
        }
        if net.n_outputs:
            obj["outputs"] = {
                n: _json_num(v)
                for n, v in zip(net.output_names, res.outputs_final, strict=True)
            }
        print(json.dumps(obj))
    else:
        y0n = np.asarray(y0)
        rows = [
            [s, float(a), float(b)]
            for s, a, b in zip(net.species, y0n, final, strict=True)
        ]
        print(format_table(["species", "initial", "final"], rows))
        for n, v in zip(net.output_names, np.asarray(res.outputs_final), strict=True):
            print(f"output {n} = {_fmt(float(v))}")
        conv = (
            f"converged at t = {_fmt(float(res.t_converged), 4)}"
            if bool(res.converged)
            else f"not converged ({status.message() if status else 'still changing'})"
        )
        print(f"\nt1 = {args.t1:g}: {conv}; {int(res.num_steps)} solver steps")
    if args.plot:
        _plot_species(args.plot, res, net)
    return 0 if status == Status.OK else 1


def _output_settling_times(res, eps: float):
    """Per row: the time from which every output stays within eps of its final
    value (inf for failed rows)."""
    import jax
    import numpy as np

    from ._simulate import convergence_times

    if np.asarray(res.outputs).shape[-1] == 0:
        return np.where(np.asarray(res.converged), np.asarray(res.t_final), np.inf)
    ct = jax.vmap(lambda t, o, f: convergence_times(t, o, f, eps=eps))(
        res.ts, res.outputs, res.outputs_final
    )
    t = np.asarray(ct.all_abs_time)
    return np.where(np.asarray(res.status) == 0, t, np.inf)


def _with_init(net, idx, values):
    import equinox as eqx

    return eqx.tree_at(lambda n: n.y_init, net, net.y_init.at[idx].set(values))


def _require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'jaxcrn[plot]'.") from None
    return plt


def _plot_species(path, res, net) -> None:
    from ._plot import plot_trajectories

    plt = _require_matplotlib()
    fig = plot_trajectories(res, net)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def _plot_outputs(path, res, net, max_rows: int) -> None:
    from ._plot import plot_batch_outputs

    plt = _require_matplotlib()
    fig = plot_batch_outputs(res, net, max_rows=max_rows)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


_COMMANDS.append(_add_simulate)


# ---------------------------------------------------------------------------------
# jaxcrn compile / verify / export


def _load_model_or_fail(path: str):
    from ._nn import load_model

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file.")
    try:
        return load_model(path)
    except (ValueError, KeyError, OSError) as e:
        raise CLIError(f"{path}: {e}") from None


def _counts_rows(counts: dict) -> list[list]:
    keys = [
        ("species", "species"),
        ("reactions", "reactions (all)"),
        ("bimolecular", "bimolecular"),
        ("unimolecular", "unimolecular"),
        ("max_product_stoichiometry", "largest product stoichiometry"),
    ]
    return [[label] + [counts[c][k] for c in counts] for k, label in keys]


def _add_compile(sub) -> None:
    p = sub.add_parser(
        "compile",
        help="compile a trained network (.npz) to a CRN (.crn), Algorithm 1 (+2)",
        description=(
            "Compile a binary/ternary ReLU network to a rate-independent CRN "
            "(Algorithm 1 of Vasic et al. 2020) and, with --reduce, remove its "
            "unimolecular reactions (Algorithm 2). Prints the reaction counts."
        ),
    )
    p.add_argument("model", help="model .npz (W0, b0, W1, b1, ...)")
    p.add_argument("-o", "--output", required=True, metavar="NET.crn")
    p.add_argument("--reduce", action="store_true", help="apply Algorithm 2")
    p.add_argument(
        "--keep-inputs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --reduce: keep the input layer's reactions (default)",
    )
    p.add_argument("--sbml", metavar="OUT.xml", help="also write the CRN as SBML")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=_cmd_compile)


def _cmd_compile(args) -> int:
    from ._crn import save_crn
    from ._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn
    from ._sbml import save_sbml

    _check_output_path(args.output, args.force)
    _check_output_path(args.sbml, args.force)
    model = _load_model_or_fail(args.model)
    full = nn_to_crn(model)
    crns = {"full": full}
    if args.reduce:
        try:
            crns["reduced"] = reduce_crn(full, keep_inputs=args.keep_inputs)
        except ValueError as e:
            raise CLIError(str(e)) from None
    out = crns["reduced" if args.reduce else "full"]
    save_crn(out, args.output, overwrite=args.force)
    if args.sbml:
        save_sbml(out, args.sbml, overwrite=args.force)
    counts = {k: count_reactions(c).as_dict() for k, c in crns.items()}
    print(format_table(["", *counts], _counts_rows(counts)))
    check = is_noncompetitive(out)
    print(
        "\nnon-competitive: "
        + ("yes (rate-independent)" if check else f"NO: {check.reason}")
    )
    print(f"wrote {args.output}" + (f" and {args.sbml}" if args.sbml else ""))
    return 0


def _add_verify(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check that the compiled CRN computes the network on a dataset",
        description=(
            "Compile the model (full and reduced CRN), simulate a dataset split "
            "through both, and compare with the network's forward pass: argmax "
            "agreement, max |CRN - NN|, convergence. With --rates K, also re-simulate "
            "under K sets of random rate constants (log-uniform in [0.1, 10])."
        ),
    )
    p.add_argument("model", help="model .npz")
    p.add_argument("dataset", choices=("iris", "virus", "mnist14"))
    p.add_argument("--split", choices=("train", "valid", "test"), default="test")
    p.add_argument("--limit", type=int, metavar="N", help="first N examples only")
    p.add_argument(
        "--rates",
        type=int,
        default=0,
        metavar="K",
        help="random rate sets to try (default 0)",
    )
    p.add_argument("--crn", choices=("both", "full", "reduced"), default="both")
    p.add_argument("--data", metavar="DIR", help="data folder (mnist14)")
    p.add_argument("--json", metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--force", action="store_true", help="overwrite --json output")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rates")
    p.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="samples integrated side by side (default: 64 on a CPU, 16384 on a GPU)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_solver_options(p)
    p.set_defaults(func=_cmd_verify)


def _load_split(name: str, split: str, data: str | None):
    from . import datasets

    try:
        return datasets.load(name, data).split(split)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def _cmd_verify(args) -> int:
    _check_solver_options(args)
    _check_output_path(args.json, args.force)
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be >= 1, got {args.limit}.")
    if args.rates < 0:
        raise CLIError(f"--rates must be >= 0, got {args.rates}.")
    _setup_jax(args)
    import numpy as np

    from ._nn import accuracy
    from ._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn
    from ._verify import verify

    model = _load_model_or_fail(args.model)
    data = _load_split(args.dataset, args.split, args.data)
    x, y = data.x, data.y
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    if x.shape[1] != model.layer_sizes[0]:
        raise CLIError(
            f"{args.model} expects {model.layer_sizes[0]} inputs but {args.dataset} "
            f"has {x.shape[1]} features."
        )
    full = nn_to_crn(model)
    variants = {}
    if args.crn in ("both", "full"):
        variants["full"] = full
    if args.crn in ("both", "reduced"):
        variants["reduced"] = reduce_crn(full)
    kw = dict(
        solver=_solver(args.solver),
        max_steps=args.max_steps,
        stop_when_steady=args.steady,
        steady_tol=args.steady_tol,
        lanes=args.lanes,
        chunk_size=args.chunk_size,
    )
    nn_acc = float(accuracy(model, x, y))
    report = {
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "layers": list(model.layer_sizes),
        "n_examples": int(len(x)),
        "nn_accuracy": nn_acc,
        "t1": args.t1,
        "rtol": args.rtol,
        "atol": args.atol,
        "crn": {},
    }
    rows = []
    all_ok = True
    for name, crn in variants.items():
        rep = verify(
            model,
            crn,
            x,
            t1=args.t1,
            rate_samples=args.rates,
            seed=args.seed,
            rtol=args.rtol,
            atol=args.atol,
            progress=not args.quiet,
            **kw,
        )
        pred = np.argmax(rep.crn_outputs, axis=1)
        crn_acc = float(np.mean(pred == y))
        d = rep.as_dict()
        d["crn_accuracy"] = crn_acc
        d["counts"] = count_reactions(crn).as_dict()
        d["noncompetitive"] = bool(is_noncompetitive(crn))
        report["crn"][name] = d
        conv = d["convergence"][f"eps_{rep.eps:g}"]
        rows.append(
            [
                name,
                f"{rep.agreement}/{rep.n}",
                crn_acc,
                rep.max_abs_error,
                "-",
                f"{int(rep.converged.sum())}/{rep.n}",
                conv["median"] if conv["median"] is not None else float("inf"),
                f"{args.t1:g}",
                rep.wall_s,
            ]
        )
        for k, rs in enumerate(rep.rate_samples):
            rows.append(
                [
                    f"  random rates #{k + 1}",
                    f"{rs.agreement}/{rep.n}",
                    "-",
                    rs.max_abs_error,
                    rs.max_change,
                    f"{rs.ok}/{rep.n} ok",
                    "-",
                    f"{rs.t1:.4g}",
                    "-",
                ]
            )
            all_ok &= rs.agreement == rep.n
        all_ok &= rep.agreement == rep.n
    print(
        f"{args.dataset} {args.split}: {len(x)} examples, network "
        f"{'-'.join(map(str, model.layer_sizes))}, NN accuracy {nn_acc:.4f}, "
        f"t1 = {args.t1:g}"
    )
    header = [
        "CRN",
        "agree",
        "accuracy",
        "max|CRN-NN|",
        "max change",
        "steady",
        "t_eps(med)",
        "t1",
        "wall s",
    ]
    print(format_table(header, rows, digits=4))
    if args.rates:
        print(
            "random rates: log-uniform in [0.1, 10], simulated to t1/min(rate); "
            "'max change' is the largest output difference from rates 1."
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0 if all_ok else 1


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a .crn file to SBML",
        description="Write a CRN as SBML Level 3 (mass action, one compartment).",
    )
    p.add_argument("crn", help="the .crn file")
    p.add_argument("--sbml", required=True, metavar="OUT.xml")
    p.add_argument("--force", action="store_true", help="overwrite OUT.xml")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from ._sbml import save_sbml

    crn = _load_crn_or_fail(args.crn)
    _check_output_path(args.sbml, args.force)
    save_sbml(crn, args.sbml, overwrite=args.force)
    print(
        f"wrote {args.sbml} ({len(crn.species)} species, {len(crn.reactions)} "
        "reactions)"
    )
    return 0


_COMMANDS.extend([_add_compile, _add_verify, _add_export])


# ---------------------------------------------------------------------------------
# jaxcrn demo / reproduce


def _fresh_path(path: str, force: bool) -> str:
    """`path`, or with --force the same; otherwise the first `stem-N.ext` that does
    not exist yet (the user's files are never overwritten)."""
    if force or not os.path.exists(path):
        return path
    stem, ext = os.path.splitext(path)
    k = 2
    while os.path.exists(f"{stem}-{k}{ext}"):
        k += 1
    return f"{stem}-{k}{ext}"


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train IRIS 4-8-3, compile it to chemistry, check all 150 examples",
        description=(
            "Train the IRIS 4-8-3 binary-weight network (a few seconds; or load the "
            "shipped one with --no-train), compile it to a CRN (Algorithm 1) and "
            "reduce it (Algorithm 2), simulate all 150 examples through both CRNs "
            "in one batched call each, print the agreement table and write "
            "Figure 2 (output traces of one example, full vs reduced CRN)."
        ),
    )
    p.add_argument("--no-train", action="store_true", help="use the shipped model")
    p.add_argument("--out", default="demo", help="output folder (default demo/)")
    p.add_argument("--t1", type=float, default=200.0, help="simulated time")
    p.add_argument("--force", action="store_true", help="overwrite the figure")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_demo)


def _shipped_iris_model() -> str:
    from importlib import resources

    return str(resources.files("jaxcrn") / "data" / "iris_4-8-3.npz")


def _cmd_demo(args) -> int:
    if not (args.t1 > 0 and math.isfinite(args.t1)):
        raise CLIError(f"--t1 must be a positive number, got {args.t1}.")
    _setup_jax(args)
    import time

    import jax.random as jr
    import numpy as np

    from . import _nn, datasets
    from ._reproduce import run_dataset

    start = time.perf_counter()
    data = datasets.iris()
    if args.no_train:
        model = _nn.load_model(_shipped_iris_model())
        print("IRIS 4-8-3 binary network: loaded the shipped model")
    else:
        hidden, config = _nn.preset("iris")
        model = _nn.init_model((4, *hidden, 3), key=jr.PRNGKey(config.seed))
        t = time.perf_counter()
        model, _ = _nn.train(model, data, config, quiet=True)
        print(
            f"IRIS 4-8-3 binary network: trained in {time.perf_counter() - t:.1f} s "
            f"({config.epochs} epochs x {config.restarts} runs)"
        )
    x, y = data.test.x, data.test.y
    report, variants = run_dataset(
        "iris", model, x, y, t1=args.t1, progress=not args.quiet
    )
    counts = {k: report["counts"][k] for k in ("full", "reduced")}
    print(
        f"network accuracy on all 150 examples: {100 * report['nn_accuracy']:.2f}% "
        "(paper: 94%)\n"
    )
    rows = []
    for k in ("full", "reduced"):
        conv = report["convergence"][k]
        med = conv["eps_0.001"]["median"]
        rows.append(
            [
                f"{k} CRN",
                counts[k]["reactions"],
                counts[k]["bimolecular"],
                counts[k]["species"],
                f"{report['agreement'][k]}/{report['n_simulated'][k]}",
                f"{100 * report['crn_accuracy'][k]:.2f}%",
                report["max_abs_error"][k],
                med if med is not None else float("inf"),
                report["wall_s_variant"][k],
            ]
        )
    print(
        format_table(
            [
                "",
                "reactions",
                "bimolecular",
                "species",
                "agree with NN",
                "accuracy",
                "max|CRN-NN|",
                "t_eps median",
                "wall s",
            ],
            rows,
            digits=3,
        )
    )
    print(
        f"\n(paper: 40 reactions, 16 after Algorithm 2; agreement 150/150. "
        f"t1 = {args.t1:g}, t_eps: time until every output is within 1e-3 of "
        "its final value)"
    )
    ok = all(report["agreement"][k] == report["n_simulated"][k] for k in counts)
    try:
        import matplotlib

        from ._plot import figure_full_vs_reduced

        matplotlib.use("Agg")
    except ImportError:
        print(
            "matplotlib is not installed: skipping the figure "
            "(pip install 'jaxcrn[plot]')."
        )
        return 0 if ok else 1
    os.makedirs(args.out, exist_ok=True)
    path = _fresh_path(os.path.join(args.out, "iris_traces.png"), args.force)
    idx = int(np.flatnonzero(y == 1)[0]) if (y == 1).any() else 0
    full, red = variants["full"], variants["reduced"]
    fig = figure_full_vs_reduced(
        full.grid_ts,
        full.grid[idx],
        red.grid[idx],
        class_names=list(data.class_names),
        nn_output=None,
        title=f"IRIS example {idx} ({data.class_names[y[idx]]}): outputs "
        "y_i(t) = [Y_i+] - [Y_i-]",
        t_max=min(args.t1, 40.0),
    )
    fig.savefig(path, dpi=130, bbox_inches="tight")
    print(f"wrote {path}  ({time.perf_counter() - start:.0f} s in all)")
    return 0 if ok else 1


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's tables and figures (iris, virus, mnist14)",
        description=(
            "For each dataset: load the trained model (experiments/models/NAME.npz) "
            "or train it (--train), compile and reduce it, simulate the evaluation "
            "set through both CRNs, and write results/NAME.json, results/table.md "
            "and the figures in results/figures/ (PNG and PDF)."
        ),
    )
    p.add_argument("dataset", choices=("iris", "virus", "mnist14", "all"))
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument(
        "--models",
        default=os.path.join("experiments", "models"),
        help="folder of trained models NAME.npz",
    )
    p.add_argument("--train", action="store_true", help="train instead of loading")
    p.add_argument("--data", metavar="DIR", help="data folder (mnist14)")
    p.add_argument(
        "--limit", type=int, metavar="N", help="evaluate only the first N test examples"
    )
    p.add_argument(
        "--full-limit",
        type=int,
        metavar="N",
        help="simulate at most N examples through the full CRN "
        "(default: 1000 for mnist14, all otherwise)",
    )
    p.add_argument(
        "--t1", type=float, help="simulated time (default: iris/virus 200, mnist14 50)"
    )
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-9)
    p.add_argument(
        "--solver",
        choices=["auto", "rodas5p", "tsit5", "dopri5", "kvaerno5"],
        default="auto",
        help="ODE solver (default auto, see `jaxcrn simulate --help`)",
    )
    p.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="samples integrated side by side (default: 64 on a CPU, 16384 on a GPU)",
    )
    p.add_argument("--force", action="store_true", help="overwrite results")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args) -> int:
    _setup_jax(args)
    import glob
    import time

    import jax.random as jr

    from . import _nn, datasets
    from ._reproduce import DEFAULT_T1, markdown_table, run_dataset, write_json

    names = ["iris", "virus", "mnist14"] if args.dataset == "all" else [args.dataset]
    for name in names:
        path = os.path.join(args.out, f"{name}.json")
        if os.path.exists(path) and not args.force:
            raise CLIError(f"{path} exists; pass --force to overwrite it.")
    all_ok = True
    for name in names:
        start = time.perf_counter()
        data = _load_split(name, "test", args.data) if name != "iris" else None
        ds = (
            datasets.load(name, args.data)
            if name == "mnist14"
            else (datasets.iris() if name == "iris" else datasets.virus())
        )
        split = ds.test
        del data
        if args.train:
            hidden, config = _nn.preset(name)
            model = _nn.init_model(
                (ds.n_features, *hidden, ds.n_classes), key=jr.PRNGKey(config.seed)
            )
            model, _ = _nn.train(model, ds, config, quiet=args.quiet)
        else:
            mpath = os.path.join(args.models, f"{name}.npz")
            if not os.path.exists(mpath):
                raise CLIError(
                    f"{mpath} not found: run from the repository root, pass "
                    "--models DIR, or --train."
                )
            model = _load_model_or_fail(mpath)
        x, y = split.x, split.y
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        full_limit = args.full_limit
        if full_limit is None and name == "mnist14":
            full_limit = 1000
        limits = {} if full_limit is None else {"full": full_limit}
        t1 = args.t1 if args.t1 is not None else DEFAULT_T1[name]
        print(f"== {name}: {len(x)} test examples, t1 = {t1:g}", flush=True)
        report, variants = run_dataset(
            name,
            model,
            x,
            y,
            t1=t1,
            limits=limits,
            progress=not args.quiet,
            rtol=args.rtol,
            atol=args.atol,
            lanes=args.lanes,
            solver=_solver(args.solver),
        )
        report["class_names"] = list(ds.class_names)
        report["wall_s"] = time.perf_counter() - start
        write_json(os.path.join(args.out, f"{name}.json"), report, force=True)
        for k in ("full", "reduced"):
            n = report["n_simulated"][k]
            print(
                f"  {k:8s} agreement {report['agreement'][k]}/{n}, "
                f"max|CRN-NN| {report['max_abs_error'][k]:.3g}, "
                f"wall {report['wall_s_variant'][k]:.1f} s"
            )
            all_ok &= report["agreement"][k] == n
        if not args.no_figures:
            _reproduce_figures(name, report, variants, ds, x, y, args.out)
    reports = []
    for p in sorted(glob.glob(os.path.join(args.out, "*.json"))):
        with open(p) as f:
            r = json.load(f)
        if isinstance(r, dict) and "agreement" in r and "counts" in r:
            reports.append(r)
    order = {"iris": 0, "virus": 1, "mnist14": 2}
    reports.sort(key=lambda r: order.get(r["dataset"], 9))
    table = markdown_table(reports)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    print(f"wrote {os.path.join(args.out, 'table.md')}")
    return 0 if all_ok else 1


def _reproduce_figures(name, report, variants, ds, x, y, out) -> None:
    import numpy as np

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ._plot import (
            figure_convergence_hist,
            figure_digit_traces,
            figure_full_vs_reduced,
            figure_misclassified,
            save_figure,
        )
    except ImportError:
        print("matplotlib is not installed: no figures (pip install 'jaxcrn[plot]').")
        return
    figdir = os.path.join(out, "figures")
    full, red = variants["full"], variants["reduced"]
    names = list(ds.class_names)
    t_max = min(report["t1"], 40.0)
    written = []
    if name == "iris":
        idx = int(np.flatnonzero(y == 1)[0])
        fig = figure_full_vs_reduced(
            full.grid_ts,
            full.grid[idx],
            red.grid[idx],
            class_names=names,
            title=f"Figure 2: IRIS example {idx} ({names[y[idx]]})",
            t_max=t_max,
        )
        written += save_figure(fig, os.path.join(figdir, "fig2_iris_traces"))
        plt.close(fig)
    if name == "mnist14":
        idx = 0
        pred = int(np.argmax(red.outputs[idx]))
        fig = figure_digit_traces(
            x[idx],
            red.grid_ts,
            red.grid[idx],
            predicted=pred,
            true=int(y[idx]),
            t_max=t_max,
            title="Figure 3: MNIST-14 test image 0, reduced CRN",
        )
        written += save_figure(fig, os.path.join(figdir, "fig3_mnist_digit"))
        plt.close(fig)
    if name == "virus":
        pred = red.outputs.argmax(1)
        wrong = np.flatnonzero(pred != y[: len(pred)])
        if wrong.size:
            idx = int(wrong[0])
            fig = figure_misclassified(
                red.grid_ts,
                red.grid[idx],
                true=int(y[idx]),
                predicted=int(pred[idx]),
                class_names=names,
                t_max=t_max,
                title=f"Figure 4: virus test example {idx}: true {names[y[idx]]}, "
                f"predicted {names[pred[idx]]} (reduced CRN)",
            )
            written += save_figure(
                fig, os.path.join(figdir, "fig4_virus_misclassified")
            )
            plt.close(fig)
    fig = figure_convergence_hist(
        {
            k: {"t_eps": v.t_eps, "t_rel": v.t_rel, "t_argmax": v.t_argmax}
            for k, v in variants.items()
        },
        dataset=name,
        eps=report["eps"],
    )
    written += save_figure(fig, os.path.join(figdir, f"convergence_{name}"))
    plt.close(fig)
    print("  figures: " + ", ".join(written))


_COMMANDS.extend([_add_demo, _add_reproduce])


# --- jaxcrn train -------------------------------------------------------------------


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a binary-weight network on iris, virus or mnist14",
        description=(
            "Train a BinaryConnect MLP (binary or ternary weights, ReLU, no batch "
            "norm) and save it as .npz (W0, b0, W1, b1, ... plus JSON metadata). "
            "Options left out take the dataset's preset, which reaches the paper's "
            "accuracy. Prints the final train/valid/test accuracy."
        ),
    )
    p.add_argument("dataset", choices=("iris", "virus", "mnist14"))
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        metavar="N",
        help="hidden widths (iris: 8, virus: 32, mnist14: 512 512)",
    )
    p.add_argument("--quant", choices=("binary", "ternary"), default="binary")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.15,
        help="ternary zero threshold in (0, 1] (default 0.15)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr-start", type=float)
    p.add_argument("--lr-end", type=float)
    p.add_argument("--batch", type=int, help="mini-batch size")
    p.add_argument("--dropout-in", type=float)
    p.add_argument("--dropout-hidden", type=float)
    p.add_argument("--restarts", type=int, help="train N times, keep the best")
    p.add_argument(
        "--loss-scale",
        type=float,
        help="divide the outputs by this inside the hinge loss (1 = paper)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data",
        metavar="DIR",
        help="data folder (mnist14: the IDX files, default $JAXCRN_DATA; virus: "
        "re-derive from the raw GSE73072 files)",
    )
    p.add_argument(
        "--test-centering",
        choices=("test", "train"),
        default="test",
        help="mnist14: centre test images by the test mean (paper) or train mean",
    )
    p.add_argument("-o", "--output", metavar="MODEL.npz", help="where to save")
    p.add_argument("--checkpoint", metavar="FILE", help="also save latent weights")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    import dataclasses
    import os
    import time

    import jax.random as jr

    from . import _nn, datasets

    for name in ("output", "checkpoint"):
        path = getattr(args, name)
        if path is None:
            continue
        if os.path.exists(path) and not args.force:
            raise CLIError(f"{path} exists; pass --force to overwrite it.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CLIError(f"cannot write {path}: folder {folder} does not exist.")
    if args.test_centering != "test" and args.dataset != "mnist14":
        raise CLIError("--test-centering only applies to mnist14.")
    hidden, config = _nn.preset(args.dataset, args.quant)
    overrides = {
        "epochs": args.epochs,
        "lr_start": args.lr_start,
        "lr_end": args.lr_end,
        "batch_size": args.batch,
        "dropout_in": args.dropout_in,
        "dropout_hidden": args.dropout_hidden,
        "restarts": args.restarts,
        "loss_scale": args.loss_scale,
    }
    try:
        config = dataclasses.replace(
            config,
            seed=args.seed,
            **{k: v for k, v in overrides.items() if v is not None},
        )
        if args.hidden is not None:
            if not args.hidden or min(args.hidden) < 1:
                raise ValueError(f"--hidden widths must be >= 1, got {args.hidden}.")
            hidden = tuple(args.hidden)
        if args.dataset == "mnist14":
            data = datasets.mnist14(args.data, test_centering=args.test_centering)
        elif args.dataset == "virus":
            data = datasets.virus(args.data)
        else:
            if args.data is not None:
                raise ValueError("iris ships with jaxcrn; it takes no --data.")
            data = datasets.iris()
        if config.batch_size > len(data.train):
            raise ValueError(
                f"--batch {config.batch_size} exceeds the {len(data.train)} "
                "training samples."
            )
        sizes = (data.n_features, *hidden, data.n_classes)
        model = _nn.init_model(
            sizes,
            key=jr.PRNGKey(args.seed),
            quantization=args.quant,
            threshold=args.threshold,
        )
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e).replace("\n", " ")) from None
    arch = "-".join(map(str, sizes))
    if not args.quiet:
        print(
            f"training {args.dataset} {arch} ({args.quant}) for {config.epochs} epochs"
            + (f" x {config.restarts} runs" if config.restarts > 1 else ""),
            flush=True,
        )
    start = time.perf_counter()
    model, history = _nn.train(model, data, config, quiet=args.quiet)
    seconds = time.perf_counter() - start
    acc = {
        s: _nn.accuracy(model, data.split(s).x, data.split(s).y)
        for s in ("train", "valid", "test")
    }
    print(
        f"{args.dataset} {arch} {args.quant}: best epoch {history['best_epoch']}"
        f"/{config.epochs}, {seconds:.1f} s"
    )
    print(
        f"accuracy: train {100 * acc['train']:.2f}%  valid {100 * acc['valid']:.2f}%  "
        f"test {100 * acc['test']:.2f}%"
    )
    if args.output is not None:
        metadata = {
            "dataset": args.dataset,
            "class_names": list(data.class_names),
            "preprocessing": data.preprocessing,
            "accuracy": acc,
            "train_config": dataclasses.asdict(config),
            "best_epoch": history["best_epoch"],
            "train_seconds": seconds,
        }
        _nn.save_model(model, args.output, metadata=metadata, overwrite=args.force)
        print(f"saved {args.output}")
    if args.checkpoint is not None:
        _nn.save_checkpoint(model, args.checkpoint, overwrite=args.force)
        print(f"saved {args.checkpoint}")
    return 0


_COMMANDS.append(_add_train)
