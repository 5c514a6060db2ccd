"""`jaxcrn simulate`: simulate a .crn file."""

import json
import sys

from ._common import (
    _CSV_NUMBER,
    CLIError,
    add_solver_options,
    add_store_options,
    check_positive,
    check_seed,
    check_solver_options,
    check_store,
    claim_outputs,
    clip_concentrations,
    command,
    figure_writer,
    fmt,
    format_table,
    json_num,
    load_crn_or_fail,
    plot_target,
    read_csv_rows,
    read_inputs_csv,
    report_failures,
    require_matplotlib,
    say,
    setup_jax,
    solver,
    store_error,
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

            Rate ensembles: --rates-csv (one rate set per line, under a header
            naming the reactions) or --scan (random sets, a grid over one or two
            rate constants, or every reaction times/divided by a factor) simulate
            one row per rate set, all in one batch; with --inputs too, every input
            vector under every rate set. Rows carry the rate set's number
            ('rate_set', from 0); --json lists the sets ('rate_sets').

            Exit status 0 when every sample succeeded, 1 when one failed (stderr says
            how many and why), 2 for bad input.
        """,
        examples="""
            jaxcrn simulate examples/reversible.crn --set B=3 --t1 80 --json
            jaxcrn simulate examples/relu.crn --inputs examples/relu_inputs.csv --scan random:100 --store runs/relu --resume
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
    g = p.add_argument_group("rate ensembles")
    rates = g.add_mutually_exclusive_group()
    rates.add_argument(
        "--rates-csv",
        metavar="CSV",
        help="rate sets, one per line, under a header line naming the reactions: "
        "as 'k3' or 'R3' (index from 0; the ids of `jaxcrn export --sbml`), as "
        "written in the file without the rate ('A + B -> C'), or by bare index "
        "('3') beside at least one such name (a first line of numbers alone reads "
        "as a rate set and is refused); reactions not named keep the file's rates "
        "(default: the file's rates)",
    )
    rates.add_argument(
        "--scan",
        metavar="SPEC",
        help="rate sets to simulate: 'random:N' (N sets, every rate log-uniform in "
        "[0.1, 10]), 'random:N:LOW:HIGH', 'random:N:xF' (every rate of the file "
        "times a log-uniform factor in [1/F, F]), 'grid:R=LOW:HIGH:N' (N "
        "log-spaced values of reaction R's rate; two such terms, comma-separated, "
        "make a grid), 'each:xF' (the file's rates, then every reaction's rate "
        "times F and divided by F, one at a time); reactions named as in "
        "--rates-csv (default: the file's rates)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of --scan random (default: 0)",
    )
    add_solver_options(p)
    add_store_options(p)
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
        if name in out:  # the last one would win without a word
            raise CLIError(
                f"--set {item!r}: {name} is already set to {out[name]:g}; set each "
                "species once."
            )
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
    check_seed(args)
    crn = load_crn_or_fail(args.crn)
    sets = _parse_sets(args.set, crn)
    if args.inputs and not crn.inputs:
        raise CLIError(f"{args.crn} declares no inputs, but --inputs was given.")
    if args.preprocess and not args.inputs:
        raise CLIError("--preprocess applies to --inputs; give --inputs CSV.")
    plot = plot_target(args.plot)
    claim_outputs(
        args.force,
        plot[0] if plot else None,
        reads=[args.crn, args.inputs, args.rates_csv],
    )
    check_store(args)
    x = lines = None
    if args.inputs:
        x, lines = read_inputs_csv(args.inputs, [s.name for s in crn.inputs])
        x = _preprocess(args, crn, x, lines)
    rate_sets = None
    if args.rates_csv:
        rate_sets, _ = read_rates_csv(args.rates_csv, crn)
    elif args.scan:
        rate_sets = parse_scan(args.scan, crn, args.seed)
    if args.store and x is None and rate_sets is None:
        raise CLIError(
            "--store applies to batches: give --inputs, --rates-csv or --scan."
        )
    if plot and rate_sets is not None and not crn.outputs:
        raise CLIError(
            f"--plot with rate sets draws the outputs, but {args.crn} declares none."
        )
    setup_jax(args)
    import jax.numpy as jnp
    import numpy as np

    from .._batch import simulate_batch
    from .._network import check_fits, compile_crn
    from .._simulate import Status

    try:
        net = compile_crn(crn)
        if sets:
            dtype = net.y_init.dtype
            for name, value in sets.items():
                check_fits("--set", value, dtype, lambda i, n=name: f"--set {n}")
    except ValueError as e:
        raise CLIError(f"{args.crn}: {e}") from None
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
    if x is not None or rate_sets is not None:
        batch = _Batch(x, lines, rate_sets)
        try:
            res = simulate_batch(
                net,
                batch.inputs(net),
                args.t1,
                rates=batch.rates,
                chunk_size=args.chunk_size,
                progress=not args.json,
                saveat=201 if net.n_outputs else None,
                keep_states=not net.n_outputs,
                store=args.store,
                resume=args.resume,
                **kw,
            )
        except (OSError, ValueError) as e:
            if args.store is not None:
                raise store_error(e) from None
            raise CLIError(
                f"{args.inputs or args.rates_csv or args.scan}: {e}"
            ) from None
        status = np.asarray(res.status)
        _print_batch(args, net, batch, res, crn)
        if plot:
            from .. import plot as plots

            axes = plots.batch_outputs(res, max_samples=8)
            _write_plot(args, plot, axes[0].figure)
        report_failures("simulate", status, batch.where(args))
        return 0 if bool(np.all(status == Status.OK)) else 1
    # one sample through the batch engine: its programs have no host callbacks, so
    # the compilation cache keeps them for the next command (diffrax's solve checks
    # its arguments through callbacks, and JAX does not store such programs)
    # (Rodas5P unless --solver says otherwise, as for one sample before)
    y0 = np.asarray(net.y_init)
    if args.solver == "auto":
        kw["solver"] = "rodas5p"
    # declared inputs not given are 0: the state is the file's init values
    zero = np.zeros((1, net.n_inputs)) if net.n_inputs else None
    res = simulate_batch(
        net, zero, args.t1, y0=y0[None], saveat=201, save="species", **kw
    )
    _print_single(args, net, y0, res)
    if plot:
        from .. import plot as plots

        _write_plot(args, plot, plots.trajectories(res).figure)
    report_failures("simulate", res.status)
    return 0 if int(res.status[0]) == Status.OK else 1


def _print_single(args, net, y0, res) -> None:
    import numpy as np

    from .._simulate import Status

    status = Status(int(res.status[0]))
    final = clip_concentrations(res.y_final[0], atol=args.atol, rtol=args.rtol)
    steady = bool(res.converged[0])
    t_steady = float(res.t_converged[0])
    outputs = np.asarray(res.outputs_final[0], dtype=np.float64)
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
            "solver_steps": int(res.num_steps[0]),
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
    print(f"\nt1 = {args.t1:g}: {what}; {int(res.num_steps[0])} solver steps")


class _Batch:
    """The rows of a batch: input vectors (lines of --inputs), rate sets, or every
    input under every rate set (row `k * n + i`: input `i`, rate set `k`)."""

    def __init__(self, x, lines, rate_sets):
        import numpy as np

        self.x, self.lines, self.rate_sets = x, lines, rate_sets
        self.n_inputs = 1 if x is None else x.shape[0]
        self.n_sets = 1 if rate_sets is None else rate_sets.shape[0]
        self.size = self.n_inputs * self.n_sets
        self.input_of = np.tile(np.arange(self.n_inputs), self.n_sets)
        self.set_of = np.repeat(np.arange(self.n_sets), self.n_inputs)
        self.rates = None
        if rate_sets is not None:
            self.rates = np.repeat(rate_sets, self.n_inputs, axis=0)

    def inputs(self, net):
        """The inputs of every row (zeros when only rate sets were given)."""
        import numpy as np

        if self.x is None:
            return np.zeros((1, net.n_inputs)) if net.n_inputs else None
        return np.tile(self.x, (self.n_sets, 1))

    def where(self, args) -> list[str]:
        out = []
        for r in range(self.size):
            parts = []
            if self.rate_sets is not None:
                parts.append(f"rate set {int(self.set_of[r])}")
            if self.x is not None:
                parts.append(f"{args.inputs} line {self.lines[int(self.input_of[r])]}")
            out.append(", ".join(parts))
        return out


def _print_batch(args, net, batch, res, crn) -> None:
    import numpy as np

    from .._simulate import Status

    outs = np.asarray(res.outputs_final, dtype=np.float64)
    status = np.asarray(res.status)
    steady = np.asarray(res.converged)
    species_rows = not net.n_outputs  # no outputs: show the final state instead
    if species_rows:
        finals = np.asarray(res.y_final, dtype=np.float64)
        t_settle = np.where(steady, np.asarray(res.t_converged), np.inf)
    else:
        t_settle = _output_settling_times(res, args.eps)
    has_sets = batch.rate_sets is not None
    has_inputs = batch.x is not None
    rows_json, rows = [], []
    for r in range(batch.size):
        i, k = int(batch.input_of[r]), int(batch.set_of[r])
        ok = int(status[r]) == Status.OK
        am = int(np.argmax(outs[r])) if ok and outs.shape[1] else None
        name = Status(int(status[r])).name.lower()
        row: dict = {}
        cells: list = []
        if has_sets:
            row["rate_set"] = k
            cells.append(k)
        if has_inputs:
            row["line"] = batch.lines[i]
            row["input"] = [float(v) for v in batch.x[i]]
            cells += [batch.lines[i]] + [float(v) for v in batch.x[i]]
        if species_rows:
            final = clip_concentrations(finals[r], atol=args.atol, rtol=args.rtol)
            row["final"] = [json_num(v) for v in final]
            cells += [float(v) for v in final]
        else:
            row["outputs"] = [json_num(v) for v in outs[r]]
            row["argmax"] = am
            cells += [float(v) for v in outs[r]] + [am if am is not None else "-"]
        row["status"] = name
        row["steady_state"] = bool(steady[r])
        row["settling_time"] = json_num(t_settle[r])
        rows_json.append(row)
        rows.append(cells + [name, bool(steady[r]), float(t_settle[r])])
    if args.json:
        obj: dict = {
            "t1": args.t1,
            "eps": args.eps,
            "preprocessed": bool(args.preprocess),
            "input_names": list(net.input_names),
            "output_names": list(res.output_names),  # the order of each row's outputs
        }
        if species_rows:
            obj["species"] = list(net.species)  # the order of each row's "final"
        if has_sets:
            obj["rates_from"] = args.rates_csv or f"--scan {args.scan}"
            obj["reactions"] = [r.text() for r in crn.reactions]
            obj["rate_sets"] = [[float(v) for v in s] for s in batch.rate_sets]
        obj["rows"] = rows_json
        print(json.dumps(obj, allow_nan=False))
        return
    header = (["rate_set"] if has_sets else []) + (
        ["line"] + list(net.input_names) if has_inputs else []
    )
    header += list(net.species) if species_rows else list(net.output_names) + ["argmax"]
    header += ["status", "steady", "t_steady" if species_rows else "t_settle"]
    print(format_table(header, rows))
    n = batch.size
    steps = np.asarray(res.num_steps)
    what = (
        "t_steady: from when max|dy/dt| <= --steady-tol held"
        if species_rows
        else f"t_settle: from when every output stays within {args.eps:g} of its "
        "final value"
    )
    print(
        f"\n{int((status == Status.OK).sum())}/{n} ok, {int(steady.sum())}/{n} steady "
        f"at the end (max|dy/dt| <= {args.steady_tol:g}); {what}; solver steps "
        f"median {np.median(steps):.0f}, max {int(steps.max())}; t1 = {args.t1:g}"
        + ("; inputs preprocessed ((raw - mean) / std)" if args.preprocess else "")
    )
    if has_sets:
        print(
            f"{batch.n_sets} rate sets from {args.rates_csv or '--scan ' + args.scan}"
            + (f", each with {batch.n_inputs} input vectors" if has_inputs else "")
            + " (--json lists them)"
        )


def read_rates_csv(path: str, crn):
    """Rate sets from a CSV: a header naming reactions, then one set per line.
    Returns `((sets, reactions) float64, line numbers)`."""
    import numpy as np

    from .. import scan

    rows = read_csv_rows(path)
    if not rows:
        raise CLIError(
            f"{path} has no rows; expected a header line naming reactions (e.g. "
            "0,1,k2 or 'A + B -> C') and then one rate set per line."
        )
    head_line, head = rows[0]
    cols: list[int] = []
    for cell in head:
        try:
            i = scan.reaction_index(crn, cell)
        except ValueError as e:
            hint = ""
            if _CSV_NUMBER.fullmatch(cell):
                hint = (
                    " (the first line must be a header naming the reactions; "
                    "indices are whole numbers from 0)"
                )
            raise CLIError(f"{path}, line {head_line}: {e}{hint}") from None
        if i in cols:
            raise CLIError(
                f"{path}, line {head_line}: reaction {i} ({cell!r}) is named twice."
            )
        cols.append(i)
    if all(_CSV_NUMBER.fullmatch(cell) for cell in head):
        # a file without a header would lose its first rate set, and the others
        # would land on the reactions that set's values name
        named = ",".join(f"k{i}" for i in cols)
        raise CLIError(
            f"{path}, line {head_line}: {','.join(head)!r} holds only numbers, so it "
            "reads as a rate set as well as a header; the first line must name the "
            f"reactions: write {named!r} for these indices (or 'R3', or the "
            "reaction as written in the file)."
        )
    if len(rows) == 1:
        raise CLIError(f"{path} has a header but no rate sets.")
    base = np.array([r.rate for r in crn.reactions], dtype=np.float64)
    out = np.repeat(base[None, :], len(rows) - 1, axis=0)
    lines = []
    for k, (lineno, row) in enumerate(rows[1:]):
        where = f"{path}, line {lineno}"
        if len(row) != len(cols):
            raise CLIError(
                f"{where}: {len(row)} values, but the header names {len(cols)} "
                "reactions."
            )
        for j, c in enumerate(row):
            if not _CSV_NUMBER.fullmatch(c):
                raise CLIError(f"{where}: {c[:40]!r} is not a number.")
            v = float(c) + 0.0  # -0 is 0
            if not (v >= 0 and v < float("inf")):
                raise CLIError(
                    f"{where}: the rate of reaction {cols[j]} is {c}; rate constants "
                    "must be finite and >= 0."
                )
            out[k, cols[j]] = v
        lines.append(lineno)
    return out, lines


def parse_scan(spec: str, crn, seed: int):
    """The rate sets of a --scan SPEC (see --help)."""
    import numpy as np

    from .. import scan

    kind, _, rest = spec.partition(":")
    usage = (
        "expected random:N, random:N:LOW:HIGH, random:N:xF, grid:R=LOW:HIGH:N[,"
        "R=LOW:HIGH:N] or each:xF"
    )

    def number(text, what):
        if not _CSV_NUMBER.fullmatch(text.strip()):
            raise CLIError(f"--scan {spec}: {what} {text!r} is not a number; {usage}.")
        return float(text)

    def count(text, what):
        t = text.strip()
        if not (t.isascii() and t.isdigit()) or int(t) < 1:
            raise CLIError(
                f"--scan {spec}: {what} {text!r} is not a positive whole number."
            )
        return int(t)

    def factor(text):
        t = text.strip()
        f = number(t[1:] if t[:1] in "xX" else t, "the factor")
        if not (f >= 1 and f < float("inf")):
            raise CLIError(f"--scan {spec}: the factor must be >= 1, got {t}.")
        return f

    try:
        if kind == "random":
            parts = rest.split(":") if rest else []
            if len(parts) == 1:
                return scan.log_uniform(crn, count(parts[0], "N"), seed=seed)
            if len(parts) == 2 and parts[1].strip()[:1] in "xX":
                n = count(parts[0], "N")
                return scan.log_uniform(crn, n, factor=factor(parts[1]), seed=seed)
            if len(parts) == 3:
                n = count(parts[0], "N")
                lo, hi = number(parts[1], "LOW"), number(parts[2], "HIGH")
                return scan.log_uniform(crn, n, lo, hi, seed=seed)
        elif kind == "grid" and rest:
            values = {}
            for term in rest.split(","):
                name, eq, rng = term.rpartition("=")
                pieces = rng.split(":")
                if not eq or not name.strip() or len(pieces) != 3:
                    raise CLIError(
                        f"--scan {spec}: {term!r} is not R=LOW:HIGH:N; {usage}."
                    )
                lo, hi = number(pieces[0], "LOW"), number(pieces[1], "HIGH")
                n = count(pieces[2], "N")
                key = name.strip()
                if lo <= 0 or hi <= 0 or lo > hi:
                    raise CLIError(f"--scan {spec}: {term!r} needs 0 < LOW <= HIGH.")
                if key in values:
                    raise CLIError(f"--scan {spec}: reaction {key!r} is named twice.")
                values[key] = np.geomspace(lo, hi, n)
            return scan.grid(crn, values)
        elif kind == "each" and rest:
            return scan.one_at_a_time(crn, factor(rest))
    except ValueError as e:
        raise CLIError(f"--scan {spec}: {e}") from None
    raise CLIError(f"--scan {spec}: {usage}.")


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
