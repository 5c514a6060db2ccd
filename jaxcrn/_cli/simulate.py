"""`jaxcrn simulate`: simulate a .crn file."""

import json
import math

from ._common import (
    CLIError,
    _add_solver_options,
    _check_output_path,
    _check_solver_options,
    _fmt,
    _json_num,
    _load_crn_or_fail,
    _require_matplotlib,
    _setup_jax,
    _solver,
    format_table,
    read_inputs_csv,
)


def add(sub) -> None:
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
    p.set_defaults(func=run)


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


def run(args) -> int:
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

    from .._compile import compile_crn
    from .._simulate import Status, simulate, simulate_batch

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

    from .._simulate import convergence_times

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


def _plot_species(path, res, net) -> None:
    from .._plot import plot_trajectories

    plt = _require_matplotlib()
    fig = plot_trajectories(res, net)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def _plot_outputs(path, res, net, max_rows: int) -> None:
    from .._plot import plot_batch_outputs

    plt = _require_matplotlib()
    fig = plot_batch_outputs(res, net, max_rows=max_rows)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
