"""`jaxcrn demo`: train IRIS 4-8-3, compile it, check all 150 examples."""

import os

from ._common import (
    CLIError,
    check_positive,
    claim_outputs,
    command,
    figure_writer,
    format_table,
    require_matplotlib,
    setup_jax,
    write_files,
)


def add(sub) -> None:
    p = command(
        sub,
        "demo",
        help="train IRIS 4-8-3, compile it to chemistry, check all 150 examples",
        description="""
            Train the IRIS 4-8-3 binary-weight network (a few seconds; or load the
            shipped one with --no-train), compile it to a CRN (Algorithm 1) and
            reduce it (Algorithm 2), simulate all 150 examples through both CRNs in
            one batched call each, print the agreement table and write Figure 2
            (the outputs of one example through the full and the reduced CRN) to
            OUT/iris_traces.png. An existing figure is never replaced without
            --force; nothing else is written.
        """,
        examples="""
            jaxcrn demo                      # writes demo/iris_traces.png
            jaxcrn demo --no-train --quiet   # the shipped model, no progress lines
            jaxcrn demo --out /tmp/demo --force
        """,
    )
    p.add_argument(
        "--no-train",
        action="store_true",
        help="use the model shipped with jaxcrn (default: train one)",
    )
    p.add_argument(
        "--out",
        default="demo",
        metavar="DIR",
        help="folder of the figure, created if needed (default: demo)",
    )
    p.add_argument(
        "--t1", type=float, default=200.0, help="simulated time (default: 200)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite OUT/iris_traces.png if it exists",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress lines (default: shown)"
    )
    p.set_defaults(func=run)


def _figure_path(args) -> str | None:
    """OUT/iris_traces.png, checked before anything runs (None: no matplotlib)."""
    try:
        require_matplotlib()
    except CLIError:
        return None
    path = os.path.join(args.out, "iris_traces.png")
    claim_outputs(args.force, path, make_parents=True)
    return path


def _shipped_iris_model() -> str:
    from importlib import resources

    return str(resources.files("jaxcrn") / "data" / "iris_4-8-3.npz")


def run(args) -> int:
    check_positive(args, "t1")
    path = _figure_path(args)
    setup_jax(args)
    import time

    import jax.random as jr
    import numpy as np

    from .. import _nn, datasets
    from .._reproduce import run_dataset

    start = time.perf_counter()
    data = datasets.iris()
    if args.no_train:
        model = _nn.load_model(_shipped_iris_model())
        print("IRIS 4-8-3 binary network: loaded the shipped model")
    else:
        hidden, config = _nn.preset("iris")
        model = _nn.init_model((4, *hidden, 3), key=jr.PRNGKey(config.seed))
        t = time.perf_counter()
        model, _ = _nn.train(model, data, config)
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
    if path is None:
        print(
            "matplotlib is not installed: skipping the figure "
            "(pip install 'jaxcrn[plot]')."
        )
        return 0 if ok else 1
    from .. import plot

    plt = require_matplotlib()
    idx = int(np.flatnonzero(y == 1)[0]) if (y == 1).any() else 0
    full, red = variants["full"], variants["reduced"]
    axes = plot.full_vs_reduced(
        full.grid_ts,
        full.grid[idx],
        red.grid[idx],
        class_names=list(data.class_names),
        nn_output=None,
        title=f"IRIS example {idx} ({data.class_names[y[idx]]}): outputs "
        "y_i(t) = [Y_i+] - [Y_i-]",
        t_max=min(args.t1, 40.0),
    )
    fig = axes[0].figure
    try:
        write_files(
            {path: figure_writer(fig, "png", dpi=130, bbox_inches="tight")},
            args.force,
            make_parents=True,
        )
    finally:
        plt.close(fig)
    print(f"wrote {path}  ({time.perf_counter() - start:.0f} s in all)")
    return 0 if ok else 1
