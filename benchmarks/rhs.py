"""What one right-hand side (and one structured linear solve) of a compiled CRN
costs, next to one forward pass of the network it computes: per sample under
`jax.vmap` (what `simulate` does under vmap) and in the batch engine's species-major
form (the kinetics called on one `(species, lanes)` array).

For each trained model (IRIS 4-8-3, virus 10-32-4, MNIST-14 196-512-512-10) and each
CRN (full, reduced), on a batch of states taken from a real simulation (so the
concentrations are realistic): the jitted, vmapped forward pass of the quantised
network, the CRN's `dy/dt`, and the solve of `(lam I - J) x = b` that `Rodas5P` does
at every stage. Checked first: the solve's residual is at round-off, and `dy/dt`
equals the independent sparse (gather/segment-sum) form's. Prints one JSON line per
model and CRN (microseconds per sample, ratios to the forward pass); compile time is
excluded (one warm-up call), each figure is the best of `--repeats`.

    python benchmarks/rhs.py [--batch 256] [--repeats 20] [--data ../shared/datasets]
        [--out results/rhs.jsonl]
"""

import argparse
import os
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _jsonl import emit  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_time(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--data", default=os.environ.get("JAXCRN_DATA"))
    ap.add_argument("--out")
    args = ap.parse_args()
    out = open(args.out, "a") if args.out else None
    names = ["iris", "virus"]
    if args.data and os.path.isdir(args.data):
        names.append("mnist14")
    for name in names:
        params = jaxcrn.load_params(
            os.path.join(HERE, "experiments", "models", f"{name}.npz")
        )
        ds = jaxcrn.datasets.load(name, args.data if name == "mnist14" else None)
        x = np.resize(ds.test.x, (args.batch, ds.n_features))
        ws = [jnp.asarray(w, jnp.float64) for w, _ in params]
        bs = [jnp.asarray(b, jnp.float64) for _, b in params]

        @jax.jit
        def fwd(x, ws=ws, bs=bs):
            h = x
            for i, (w, b) in enumerate(zip(ws, bs)):
                h = h @ w + b
                if i < len(ws) - 1:
                    h = jax.nn.relu(h)
            return h

        t_fwd = best_time(fwd, (jnp.asarray(x),), args.repeats)
        full = jaxcrn.nn_to_crn(params)
        for crn_name, crn in (("full", full), ("reduced", jaxcrn.reduce_crn(full))):
            net = jaxcrn.compile_crn(crn)
            # realistic states: a short simulation, states at t = 1
            res = jaxcrn.simulate_batch(
                net, x, 1.0, saveat=None, keep_states=True, progress=False
            )
            ys = jnp.asarray(res.y_final)
            lam = jnp.asarray(10.0)
            rhs = jax.jit(jax.vmap(lambda y: net(0.0, y, None)))
            solve = jax.jit(jax.vmap(lambda y, b: net.linear_solver(0.0, y, lam)(b)))
            b = rhs(ys)
            # correctness: the dense reference rhs, and the solve's residual
            ref_net = jaxcrn.compile_crn(crn, form="sparse")
            perm = np.array([net.index(s) for s in ref_net.species])
            dense = np.zeros_like(np.asarray(b))
            dense[:, perm] = np.asarray(
                jax.vmap(lambda y: ref_net(0.0, y, None))(ys[:, perm])
            )
            rhs_err = float(np.max(np.abs(np.asarray(b) - dense)))
            scale = float(np.max(np.abs(dense))) or 1.0
            xsol = solve(ys, b)
            jac = jax.vmap(jax.jacfwd(lambda y: net(0.0, y, None)))(ys[:4])
            resid = lam * xsol[:4] - jnp.einsum("bij,bj->bi", jac, xsol[:4]) - b[:4]
            res_err = float(jnp.max(jnp.abs(resid)) / jnp.max(jnp.abs(b[:4])))
            if rhs_err > 1e-9 * scale or res_err > 1e-9:
                raise SystemExit(
                    f"{name}/{crn_name}: wrong answer (rhs error {rhs_err:.2e}, "
                    f"solve residual {res_err:.2e})"
                )
            t_rhs = best_time(rhs, (ys,), args.repeats)
            t_solve = best_time(solve, (ys, b), args.repeats)
            # the batch engine's species-major form (whole batch, species x
            # samples; the input layer is part of the state here)
            kin, kr = net.kinetics, net.rates
            lam_b = jnp.full((1, args.batch), 10.0)
            b_rhs = jax.jit(lambda y: kin.rhs(y, kr))
            b_solve = jax.jit(lambda y, r: kin.solve(kin.factor(y, kr, lam_b), r))
            bt = jnp.asarray(ys.T)
            b_err = float(np.max(np.abs(np.asarray(b_rhs(bt)).T - dense)))
            b_res = float(
                np.max(np.abs(np.asarray(b_solve(bt, b.T)).T - np.asarray(xsol)))
                / np.max(np.abs(np.asarray(xsol)))
            )
            if b_err > 1e-9 * scale or b_res > 1e-9:
                raise SystemExit(
                    f"{name}/{crn_name}: wrong species-major answer (rhs error "
                    f"{b_err:.2e}, solve difference {b_res:.2e})"
                )
            t_brhs = best_time(b_rhs, (bt,), args.repeats)
            t_bsolve = best_time(b_solve, (bt, b.T), args.repeats)
            n = args.batch
            rec = {
                "benchmark": "rhs",
                "model": name,
                "crn": crn_name,
                "species": net.n_species,
                "reactions": net.n_reactions,
                "form": type(net.kinetics).__name__,
                "batch": n,
                "forward_us": round(t_fwd / n * 1e6, 3),
                "rhs_us": round(t_rhs / n * 1e6, 3),
                "solve_us": round(t_solve / n * 1e6, 3),
                "rhs_over_forward": round(t_rhs / t_fwd, 2),
                "solve_over_forward": round(t_solve / t_fwd, 2),
                "rhs_max_rel_error": rhs_err / scale,
                "solve_max_rel_residual": res_err,
                "batched_rhs_us": round(t_brhs / n * 1e6, 3),
                "batched_solve_us": round(t_bsolve / n * 1e6, 3),
                "batched_rhs_over_forward": round(t_brhs / t_fwd, 2),
                "batched_solve_over_forward": round(t_bsolve / t_fwd, 2),
                "batched_rhs_max_rel_error": b_err / scale,
                "batched_solve_max_rel_difference": b_res,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "jax": jax.__version__,
            }
            emit(rec, out)


if __name__ == "__main__":
    main()
