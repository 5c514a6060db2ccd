"""Convergence-time study: how does the time a compiled CRN needs to compute grow with
the depth of the network? (The paper's future work: "the 90%-completion time may
increase sublinearly, linearly, or superlinearly with the number of layers".)

Networks of depth 1-6 (hidden layers) and width 8, 32 and 128 are TRAINED on IRIS
(4 inputs, 3 classes; binary weights; a short BinaryConnect run each, seed 0), compiled
by Algorithm 1 (full) and Algorithm 2 (reduced), and simulated (rates 1) on a batch of
IRIS inputs for dual-rail offsets c in {0, 0.5, 1, 2} (x+ = max(x, 0) + c,
x- = max(-x, 0) + c, the same value x). Per sample we measure

- t90: the time from which every output has covered 90% of its way from y(0) to its
  final value and stays there;
- t_eps: the time from which every output stays within eps = 1e-3 of its final value;
- t_argmax: the time from which the predicted class stays final;

and we fit median time = a * depth^p (least squares in log-log) for each width, CRN
and offset. Writes results/convergence.json and results/figures/convergence_depth.*

    python experiments/convergence.py [--quick] [--out results] [--force]
"""

import argparse
import json
import os
import time

import jax


jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402
from jaxcrn._reproduce import _stats, write_json  # noqa: E402


def train_network(depth: int, width: int, epochs: int, seed: int = 0):
    data = jaxcrn.datasets.iris()
    sizes = (4, *([width] * depth), 3)
    model = jaxcrn.init_model(sizes, key=jax.random.PRNGKey(seed))
    _, config = jaxcrn.preset("iris")
    config = type(config)(**{**config.__dict__, "epochs": epochs, "restarts": 1})
    model, _ = jaxcrn.train(model, data, config)
    return model, jaxcrn.accuracy(model, data.test.x, data.test.y)


def measure(crn, x, offset, t1):
    net = jaxcrn.compile_crn(crn)
    ts = np.concatenate([np.linspace(0, 10, 201), np.linspace(10, t1, 391)[1:]])
    res = jaxcrn.simulate_batch(
        net,
        x,
        t1,
        saveat=ts,
        offset=offset,
        progress=False,
        stop_when_steady=True,
        steady_tol=1e-7,
    )
    ct = jax.vmap(
        lambda t, o, f: jaxcrn.convergence_times(t, o, f, eps=1e-3, frac=0.9)
    )(res.ts, res.outputs, res.outputs_final)
    ok = np.asarray(res.status) == 0
    out = {
        "t90": np.where(ok, np.asarray(ct.all_frac_time), np.inf),
        "t_eps": np.where(ok, np.asarray(ct.all_abs_time), np.inf),
        "t_argmax": np.where(ok, np.asarray(ct.argmax_time), np.inf),
    }
    return out, res


def summarize(v) -> dict:
    """Median / p90 / max of per-sample times; a sample that never settled counts
    as +inf, so the median exists while fewer than half never settle."""
    v = np.asarray([np.inf if z is None else z for z in v], float)
    stats = _stats(v)
    return {
        "median": stats["median"],
        "p90": stats["p90"],
        "max": stats["max"],
        "not_converged": stats["never"],
        "values": [float(z) if np.isfinite(z) else None for z in v],
    }


def fit_all(rows) -> list:
    """Fit median time = a * depth^p per width, CRN, offset and measure."""
    fits = []
    keys = sorted({(r["width"], r["crn"], r["offset"]) for r in rows})
    for width, name, c in keys:
        sel = [
            r
            for r in rows
            if r["width"] == width and r["crn"] == name and r["offset"] == c
        ]
        for key in ("t90", "t_eps", "t_argmax"):
            med = [
                r[key]["median"] if r[key]["median"] is not None else np.nan
                for r in sel
            ]
            p, a = fit_power([r["depth"] for r in sel], med)
            fits.append(
                {
                    "width": width,
                    "crn": name,
                    "offset": c,
                    "measure": key,
                    "exponent": p,
                    "prefactor": a,
                    "depths_fitted": int(np.isfinite(med).sum()),
                }
            )
    return fits


def fit_power(depths, times):
    d = np.asarray(depths, float)
    t = np.asarray(times, float)
    keep = np.isfinite(t) & (t > 0)
    if keep.sum() < 2:
        return None, None
    p, loga = np.polyfit(np.log(d[keep]), np.log(t[keep]), 1)
    return float(p), float(np.exp(loga))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="depths 1-3, widths 8 and 32, 16 inputs (a smoke test)",
    )
    ap.add_argument("--out", default="results")
    ap.add_argument("--t1", type=float, default=400.0)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--force", action="store_true")
    ap.add_argument(
        "--from-json",
        metavar="PATH",
        help="recompute the summaries, fits and plot from the per-sample times "
        "stored in an earlier run's JSON (no simulation)",
    )
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        for r in result["rows"]:
            for key in ("t90", "t_eps", "t_argmax"):
                r[key] = summarize(r[key]["values"])
        result["fits"] = fit_all(result["rows"])
        path = os.path.join(args.out, "convergence.json")
        write_json(path, result, force=args.force)
        print(f"wrote {path}")
        plot(result, args.out, args.force)
        return
    depths = [1, 2, 3] if args.quick else [1, 2, 3, 4, 5, 6]
    widths = [8, 32] if args.quick else [8, 32, 128]
    offsets = [0.0, 0.5, 1.0, 2.0]
    n = 16 if args.quick else args.samples
    path = os.path.join(args.out, "convergence.json")
    if os.path.exists(path) and not args.force:
        raise SystemExit(f"{path} exists; pass --force to overwrite it.")
    data = jaxcrn.datasets.iris()
    rng = np.random.default_rng(0)
    x = data.test.x[rng.choice(len(data.test.x), size=n, replace=False)]
    rows = []
    start = time.perf_counter()
    for width in widths:
        for depth in depths:
            model, acc = train_network(depth, width, args.epochs)
            full = jaxcrn.nn_to_crn(model)
            crns = {"full": full, "reduced": jaxcrn.reduce_crn(full)}
            for name, crn in crns.items():
                for c in offsets:
                    t = time.perf_counter()
                    m, res = measure(crn, x, c, args.t1)
                    nn_out = jaxcrn.forward(model, x)
                    agree = int((res.outputs_final.argmax(1) == nn_out.argmax(1)).sum())
                    row = {
                        "depth": depth,
                        "width": width,
                        "crn": name,
                        "offset": c,
                        "train_accuracy": float(acc),
                        "n": n,
                        "agree": agree,
                        "species": len(crn.species),
                        "reactions": len(crn.reactions),
                        "steps_median": float(np.median(res.num_steps)),
                        "wall_s": time.perf_counter() - t,
                    }
                    for k, v in m.items():
                        row[k] = summarize(v)
                    rows.append(row)
                    print(
                        f"width {width:3d} depth {depth} {name:7s} offset {c:3.1f}: "
                        f"t90 median {row['t90']['median']}, t_eps median "
                        f"{row['t_eps']['median']}, agree {agree}/{n}, "
                        f"{row['wall_s']:.1f} s",
                        flush=True,
                    )
    fits = fit_all(rows)
    result = {
        "description": __doc__,
        "networks": "trained on IRIS (BinaryConnect, binary weights, "
        f"{args.epochs} epochs, seed 0)",
        "t1": args.t1,
        "eps": 1e-3,
        "frac": 0.9,
        "rates": 1.0,
        "rows": rows,
        "fits": fits,
        "wall_s": time.perf_counter() - start,
    }
    write_json(path, result, force=args.force)
    print(f"wrote {path}")
    plot(result, args.out, args.force)


def plot(result, out, force=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcrn.plot import save_figure

    rows = result["rows"]
    widths = sorted({r["width"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "t90", "90%-completion time (median)"),
        (axes[1], "t_eps", "time to within 1e-3 (median)"),
    ):
        for wi, width in enumerate(widths):
            for name, ls in (("full", "-"), ("reduced", "--")):
                sel = sorted(
                    (
                        r
                        for r in rows
                        if r["width"] == width
                        and r["crn"] == name
                        and r["offset"] == 0.0
                    ),
                    key=lambda r: r["depth"],
                )
                d = [r["depth"] for r in sel]
                t = [
                    r[key]["median"] if r[key]["median"] is not None else np.nan
                    for r in sel
                ]
                fit = next(
                    f
                    for f in result["fits"]
                    if f["width"] == width
                    and f["crn"] == name
                    and f["offset"] == 0.0
                    and f["measure"] == key
                )
                p = fit["exponent"]
                ax.plot(
                    d,
                    t,
                    ls,
                    marker="o",
                    color=f"C{wi}",
                    label=f"width {width}, {name} (p = {p:.2f})"
                    if p is not None
                    else f"width {width}, {name}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["depth"] for r in rows}))
        ax.set_xticklabels(sorted({r["depth"] for r in rows}))
        ax.set_xlabel("hidden layers")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(
        "Convergence time vs depth (trained IRIS networks, offset 0, "
        "fit: t = a depth^p)",
        fontsize=10,
    )
    fig.tight_layout()
    paths = save_figure(
        fig, os.path.join(out, "figures", "convergence_depth"), overwrite=force
    )
    plt.close(fig)
    # offsets
    fig, ax = plt.subplots(figsize=(6, 4))
    width = widths[len(widths) // 2]
    for ci, c in enumerate(sorted({r["offset"] for r in rows})):
        sel = sorted(
            (
                r
                for r in rows
                if r["width"] == width and r["crn"] == "reduced" and r["offset"] == c
            ),
            key=lambda r: r["depth"],
        )
        ax.plot(
            [r["depth"] for r in sel],
            [
                r["t90"]["median"] if r["t90"]["median"] is not None else np.nan
                for r in sel
            ],
            marker="o",
            color=f"C{ci}",
            label=f"offset c = {c:g}",
        )
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("90%-completion time (median)")
    ax.set_title(f"Dual-rail offset, width {width}, reduced CRN", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths += save_figure(
        fig, os.path.join(out, "figures", "convergence_offsets"), overwrite=force
    )
    plt.close(fig)
    print("wrote " + ", ".join(paths))


if __name__ == "__main__":
    main()
