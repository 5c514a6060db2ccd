"""Throughput against batch size: one compiled CRN simulated by `simulate_batch` for
batches of 1 ... 10,000 inputs, on whatever device JAX runs on (CPU or GPU).

For each batch size: the first call (compilation + run) and the best of `--repeats`
further calls are timed apart; the answer is checked first (every sample finished,
its argmax equals the network's forward pass except on exact ties, and the largest
deviation from the forward pass relative to the sample's largest output is
reported). One JSON line per batch size: samples/s, time per sample, steps,
agreement, device, peak device memory and the settings.

    python benchmarks/batch_sweep.py --model mnist14 --crn reduced \
        --batches 1,10,100,1000,10000 [--weights trained|random] [--lanes N]
        [--float32] [--repeats 2] [--out results/batch_sweep.jsonl]

MNIST-14 needs the MNIST files (`--data`, or `JAXCRN_DATA`); the batch cycles
through the test inputs of the model's dataset when it is larger than the test set.
"""

import argparse
import datetime
import os
import platform
import resource
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _jsonl import emit  # noqa: E402


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"iris": (4, 8, 3), "virus": (10, 32, 4), "mnist14": (196, 512, 512, 10)}


def ints(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise SystemExit(f"expected positive integers, got {text!r}")
    return vals


def device_memory_peak_mb() -> float | None:
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # CPU backends may not implement memory_stats
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2**20, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=tuple(SIZES), default="mnist14")
    ap.add_argument("--weights", choices=("trained", "random"), default="trained")
    ap.add_argument("--crn", choices=("full", "reduced"), default="reduced")
    ap.add_argument("--batches", default="1,10,100,1000,10000")
    ap.add_argument(
        "--lanes",
        default="",
        help="lanes to try, comma-separated (default: simulate_batch's)",
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--t1", type=float, default=50.0)
    ap.add_argument("--rtol", type=float, default=None, help="default 1e-6 (1e-4)")
    ap.add_argument("--atol", type=float, default=None, help="default 1e-9 (1e-6)")
    ap.add_argument("--float32", action="store_true", help="simulate in float32")
    ap.add_argument("--seed", type=int, default=0, help="seed of random weights")
    ap.add_argument("--data", default=os.environ.get("JAXCRN_DATA"))
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="skip larger batches once a timed call took longer than this",
    )
    ap.add_argument("--out", help="append the JSON lines to this file")
    args = ap.parse_args(argv)
    batches = ints(args.batches)
    lanes_list = ints(args.lanes) if args.lanes else [None]
    rtol = args.rtol if args.rtol is not None else (1e-4 if args.float32 else 1e-6)
    atol = args.atol if args.atol is not None else (1e-6 if args.float32 else 1e-9)
    dtype = jnp.float32 if args.float32 else jnp.float64

    sizes = SIZES[args.model]
    if args.weights == "trained":
        params = jaxcrn.load_params(
            os.path.join(ROOT, "experiments", "models", f"{args.model}.npz")
        )
    else:
        rng = np.random.default_rng(args.seed)
        params = [
            (rng.choice([-1.0, 1.0], size=(a, b)), rng.normal(0.0, 0.5, size=b))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
    data = jaxcrn.datasets.load(
        args.model, args.data if args.model == "mnist14" else None
    ).test.x
    data = np.asarray(data, np.float64)
    t = time.perf_counter()
    crn = jaxcrn.nn_to_crn(params)
    if args.crn == "reduced":
        crn = jaxcrn.reduce_crn(crn)
    net = jaxcrn.compile_crn(crn, dtype=dtype)
    build_s = time.perf_counter() - t
    dev = jax.devices()[0]
    common = dict(
        benchmark="batch_sweep",
        model=args.model,
        weights=args.weights,
        crn=args.crn,
        species=net.n_species,
        reactions=net.n_reactions,
        form=net.form,
        dtype=str(jnp.dtype(dtype)),
        t1=args.t1,
        rtol=rtol,
        atol=atol,
        build_s=round(build_s, 3),
        device=str(dev),
        device_kind=dev.device_kind,
        platform=dev.platform,
        host=f"{platform.machine()}, {os.cpu_count()} cores",
        jax=jax.__version__,
        command="python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
    )
    out = open(args.out, "a") if args.out else None
    stop = False
    for lanes in lanes_list:
        for batch in batches:
            if stop:
                break
            rows = np.arange(batch) % data.shape[0]
            x = data[rows]
            forward = np.asarray(jaxcrn.forward(params, x))
            kw = dict(rtol=rtol, atol=atol, saveat=None, progress=False)
            if lanes is not None:
                kw.update(lanes=lanes, chunk_size=max(lanes, batch))
            plan = jaxcrn.plan_batch(
                net, batch, lanes=kw.get("lanes"), chunk_size=kw.get("chunk_size")
            ).to_dict()
            plan["engine"] = plan["stepper"]
            t = time.perf_counter()
            res = jaxcrn.simulate_batch(net, x, args.t1, **kw)
            first_s = time.perf_counter() - t
            outs = np.asarray(res.outputs_final, np.float64)
            top2 = np.sort(forward, axis=1)[:, -2:]
            tie = top2[:, 1] - top2[:, 0] <= 1e-9 * np.maximum(1.0, np.abs(top2[:, 1]))
            mism = (outs.argmax(1) != forward.argmax(1)) & ~tie
            scale = np.maximum(1.0, np.abs(forward).max(1))
            rel = np.abs(outs - forward).max(1) / scale
            ok = int((res.status == 0).sum())
            rec = dict(
                common,
                batch=batch,
                **plan,
                first_call_s=round(first_s, 4),
                finished=ok,
                forward_argmax_mismatches=int(mism.sum()),
                forward_argmax_ties=int(
                    (tie & (outs.argmax(1) != forward.argmax(1))).sum()
                ),
                max_rel_dev_from_forward=float(np.nanmax(rel)) if ok else None,
                steps_median=float(np.median(res.num_steps)),
                steps_max=int(np.max(res.num_steps)),
            )
            if ok < batch or mism.any():
                bad = np.flatnonzero(mism)[:20]
                rec.update(
                    status="failed",
                    message="unfinished samples or argmax off",
                    mismatched_rows=bad.tolist(),
                    mismatched_forward_margin=(top2[bad, 1] - top2[bad, 0]).tolist(),
                    mismatched_crn_margin=[
                        float(np.sort(outs[i])[-1] - outs[i, forward[i].argmax()])
                        for i in bad
                    ],
                )
                emit(rec, out)
                continue
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                jaxcrn.simulate_batch(net, x, args.t1, **kw)
                runs.append(time.perf_counter() - t)
            best = min(runs) if runs else first_s
            rec.update(
                status="ok",
                run_s=round(best, 4),
                runs_s=[round(r, 4) for r in runs],
                compile_s=round(max(first_s - best, 0.0), 4),
                samples_per_s=batch / best,
                per_sample_s=best / batch,
                device_peak_mb=device_memory_peak_mb(),
                peak_rss_mb=round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                date=datetime.datetime.now().isoformat(timespec="seconds"),
            )
            emit(rec, out)
            print(
                f"# {args.model}/{args.crn} batch {batch:>6} lanes {plan['lanes']:>6}: "
                f"{batch / best:10.1f} samples/s, {best:8.3f} s, first call "
                f"{first_s:7.2f} s, steps {rec['steps_median']:.0f}/{rec['steps_max']}",
                file=sys.stderr,
                flush=True,
            )
            if args.max_seconds is not None and best > args.max_seconds:
                stop = True
        stop = False
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
