"""Reproduction of the paper's results: the demo and `jaxcrn reproduce`.

The experiments in `experiments/` and the CLI call these functions, so the numbers in
the README and in `results/` come from one code path.
"""

import dataclasses
import os
import time

import numpy as np

from ._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn


__all__ = ["PAPER", "VariantResult", "markdown_table", "run_dataset"]

# Figures reported by Vasic et al. (ICML 2020). Reaction counts as printed in the
# paper's table: IRIS's "16" counts all reactions of the reduced CRN (8 input +
# 8 bimolecular); virus's "32" and MNIST's "1024" count bimolecular reactions only.
PAPER = {
    "iris": dict(
        layers="4-8-3", accuracy=0.94, agreement="150/150", reactions="40 / 16"
    ),
    "virus": dict(
        layers="10-32-4", accuracy=0.952, agreement="100/100", reactions="148 / 32"
    ),
    "mnist14": dict(
        layers="196-512-512-10",
        accuracy=0.9776,
        agreement="100/100",
        reactions="4488 / 1024",
    ),
}

DEFAULT_T1 = {"iris": 200.0, "virus": 200.0, "mnist14": 50.0}


@dataclasses.dataclass
class VariantResult:
    """Simulation of one CRN variant ("full" or "reduced") on the evaluation set."""

    name: str
    n: int
    outputs: np.ndarray  # final outputs (n, classes)
    grid_ts: np.ndarray  # (times,)
    grid: np.ndarray  # outputs on the grid (n, times, classes)
    status: np.ndarray
    converged: np.ndarray
    t_eps: np.ndarray
    t_rel: np.ndarray
    t_argmax: np.ndarray
    steps: np.ndarray
    wall_s: float
    counts: dict
    noncompetitive: bool


def _stats(t) -> dict:
    t = np.asarray(t, float)
    if t.size == 0:
        return {"median": None, "p90": None, "max": None, "never": 0}
    finite = np.isfinite(t)

    def val(q):
        v = (
            float(np.percentile(t, q))
            if finite.all()
            # no interpolation across never-settled samples (inf - inf)
            else float(np.percentile(t, q, method="inverted_cdf"))
        )
        return v if np.isfinite(v) else None

    return {
        "median": val(50),
        "p90": val(90),
        "max": val(100),
        "never": int((~finite).sum()),
    }


def default_grid(t1: float) -> np.ndarray:
    """Save times: 0.05 apart up to t=10 (the fast transients), then 200 points to
    `t1`. Convergence times are interpolated on this grid."""
    head = np.linspace(0.0, min(10.0, t1), 201)
    if t1 <= 10.0:
        return head
    return np.concatenate([head, np.linspace(10.0, t1, 201)[1:]])


def simulate_variant(
    name, crn, x, *, t1, eps=1e-3, saveat=None, progress=True, **kwargs
) -> VariantResult:
    import jax

    from ._batch import simulate_batch
    from ._network import compile_crn
    from ._simulate import Status, convergence_times

    net = compile_crn(crn)
    if saveat is None:
        saveat = default_grid(t1)
    start = time.perf_counter()
    res = simulate_batch(net, x, t1, saveat=saveat, progress=progress, **kwargs)
    wall = time.perf_counter() - start
    ok = np.asarray(res.status) == Status.OK
    ct = jax.vmap(lambda t, o, f: convergence_times(t, o, f, eps=eps, rtol=1e-2))(
        res.ts, res.outputs, res.outputs_final
    )
    return VariantResult(
        name=name,
        n=len(x),
        outputs=np.asarray(res.outputs_final),
        grid_ts=np.asarray(res.ts[0]),
        grid=np.asarray(res.outputs),
        status=np.asarray(res.status),
        converged=np.asarray(res.converged),
        t_eps=np.where(ok, np.asarray(ct.all_abs_time), np.inf),
        t_rel=np.where(ok, np.asarray(ct.all_rel_time), np.inf),
        t_argmax=np.where(ok, np.asarray(ct.argmax_time), np.inf),
        steps=np.asarray(res.num_steps),
        wall_s=wall,
        counts=count_reactions(crn).as_dict(),
        noncompetitive=bool(is_noncompetitive(crn)),
    )


def run_dataset(
    name: str,
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    t1: float,
    limits: dict | None = None,
    eps: float = 1e-3,
    progress: bool = True,
    **kwargs,
) -> tuple[dict, dict[str, VariantResult]]:
    """Compile `model`, reduce, simulate `x` through both CRNs, compare.

    Arguments:
        name: dataset name (for the report).
        model: a `BinaryMLP` or `(W, b)` pairs.
        x, y: evaluation inputs and labels.
        t1: simulated time.
        limits: optional `{"full": n, "reduced": m}`: simulate only the first n (m)
            examples through that CRN (the network is evaluated on all).
        eps: tolerance of the convergence time.
        **kwargs: passed to `simulate_batch` (rtol, atol, lanes, ...).

    Returns:
        `(report, variants)`: the JSON-able report of `jaxcrn reproduce` and the
        per-variant results (with output trajectories, for figures).
    """
    from ._nn import forward
    from ._nn2crn import network_params

    start = time.perf_counter()
    params = network_params(model)
    nn_out = forward(params, x)
    nn_pred = nn_out.argmax(1)
    full = nn_to_crn(params)
    crns = {"full": full, "reduced": reduce_crn(full)}
    limits = limits or {}
    variants: dict[str, VariantResult] = {}
    report: dict = {
        "dataset": name,
        "layers": [params[0][0].shape[0]] + [w.shape[1] for w, _ in params],
        "n_examples": int(len(x)),
        "nn_accuracy": float(np.mean(nn_pred == y)),
        "t1": float(t1),
        "eps": eps,
        "solver": {"rtol": kwargs.get("rtol", 1e-6), "atol": kwargs.get("atol", 1e-9)},
        "n_simulated": {},
        "crn_accuracy": {},
        "agreement": {},
        "max_abs_error": {},
        "counts": {},
        "noncompetitive": {},
        "convergence": {},
        "steps_median": {},
        "wall_s_variant": {},
        "disagreements": {},
        "paper": PAPER.get(name),
    }
    for key, crn in crns.items():
        n = min(len(x), limits.get(key, len(x)))
        v = simulate_variant(
            key, crn, x[:n], t1=t1, eps=eps, progress=progress, **kwargs
        )
        variants[key] = v
        finite = np.all(np.isfinite(v.outputs), axis=1)
        pred = np.where(finite, v.outputs.argmax(1), -1)
        agree = pred == nn_pred[:n]
        report["n_simulated"][key] = n
        report["crn_accuracy"][key] = float(np.mean(pred == y[:n]))
        report.setdefault("nn_accuracy_simulated", {})[key] = float(
            np.mean(nn_pred[:n] == y[:n])
        )
        report["agreement"][key] = int(agree.sum())
        report["max_abs_error"][key] = float(np.nanmax(np.abs(v.outputs - nn_out[:n])))
        report["counts"][key] = v.counts
        report["noncompetitive"][key] = v.noncompetitive
        report["convergence"][key] = {
            f"eps_{eps:g}": _stats(v.t_eps),
            "rel_0.01": _stats(v.t_rel),
            "argmax_stable": _stats(v.t_argmax),
            "steady_at_t1": int(v.converged.sum()),
        }
        report["steps_median"][key] = float(np.median(v.steps))
        report["wall_s_variant"][key] = v.wall_s
        report["disagreements"][key] = np.flatnonzero(~agree).tolist()
    report["wall_s"] = time.perf_counter() - start
    return report, variants


def _fmt_conv(c: dict) -> str:
    def f(v):
        return "> t1" if v is None else f"{v:.3g}"

    return f"{f(c['median'])} / {f(c['p90'])} / {f(c['max'])}"


def markdown_table(reports: list[dict]) -> str:
    """The README's results table, one column per dataset."""
    cols = [r["dataset"] for r in reports]
    rows: list[tuple[str, list[str]]] = []

    def add(label, fn):
        rows.append((label, [fn(r) for r in reports]))

    add("layers", lambda r: "-".join(map(str, r["layers"])))
    add(
        "NN accuracy (paper)",
        lambda r: (
            f"{100 * r['nn_accuracy']:.2f}% ({100 * r['paper']['accuracy']:.2f}%)"
            if r.get("paper")
            else ""
        ),
    )

    def crn_acc(r):
        nn = r.get("nn_accuracy_simulated", {})
        parts = []
        for k in ("full", "reduced"):
            s = f"{100 * r['crn_accuracy'][k]:.2f}%"
            if r["n_simulated"][k] != r["n_examples"] and k in nn:
                s += f" (NN {100 * nn[k]:.2f}% on these {r['n_simulated'][k]})"
            parts.append(s)
        return " / ".join(parts)

    add("CRN accuracy full / reduced", crn_acc)
    add(
        "CRN-NN argmax agreement full / reduced (paper)",
        lambda r: (
            " / ".join(
                f"{r['agreement'][k]}/{r['n_simulated'][k]}"
                for k in ("full", "reduced")
            )
            + (f" ({r['paper']['agreement']})" if r.get("paper") else "")
        ),
    )
    add(
        "max abs(CRN - NN) full / reduced",
        lambda r: " / ".join(
            f"{r['max_abs_error'][k]:.2g}" for k in ("full", "reduced")
        ),
    )
    add(
        "reactions, all: full / reduced",
        lambda r: " / ".join(
            str(r["counts"][k]["reactions"]) for k in ("full", "reduced")
        ),
    )
    add(
        "reactions, bimolecular: full / reduced",
        lambda r: " / ".join(
            str(r["counts"][k]["bimolecular"]) for k in ("full", "reduced")
        ),
    )
    add(
        "paper's counts (full / optimised)",
        lambda r: r["paper"]["reactions"] if r.get("paper") else "",
    )
    add(
        "species full / reduced",
        lambda r: " / ".join(
            str(r["counts"][k]["species"]) for k in ("full", "reduced")
        ),
    )
    add(
        "largest product stoichiometry full / reduced",
        lambda r: " / ".join(
            str(r["counts"][k]["max_product_stoichiometry"])
            for k in ("full", "reduced")
        ),
    )
    add("simulated time t1", lambda r: f"{r['t1']:g}")
    add(
        "wall time full / reduced (s)",
        lambda r: " / ".join(
            f"{r['wall_s_variant'][k]:.1f}" for k in ("full", "reduced")
        ),
    )
    add(
        "time to eps=1e-3, full: median / p90 / max",
        lambda r: _fmt_conv(r["convergence"]["full"][f"eps_{r['eps']:g}"]),
    )
    add(
        "time to eps=1e-3, reduced: median / p90 / max",
        lambda r: _fmt_conv(r["convergence"]["reduced"][f"eps_{r['eps']:g}"]),
    )
    for k in ("full", "reduced"):
        add(
            f"time to within 1% of final, {k}: median / p90 / max",
            lambda r, k=k: _fmt_conv(
                r["convergence"][k].get(
                    "rel_0.01", {"median": None, "p90": None, "max": None}
                )
            ),
        )
    add(
        "time to stable argmax, full: median / p90 / max",
        lambda r: _fmt_conv(r["convergence"]["full"]["argmax_stable"]),
    )
    add(
        "time to stable argmax, reduced: median / p90 / max",
        lambda r: _fmt_conv(r["convergence"]["reduced"]["argmax_stable"]),
    )
    header = "| | " + " | ".join(cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    body = ["| " + label + " | " + " | ".join(vals) + " |" for label, vals in rows]
    return "\n".join([header, sep, *body]) + "\n"


def write_json(path: str, obj, *, force: bool) -> None:
    """Write `obj` as strict JSON (NaN and inf as null), atomically."""
    from ._files import to_json, write_output

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_output(path, to_json(obj, indent=1), overwrite=force)
