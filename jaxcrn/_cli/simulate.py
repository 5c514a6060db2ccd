"""`jaxcrn simulate`: simulate a .crn file."""

import json
import sys

from ._common import (
    _CSV_NUMBER,
    CLIError,
    add_solver_options,
    check_positive,
    check_solver_options,
    claim_outputs,
    clip_concentrations,
    command,
    figure_writer,
    fmt,
    format_table,
    json_num,
    load_crn_or_fail,
    plot_target,
    read_inputs_csv,
    report_failures,
    require_matplotlib,
    say,
    setup_jax,
    solver,
    write_files,
)


def add(sub) -> None:
    p = command(
        sub,
        "simulate",
        help="simulate a .crn file and print final concentrations or outputs",
        description="""
            Simulate a CRN under mass-action kinetics from t = 0 to --t1.

            Without --inputs: the initial and final concentration of every species,
            the outputs, and from when the state was steady (max|dy/dt| <=
            --steady-tol). Final concentrations within the solver's tolerance of 0
            (|y| <= atol + rtol * max|y|) are printed as 0.

            With --inputs: one row per input vector (one line of the CSV), with the
            outputs, their argmax, the status, whether the state was steady at t1
            ('steady') and the settling time ('t_settle': from when every output
            stays within --eps of its final value).

            Exit status 0 when every sample succeeded, 1 when one failed (stderr says
            how many and why), 2 for bad input.
        """,
        examples="""
            jaxcrn simulate examples/reversible.crn                 # concentrations
            jaxcrn simulate examples/reversible.crn --set B=3 --t1 80 --json
            jaxcrn simulate examples/relu.crn --inputs examples/relu_inputs.csv --plot relu.png
        """,  # noqa: E501
    )
    p.add_argument("crn", help="the .crn file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SPECIES=VALUE",
        help="override the initial concentration of a species (repeatable; "
        "default: the file's init values, 0 for the others)",
    )
    p.add_argument(
        "--inputs",
        metavar="CSV",
        help="input vectors, one per line: comma-separated numbers in the order of "
        "the file's input statements, or under a header line naming the inputs "
        "(x0,x1,...) in any order; blank lines are skipped (default: no inputs, "
        "simulate the initial state once)",
    )
    p.add_argument(
        "--preprocess",
        action="store_true",
        help="with --inputs: apply the preprocessing recorded in the .crn file "
        "(x = (raw - mean) / std per input, from the model it was compiled from) "
        "to the CSV values (default: use the values as given; a warning says when "
        "they do not look preprocessed)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout instead of tables (messages go to "
        "stderr; default: tables)",
    )
    p.add_argument(
        "--eps",
        type=float,
        default=1e-3,
        help="with --inputs: t_settle is the time from which every output stays "
        "within EPS of its final value (default: 1e-3; resolution t1/200)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="plot the trajectories (with --inputs, the outputs of the first 8 "
        "rows) to FILE; the extension gives the format (.png, .pdf, .svg, ...; .png "
        "is added when there is none; default: no plot)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite the --plot file if it exists"
    )
    add_solver_options(p)
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
        if not _CSV_NUMBER.fullmatch(value):
            raise CLIError(f"--set {item!r}: {value!r} is not a number.")
        v = float(value)
        if not (v >= 0 and v < float("inf")):
            raise CLIError(f"--set {item!r}: concentrations must be finite and >= 0.")
        out[name] = v
    return out


def _preprocess(args, crn, x, lines):
    """Apply (or check the need for) the preprocessing recorded in the file."""
    import numpy as np

    signals = crn.inputs
    recorded = any(s.preprocessed for s in signals)
    if args.preprocess and not recorded:
        raise CLIError(
            f"--preprocess: {args.crn} records no preprocessing for its inputs (an "
            "input statement with [mean=..., std=...]); give the inputs as the "
            "network expects them, without --preprocess."
        )
    mean = np.array([s.mean for s in signals])
    std = np.array([s.std for s in signals])
    z = (x - mean) / std
    if recorded:
        raw_size = float(np.mean(np.abs(x)))
        std_size = float(np.mean(np.abs(z)))
        if not args.preprocess and std_size < 0.5 * raw_size:
            print(
                f"jaxcrn simulate: warning: {args.inputs} does not look preprocessed: "
                f"{args.crn} records that its network takes (raw - mean) / std "
                f"(mean |value| {raw_size:.3g} as given, {std_size:.3g} after); pass "
                "--preprocess to apply it",
                file=sys.stderr,
            )
        if args.preprocess and raw_size < 0.5 * std_size:
            print(
                f"jaxcrn simulate: warning: {args.inputs} looks preprocessed already "
                f"(mean |value| {raw_size:.3g}, {std_size:.3g} after --preprocess); "
                "leave out --preprocess if these are the network's inputs",
                file=sys.stderr,
            )
    if args.preprocess:
        x = z
    for j, s in enumerate(signals):
        if s.neg is None:
            bad = np.flatnonzero(x[:, j] < 0)
            if bad.size:
                i = int(bad[0])
                raise CLIError(
                    f"{args.inputs}, line {lines[i]}: input {s.name} = {x[i, j]:g} "
                    f"is negative, but {s.name} sets one species ({s.pos}), whose "
                    "concentration cannot be negative."
                )
    return x


def run(args) -> int:
    check_solver_options(args)
    check_positive(args, "eps")
    crn = load_crn_or_fail(args.crn)
    sets = _parse_sets(args.set, crn)
    if args.inputs and not crn.inputs:
        raise CLIError(f"{args.crn} declares no inputs, but --inputs was given.")
    if args.preprocess and not args.inputs:
        raise CLIError("--preprocess applies to --inputs; give --inputs CSV.")
    plot = plot_target(args.plot)
    claim_outputs(args.force, plot[0] if plot else None)
    x = lines = None
    if args.inputs:
        x, lines = read_inputs_csv(args.inputs, [s.name for s in crn.inputs])
        x = _preprocess(args, crn, x, lines)
    setup_jax(args)
    import jax.numpy as jnp
    import numpy as np

    from .._batch import simulate_batch
    from .._network import compile_crn
    from .._simulate import Status, simulate

    net = compile_crn(crn)
    if sets:
        idx = jnp.asarray([net.index(s) for s in sets])
        net = _with_init(net, idx, jnp.asarray(list(sets.values()), net.y_init.dtype))
    kw = dict(
        solver=solver(args.solver),
        rtol=args.rtol,
        atol=args.atol,
        max_steps=args.max_steps,
        stop_when_steady=args.steady,
        steady_tol=args.steady_tol,
    )
    if x is not None:
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
        status = np.asarray(res.status)
        _print_batch(args, net, x, lines, res)
        if plot:
            from .. import plot as plots

            axes = plots.batch_outputs(res, max_samples=8)
            _write_plot(args, plot, axes[0].figure)
        where = [f"{args.inputs} line {n}" for n in lines]
        report_failures("simulate", status, where)
        return 0 if bool(np.all(status == Status.OK)) else 1
    y0 = net.y_init
    res = simulate(net, y0, jnp.asarray(args.t1, y0.dtype), saveat=201, **kw)
    _print_single(args, net, np.asarray(y0), res)
    if plot:
        from .. import plot as plots

        _write_plot(args, plot, plots.trajectories(res).figure)
    report_failures("simulate", res.status)
    return 0 if int(res.status) == Status.OK else 1


def _print_single(args, net, y0, res) -> None:
    import numpy as np

    from .._simulate import Status

    status = Status(int(res.status))
    final = clip_concentrations(res.y_final, atol=args.atol, rtol=args.rtol)
    steady = bool(res.converged)
    t_steady = float(res.t_converged)
    outputs = np.asarray(res.outputs_final, dtype=np.float64)
    if args.json:
        obj = {
            "t1": args.t1,
            "status": status.name.lower(),
            "final": {s: json_num(v) for s, v in zip(net.species, final, strict=True)},
            "outputs": {
                n: json_num(v) for n, v in zip(net.output_names, outputs, strict=True)
            },
            "steady_state": steady,
            "t_steady": json_num(t_steady),
            "solver_steps": int(res.num_steps),
        }
        print(json.dumps(obj, allow_nan=False))
        return
    rows = [
        [s, float(a), float(b)] for s, a, b in zip(net.species, y0, final, strict=True)
    ]
    print(format_table(["species", "initial", "final"], rows))
    for n, v in zip(net.output_names, outputs, strict=True):
        print(f"output {n} = {fmt(float(v))}")
    if status != Status.OK:
        what = f"failed ({status.name.lower()}, see stderr)"
    elif steady:
        what = f"steady state from t = {fmt(t_steady, 4)}"
    else:
        what = (
            f"not at a steady state by t1 (max|dy/dt| > {args.steady_tol:g}); try a "
            "larger --t1"
        )
    print(f"\nt1 = {args.t1:g}: {what}; {int(res.num_steps)} solver steps")


def _print_batch(args, net, x, lines, res) -> None:
    import numpy as np

    from .._simulate import Status

    outs = np.asarray(res.outputs_final, dtype=np.float64)
    status = np.asarray(res.status)
    steady = np.asarray(res.converged)
    t_settle = _output_settling_times(res, args.eps)
    rows_json, rows = [], []
    for i in range(x.shape[0]):
        ok = int(status[i]) == Status.OK
        am = int(np.argmax(outs[i])) if ok and outs.shape[1] else None
        name = Status(int(status[i])).name.lower()
        row = {
            "line": lines[i],
            "input": [float(v) for v in x[i]],
            "outputs": [json_num(v) for v in outs[i]],
            "argmax": am,
            "status": name,
            "steady_state": bool(steady[i]),
            "settling_time": json_num(t_settle[i]),
        }
        rows_json.append(row)
        rows.append(
            [lines[i]]
            + [float(v) for v in x[i]]
            + [float(v) for v in outs[i]]
            + [
                am if am is not None else "-",
                name,
                bool(steady[i]),
                float(t_settle[i]),
            ]
        )
    if args.json:
        obj = {
            "t1": args.t1,
            "eps": args.eps,
            "preprocessed": bool(args.preprocess),
            "input_names": list(net.input_names),
            "output_names": list(res.output_names),  # the order of each row's outputs
            "rows": rows_json,
        }
        print(json.dumps(obj, allow_nan=False))
        return
    header = (
        ["line"]
        + list(net.input_names)
        + list(net.output_names)
        + ["argmax", "status", "steady", "t_settle"]
    )
    print(format_table(header, rows))
    n = x.shape[0]
    steps = np.asarray(res.num_steps)
    print(
        f"\n{int((status == Status.OK).sum())}/{n} ok, {int(steady.sum())}/{n} steady "
        f"at the end (max|dy/dt| <= {args.steady_tol:g}); t_settle: from when every "
        f"output stays within {args.eps:g} of its final value; solver steps median "
        f"{np.median(steps):.0f}, max {int(steps.max())}; t1 = {args.t1:g}"
        + ("; inputs preprocessed ((raw - mean) / std)" if args.preprocess else "")
    )


def _write_plot(args, plot, fig) -> None:
    plt = require_matplotlib()
    path, fmt_ = plot
    try:
        write_files(
            {path: figure_writer(fig, fmt_, dpi=120, bbox_inches="tight")}, args.force
        )
    finally:
        plt.close(fig)
    say(f"wrote {path}", json_mode=args.json)


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
