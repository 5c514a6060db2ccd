"""Regenerate Figure 3 alone: MNIST-14 test image 0 and its output traces through
the reduced CRN, as `jaxcrn reproduce mnist14` draws it (same model, CRN, t1,
tolerances and time grid), without simulating the other 9,999 images.

    JAXCRN_DATA=../shared/datasets python experiments/figure3.py [--force]

Writes results/figures/fig3_mnist_digit.{png,pdf}.
"""

import argparse
import json
import os


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("JAXCRN_DATA"))
    ap.add_argument("--index", type=int, default=0, help="test image (default 0)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    stem = os.path.join(ROOT, "results", "figures", "fig3_mnist_digit")
    if not args.force and any(os.path.exists(f"{stem}.{e}") for e in ("png", "pdf")):
        raise SystemExit(f"{stem}.png exists; pass --force to overwrite it.")

    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    import jaxcrn
    from jaxcrn._reproduce import simulate_variant

    with open(os.path.join(ROOT, "results", "mnist14.json")) as f:
        report = json.load(f)  # the settings of the run behind the README table
    ds = jaxcrn.datasets.mnist14(args.data)
    model = jaxcrn.load_model(
        os.path.join(ROOT, "experiments", "models", "mnist14.npz")
    )
    crn = jaxcrn.reduce_crn(jaxcrn.nn_to_crn(model))
    i = args.index
    x = ds.test.x[i : i + 1]
    red = simulate_variant(
        "reduced",
        crn,
        x,
        t1=report["t1"],
        eps=report["eps"],
        progress=True,
        **report["solver"],
    )
    pred = int(np.argmax(red.outputs[0]))
    nn = int(np.argmax(jaxcrn.forward(model, x)[0]))
    raw = x[0] + np.asarray(ds.preprocessing["mean_test_14"])
    axes = jaxcrn.plot.digit_traces(
        raw,
        red.grid_ts,
        red.grid[0],
        predicted=pred,
        true=int(ds.test.y[i]),
        t_max=min(report["t1"], 40.0),
        title=f"Figure 3: MNIST-14 test image {i}, reduced CRN",
    )
    paths = jaxcrn.plot.save_figure(axes, stem, overwrite=args.force)
    print(
        f"predicted {pred} (network: {nn}, label {int(ds.test.y[i])}); raw pixel "
        f"range {raw.min():.3f}..{raw.max():.3f}; wrote {', '.join(paths)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
