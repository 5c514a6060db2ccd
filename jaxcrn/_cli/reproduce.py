"""`jaxcrn reproduce`: the paper's tables and figures."""

import json
import os

from .._files import to_json
from ._common import (
    SOLVERS,
    CLIError,
    add_store_options,
    check_model_fits,
    check_positive,
    check_rtol,
    check_store,
    claim_outputs,
    command,
    figure_writer,
    load_model_or_fail,
    require_matplotlib,
    setup_jax,
    solver,
    store_error,
    write_files,
)


# The figures of each dataset (a stem each, written as PNG and PDF).
FIGURES = {
    "iris": ["fig2_iris_traces", "convergence_iris"],
    "virus": ["fig4_virus_misclassified", "convergence_virus"],
    "mnist14": ["fig3_mnist_digit", "convergence_mnist14"],
}
FORMATS = ("png", "pdf")


def add(sub) -> None:
    p = command(
        sub,
        "reproduce",
        help="reproduce the paper's tables and figures (iris, virus, mnist14)",
        description="""
            For each dataset: load the trained model (MODELS/NAME.npz) or train it
            (--train), compile and reduce it, simulate the evaluation set through
            both CRNs, and write OUT/NAME.json, OUT/table.md (all OUT/*.json results
            in one table) and the figures in OUT/figures/ (PNG and PDF). Existing
            files are never replaced without --force (checked before anything runs).
            With --store DIR the simulations are written there as they are computed
            (DIR/NAME/full, DIR/NAME/reduced), and --resume continues an
            interrupted run. Exit status 1 when a CRN disagrees with its network on
            some example.
        """,
        examples="""
            jaxcrn reproduce iris --out /tmp/results     # about a minute on 2 cores
            jaxcrn reproduce virus --limit 50 --no-figures
            jaxcrn reproduce mnist14 --data $JAXCRN_DATA --store runs/m14 --resume   # killable
        """,  # noqa: E501
    )
    p.add_argument(
        "dataset", choices=("iris", "virus", "mnist14", "all"), help="which dataset"
    )
    p.add_argument(
        "--out",
        default="results",
        metavar="DIR",
        help="output folder, created if needed (default: results)",
    )
    p.add_argument(
        "--models",
        default=os.path.join("experiments", "models"),
        metavar="DIR",
        help="folder of trained models NAME.npz (default: experiments/models)",
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="train the models with their presets instead of loading them",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="mnist14: the folder of the MNIST IDX files (default: $JAXCRN_DATA)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="evaluate only the first N test examples (default: all)",
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
    p.add_argument(
        "--rtol", type=float, default=1e-6, help="relative tolerance (default: 1e-6)"
    )
    p.add_argument(
        "--atol", type=float, default=1e-9, help="absolute tolerance (default: 1e-9)"
    )
    p.add_argument(
        "--solver",
        choices=SOLVERS,
        default="auto",
        help="ODE solver (default: auto, see `jaxcrn simulate --help`)",
    )
    p.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="samples integrated side by side (default: plan_batch's choice by "
        "the network's size, 32-512 on a CPU, 16384 on a GPU)",
    )
    p.add_argument("--force", action="store_true", help="overwrite results that exist")
    p.add_argument(
        "--no-figures", action="store_true", help="write no figures (default: write)"
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress lines (default: shown)"
    )
    add_store_options(p)
    p.set_defaults(func=run)


def _planned(args, names) -> list[str]:
    out = [os.path.join(args.out, f"{n}.json") for n in names]
    out.append(os.path.join(args.out, "table.md"))
    if not args.no_figures:
        out += [
            os.path.join(args.out, "figures", f"{stem}.{ext}")
            for n in names
            for stem in FIGURES[n]
            for ext in FORMATS
        ]
    return out


def run(args) -> int:
    check_positive(args, "t1", "rtol", "atol")
    check_rtol(args)
    check_positive(args, "limit", "full_limit", "lanes", integer=True)
    names = ["iris", "virus", "mnist14"] if args.dataset == "all" else [args.dataset]
    claim_outputs(args.force, *_planned(args, names), make_parents=True)
    check_store(args)
    if not args.train:
        for name in names:
            mpath = os.path.join(args.models, f"{name}.npz")
            if not os.path.exists(mpath):
                raise CLIError(
                    f"{mpath} not found: run from the repository root, pass "
                    "--models DIR, or --train."
                )
    setup_jax(args)
    import glob
    import time

    import jax.random as jr

    from .. import _nn
    from .._reproduce import DEFAULT_T1, markdown_table, run_dataset

    # every dataset and model is read and checked before any work: a missing
    # MNIST folder or a wrong model found after iris and virus would leave their
    # results behind and the table unwritten
    datasets, models = {}, {}
    for name in names:
        datasets[name] = _dataset(name, args.data)
        if not args.train:
            mpath = os.path.join(args.models, f"{name}.npz")
            models[name] = load_model_or_fail(mpath)
            check_model_fits(models[name], mpath, name, datasets[name])
    all_ok = True
    for name in names:
        start = time.perf_counter()
        ds = datasets[name]
        split = ds.test
        if args.train:
            hidden, config = _nn.preset(name)
            model = _nn.init_model(
                (ds.n_features, *hidden, ds.n_classes), key=jr.PRNGKey(config.seed)
            )
            model, _ = _nn.train(model, ds, config, progress=not args.quiet)
        else:
            model = models[name]
        class_names = list(ds.class_names)
        x, y = split.x, split.y
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        full_limit = args.full_limit
        if full_limit is None and name == "mnist14":
            full_limit = 1000
        limits = {} if full_limit is None else {"full": full_limit}
        t1 = args.t1 if args.t1 is not None else DEFAULT_T1[name]
        print(f"== {name}: {len(x)} test examples, t1 = {t1:g}", flush=True)
        store = {}
        if args.store is not None:
            store = dict(store=os.path.join(args.store, name), resume=args.resume)
        try:
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
                solver=solver(args.solver),
                **store,
            )
        except (OSError, ValueError) as e:
            if args.store is None:
                raise
            raise store_error(e) from None
        report["class_names"] = class_names
        report["wall_s"] = time.perf_counter() - start
        path = os.path.join(args.out, f"{name}.json")
        write_files({path: to_json(report, indent=1)}, args.force, make_parents=True)
        for k in ("full", "reduced"):
            n = report["n_simulated"][k]
            print(
                f"  {k:8s} agreement {report['agreement'][k]}/{n}, "
                f"max|CRN-NN| {report['max_abs_error'][k]:.3g}, "
                f"wall {report['wall_s_variant'][k]:.1f} s"
            )
            all_ok &= report["agreement"][k] == n
        print(f"  wrote {path}")
        if not args.no_figures:
            _reproduce_figures(name, report, variants, ds, x, y, args.out, args.force)
    reports = []
    for p in sorted(glob.glob(os.path.join(args.out, "*.json"))):
        try:
            with open(p, encoding="utf-8") as f:
                r = json.load(f)
        except (OSError, ValueError):
            continue  # not one of ours
        if isinstance(r, dict) and "agreement" in r and "counts" in r:
            reports.append(r)
    order = {"iris": 0, "virus": 1, "mnist14": 2}
    reports.sort(key=lambda r: order.get(r.get("dataset"), 9))
    table = markdown_table(reports)
    path = os.path.join(args.out, "table.md")
    write_files({path: table}, args.force, make_parents=True)
    print("\n" + table)
    print(f"wrote {path}")
    return 0 if all_ok else 1


def _dataset(name: str, data: str | None):
    """The dataset (`--data` is the MNIST folder; iris and virus ship with jaxcrn)."""
    from .. import datasets

    try:
        return datasets.load(name, data if name == "mnist14" else None)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def _figure(axes):
    """The matplotlib figure of an Axes or an array of them."""
    import numpy as np

    if isinstance(axes, np.ndarray):
        axes = axes.ravel()[0]
    return getattr(axes, "figure", axes)


def _save(fig, stem: str, force: bool) -> list[str]:
    fig = _figure(fig)
    files = {
        f"{stem}.{ext}": figure_writer(fig, ext, dpi=150, bbox_inches="tight")
        for ext in FORMATS
    }
    return write_files(files, force, make_parents=True)


def _reproduce_figures(name, report, variants, ds, x, y, out, force) -> None:
    import numpy as np

    try:
        plt = require_matplotlib("figures")
    except CLIError:
        print("matplotlib is not installed: no figures (pip install 'jaxcrn[plot]').")
        return
    from .. import plot

    figdir = os.path.join(out, "figures")
    full, red = variants["full"], variants["reduced"]
    names = list(ds.class_names)
    t_max = min(report["t1"], 40.0)
    written = []
    if name == "iris":
        idx = int(np.flatnonzero(y == 1)[0])
        fig = plot.full_vs_reduced(
            full.grid_ts,
            full.grid[idx],
            red.grid[idx],
            class_names=names,
            title=f"Figure 2: IRIS example {idx} ({names[y[idx]]})",
            t_max=t_max,
        )
        written += _save(fig, os.path.join(figdir, "fig2_iris_traces"), force)
        plt.close(_figure(fig))
    if name == "mnist14":
        idx = 0
        pred = int(np.argmax(red.outputs[idx]))
        # the raw image (pixels / 255, 2 x 2 block means): the centred input plus
        # the per-pixel mean that centring subtracted
        raw = x[idx] + np.asarray(ds.preprocessing["mean_test_14"])
        fig = plot.digit_traces(
            raw,
            red.grid_ts,
            red.grid[idx],
            predicted=pred,
            true=int(y[idx]),
            t_max=t_max,
            title="Figure 3: MNIST-14 test image 0, reduced CRN",
        )
        written += _save(fig, os.path.join(figdir, "fig3_mnist_digit"), force)
        plt.close(_figure(fig))
    if name == "virus":
        pred = red.outputs.argmax(1)
        wrong = np.flatnonzero(pred != y[: len(pred)])
        if wrong.size:
            idx = int(wrong[0])
            fig = plot.misclassified(
                red.grid_ts,
                red.grid[idx],
                true=int(y[idx]),
                predicted=int(pred[idx]),
                class_names=names,
                t_max=t_max,
                title=f"Figure 4: virus test example {idx}: true {names[y[idx]]}, "
                f"predicted {names[pred[idx]]} (reduced CRN)",
            )
            written += _save(
                fig, os.path.join(figdir, "fig4_virus_misclassified"), force
            )
            plt.close(_figure(fig))
    fig = plot.convergence_histograms(
        {
            k: {"t_eps": v.t_eps, "t_rel": v.t_rel, "t_argmax": v.t_argmax}
            for k, v in variants.items()
        },
        dataset=name,
        eps=report["eps"],
    )
    written += _save(fig, os.path.join(figdir, f"convergence_{name}"), force)
    plt.close(_figure(fig))
    print("  figures: " + ", ".join(written))
