"""Plot throughput against batch size from `benchmarks/batch_sweep.py` records.

    python benchmarks/plot_sweep.py results/sweep_cpu.jsonl \
        results/gpu/sweep_h100.jsonl \
        --png results/figures/throughput_vs_batch.png [--force]

One panel per model, one series per (CRN, engine, device), each series in one
colour across every panel and named in one legend; a line joins only batch sizes
that were measured next to each other (a missing size breaks it). Only float64
records of the trained model at t1 = 50 that passed their check (status "ok") are
drawn, and for repeated batch sizes the fastest setting is kept. Needs matplotlib
(the `plot` extra).
"""

import argparse
import os
import sys
from collections import defaultdict

from _jsonl import read


# batch_sweep.py records from before it recorded the engine (results/gpu/, commit
# 8c7ca37) ran simulate_batch's default of that commit, method="lanes"
ENGINE_BEFORE_RECORDED = "lanes"


def _device(r) -> str:
    return "CPU" if r["platform"] == "cpu" else r["device_kind"].replace("NVIDIA ", "")


def series(recs):
    """{model: {label: {batch: samples_per_s}}}, keeping the best per batch; the
    label names the CRN, the engine and the device."""
    out = defaultdict(lambda: defaultdict(dict))
    for r in recs:
        if r.get("status") != "ok" or r.get("weights", "trained") != "trained":
            continue
        if r.get("t1", 50.0) != 50.0 or r["dtype"] != "float64":
            continue
        engine = r.get("engine") or ENGINE_BEFORE_RECORDED
        label = f"{r['crn']} CRN, {engine} engine, {_device(r)}"
        cur = out[r["model"]][label].get(r["batch"], 0.0)
        out[r["model"]][label][r["batch"]] = max(cur, r["samples_per_s"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--png", required=True)
    ap.add_argument("--force", action="store_true", help="overwrite --png")
    args = ap.parse_args(argv)
    if os.path.exists(args.png) and not args.force:
        raise SystemExit(f"{args.png} exists; pass --force to overwrite it.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from jaxcrn import plot
    except ImportError:
        raise SystemExit('needs matplotlib: pip install -e ".[plot]"') from None
    data = series(read(args.jsonl, "batch_sweep"))
    if not data:
        raise SystemExit("no passing batch_sweep records in " + ", ".join(args.jsonl))
    models = [m for m in ("iris", "virus", "mnist14") if m in data]
    # one colour per series across every panel; dashed: CPU, solid: accelerator
    labels = sorted({label for m in models for label in data[m]})
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    styles = {label: "--" if label.endswith("CPU") else "-" for label in labels}
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.4))
    axes = [axes] if len(models) == 1 else list(axes)
    for ax, model in zip(axes, models, strict=True):
        plot.throughput(
            {label: data[model][label] for label in labels if label in data[model]},
            ax=ax,
            colors=colors,
            linestyles=styles,
            ylabel="samples / s",
        )
        ax.set_title(model)
    handles = [
        plt.Line2D(
            [], [], color=colors[label], ls=styles[label], marker="o", label=label
        )
        for label in labels
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        "simulate_batch throughput, t1 = 50, float64, rtol 1e-6 "
        "(dashed: CPU, 2 cores; solid: GPU)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04 + 0.04 * ((len(labels) + 1) // 2), 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
    fig.savefig(args.png, dpi=130)
    print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
