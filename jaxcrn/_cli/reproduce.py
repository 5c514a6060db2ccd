"""`jaxcrn reproduce`: the paper's tables and figures."""

import json
import os

from ._common import (
    CLIError,
    _load_model_or_fail,
    _load_split,
    _setup_jax,
    _solver,
)


def add(sub) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    _setup_jax(args)
    import glob
    import time

    import jax.random as jr

    from .. import _nn, datasets
    from .._reproduce import DEFAULT_T1, markdown_table, run_dataset, write_json

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

        from .._plot import (
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
