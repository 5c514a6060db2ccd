"""Benchmark `simulate` under `jax.vmap` for batch sizes 1, 10, 100, 1000.

Two networks:

- `chain`: A0 -> A1 -> ... -> A49 (k = 1), with the closed form
  A_i(t) = A0(0) (kt)^i exp(-kt) / i!;
- `random50`: a fixed random mass-action network of 50 species and 100 uni- and
  bimolecular reactions (seed 0), checked against Dopri8 at rtol 1e-12.

For each (network, layout, solver, batch) it checks the answer first, then times the
first call (compile + run) and the best of `--repeats` further calls, and prints one
JSON line: {"network", "form", "solver", "batch", "compile_s", "run_s",
"per_sample_ms", "max_error", "steps_median"}.

    python benchmarks/simulate.py [--out results/bench_simulate.jsonl] [--quick]
"""

import argparse
import math
import platform
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


jax.config.update("jax_enable_x64", True)

from _jsonl import emit  # noqa: E402

import jaxcrn  # noqa: E402


def chain_crn(n: int = 50) -> jaxcrn.CRN:
    lines = [f"A{i} -> A{i + 1}" for i in range(n - 1)] + ["init A0 = 1"]
    return jaxcrn.parse_crn("\n".join(lines))


def chain_exact(n: int, t: float) -> np.ndarray:
    i = np.arange(n)
    out = np.exp(-t + i * np.log(t) - np.array([math.lgamma(k + 1) for k in i]))
    out[-1] = 1.0 - out[:-1].sum()  # the last species collects the rest
    return out


def random_crn(n_species: int = 50, n_reactions: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"S{i}" for i in range(n_species)]
    reactions = []
    for _ in range(n_reactions):
        k_in = rng.integers(1, 3)
        k_out = rng.integers(1, k_in + 1)  # never more molecules out than in
        reac = rng.choice(n_species, size=k_in, replace=True)
        prod = rng.choice(n_species, size=k_out, replace=True)
        rate = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
        reactions.append(
            " + ".join(names[i] for i in reac)
            + " -> "
            + " + ".join(names[i] for i in prod)
            + f" [k={rate!r}]"
        )
    init = [f"init {s} = {float(rng.uniform(0, 2))!r}" for s in names]
    return jaxcrn.parse_crn("\n".join(reactions + init))


@eqx.filter_jit
def run_batch(network, y0s, t1, solver, rtol, atol):
    def one(y0):
        r = jaxcrn.simulate(
            network, y0, t1, solver=solver, rtol=rtol, atol=atol, max_steps=100_000
        )
        return r.y_final, r.num_steps, r.status

    return jax.vmap(one)(y0s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="also append the JSON lines to this file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="batches 1 and 10 only")
    args = ap.parse_args()
    batches = [1, 10] if args.quick else [1, 10, 100, 1000]
    t1 = 20.0
    rtol, atol = 1e-6, 1e-9
    out = open(args.out, "a") if args.out else None
    machine = f"{platform.processor() or platform.machine()}, {jax.devices()[0]}"

    crns = {"chain": chain_crn(), "random50": random_crn()}
    rng = np.random.default_rng(1)
    for name, crn in crns.items():
        n = len(crn.species)
        ref_net = jaxcrn.compile_crn(crn, form="dense")
        base = np.asarray(ref_net.y_init)
        # each sample: the network's initial state, scaled by a random factor
        scale = rng.uniform(0.5, 1.5, size=(max(batches), 1))
        y0_all = base[None, :] * scale
        if name == "chain":
            exact = scale * chain_exact(n, t1)[None, :]
        else:
            ref, _, _ = run_batch(
                ref_net,
                jnp.asarray(y0_all),
                jnp.asarray(t1),
                diffrax.Dopri8(),
                1e-12,
                1e-14,
            )
            exact = np.asarray(ref)
        forms = ["dense", "sparse"] + (
            ["layered"] if jaxcrn.layered_structure(crn).ok else []
        )
        for form in forms:
            net = jaxcrn.compile_crn(crn, form=form)
            for sname, solver in [
                ("tsit5", diffrax.Tsit5()),
                ("rodas5p", jaxcrn.Rodas5P()),
            ]:
                for b in batches:
                    y0s = jnp.asarray(y0_all[:b])
                    t = time.perf_counter()
                    y, steps, status = run_batch(
                        net, y0s, jnp.asarray(t1), solver, rtol, atol
                    )
                    jax.block_until_ready(y)
                    first = time.perf_counter() - t
                    err = float(np.max(np.abs(np.asarray(y) - exact[:b])))
                    if not (np.all(np.asarray(status) == 0) and err < 1e-4):
                        raise SystemExit(
                            f"{name}/{form}/{sname}/batch {b}: wrong answer "
                            f"(max error {err:.2e}, status {np.unique(status)})"
                        )
                    runs = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        y, *_ = run_batch(net, y0s, jnp.asarray(t1), solver, rtol, atol)
                        jax.block_until_ready(y)
                        runs.append(time.perf_counter() - t)
                    run = min(runs)
                    rec = dict(
                        benchmark="simulate",
                        network=name,
                        species=n,
                        reactions=len(crn.reactions),
                        form=form,
                        solver=sname,
                        batch=b,
                        t1=t1,
                        rtol=rtol,
                        atol=atol,
                        compile_s=round(max(first - run, 0.0), 4),
                        run_s=round(run, 6),
                        per_sample_ms=round(run / b * 1e3, 4),
                        max_error=err,
                        steps_median=float(np.median(np.asarray(steps))),
                        machine=machine,
                    )
                    emit(rec, out)


if __name__ == "__main__":
    main()
