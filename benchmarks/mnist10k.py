"""Throughput on MNIST-14: all 10,000 test images through the (reduced) CRN of the
trained 196-512-512-10 model, final outputs only (no trajectories saved).

Checks the answer (argmax against the network's forward pass on every image), then
prints one JSON line: images, wall time (compile included and excluded), images/s,
steps, agreement, max |CRN - NN|, peak memory (resident set size) and the settings.

    python benchmarks/mnist10k.py [--crn reduced|full] [--n 10000] [--atol 1e-9]
        [--data ../shared/datasets] [--out results/mnist10k.jsonl]
"""

import argparse
import json
import os
import platform
import resource
import time

import jax


jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crn", choices=("reduced", "full"), default="reduced")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--t1", type=float, default=50.0)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--lanes", type=int, default=None, help="default: simulate_batch's")
    ap.add_argument(
        "--chunk-size", type=int, default=None, help="default: simulate_batch's"
    )
    ap.add_argument(
        "--repeats", type=int, default=0, help="timed calls after the first"
    )
    ap.add_argument(
        "--data",
        default=os.environ.get(
            "JAXCRN_DATA", os.path.join(HERE, "..", "shared", "datasets")
        ),
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    model = jaxcrn.load_model(
        os.path.join(HERE, "experiments", "models", "mnist14.npz")
    )
    ds = jaxcrn.datasets.mnist14(args.data)
    x = ds.test.x[: args.n]
    t = time.perf_counter()
    crn = jaxcrn.nn_to_crn(model)
    if args.crn == "reduced":
        crn = jaxcrn.reduce_crn(crn)
    net = jaxcrn.compile_crn(crn)
    build_s = time.perf_counter() - t
    plan = jaxcrn.plan_batch(net, len(x), lanes=args.lanes, chunk_size=args.chunk_size)
    lanes = plan.lanes
    kw = dict(
        rtol=args.rtol,
        atol=args.atol,
        saveat=None,
        lanes=lanes,
        progress=False,
    )
    if args.chunk_size:
        kw["chunk_size"] = args.chunk_size
    # the first call on one chunk of lanes images: compilation + a small run (the
    # whole batch has another shape unless lanes < n, so it may compile again)
    t = time.perf_counter()
    jaxcrn.simulate_batch(net, x[:lanes], args.t1, **kw)
    first_small_s = time.perf_counter() - t
    t = time.perf_counter()
    res = jaxcrn.simulate_batch(net, x, args.t1, **kw)
    wall = first_wall = time.perf_counter() - t
    for _ in range(args.repeats):  # the first big call compiles unless lanes < n
        t = time.perf_counter()
        jaxcrn.simulate_batch(net, x, args.t1, **kw)
        wall = min(wall, time.perf_counter() - t)
    nn = jaxcrn.forward(model, x)
    agree = int((res.outputs_final.argmax(1) == nn.argmax(1)).sum())
    rec = {
        "benchmark": "mnist10k",
        "crn": args.crn,
        "images": len(x),
        "species": net.n_species,
        "reactions": net.n_reactions,
        "t1": args.t1,
        "rtol": args.rtol,
        "atol": args.atol,
        "lanes": plan.lanes,
        "workers": plan.workers,
        "stepper": plan.stepper,
        "linear_solve": plan.linear_solve,
        "chunk_size": plan.chunk_size,
        "repeats": args.repeats,
        "first_wall_s": round(first_wall, 2),
        "build_s": round(build_s, 2),
        "first_call_s_incl_compile": round(first_small_s, 2),
        "wall_s": round(wall, 2),
        "wall_min": round(wall / 60, 2),
        "images_per_s": round(len(x) / wall, 2),
        "ms_per_image": round(wall / len(x) * 1e3, 2),
        "steps_median": float(np.median(res.num_steps)),
        "agree": agree,
        "ok": int((res.status == 0).sum()),
        "max_abs_error": float(np.nanmax(np.abs(res.outputs_final - nn))),
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
    }
    line = json.dumps(rec)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
