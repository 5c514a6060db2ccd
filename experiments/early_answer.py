"""Networks whose chemistry answers early: fine-tune BinaryConnect networks with a
loss on the simulated CRN's outputs at a finite time T, through the ODE.

The compiled CRNs of Vasic et al. are exact only at equilibrium. Here a trained
binary network (experiments/models/{iris,virus}.npz) is fine-tuned on

    loss = mean over t in {T, 2T, 4T} of hinge(CRN outputs at t)
           + hinge(network outputs / 8)

where the first term simulates the full CRN (Algorithm 1, `jaxcrn.trainable_crn`)
from each training input to time 4T (Tsit5, rtol 1e-6, through
`jaxcrn.simulate_differentiable`, reverse mode with checkpointing) and the second is
the network's own squared hinge loss, which is also the CRN's output at equilibrium
(rate independence), on outputs divided by 8 (a margin of 8 where the outputs are
~10-20; with a margin of 1 nothing holds the correct samples in place, and training
for early answers loses equilibrium accuracy: `--nn-scale 1`). Gradients reach the
latent weights straight through the quantiser: the weights are the CRN's
stoichiometry. Optionally (`--learn-rates`) the
rate constants are learnt too, in log space, bounded to [0.01, 1] (all rates <= 1,
the paper's setting, so no speed-up comes from faster chemistry).

The model kept ("kept") is the epoch with the best CRN accuracy over {T, 2T, 4T}
on the selection split among those whose network (= equilibrium) accuracy there is
not below the starting network's (IRIS: all 150 rows, the paper's setting, in which
train = valid = test; virus: the 34 validation samples); "unconstrained", from the
same run, is the epoch with the best accuracy over {T, 2T, 4T} whatever its
equilibrium accuracy, which shows what early answers cost at equilibrium.

Before and after, on the test split (IRIS all 150 rows, virus the 104 test
samples), the full and the reduced CRN are simulated with `simulate_batch` to
t1 = 200 and we report: argmax accuracy at each T in {0.5, 1, 2, 5}, equilibrium
accuracy and agreement with the network, and the median and p90 time from which
the argmax stays final (on a 0.01-spaced grid up to t = 10, then 0.5).

    python experiments/early_answer.py [--datasets iris,virus] [--times 0.5,1,2,5]
        [--epochs 40,virus=15] [--lr 0.01] [--nn-weight 1] [--nn-scale 8]
        [--learn-rates] [--out results/early_answer.json]
        [--figure results/figures/early_answer.png]
    python experiments/early_answer.py --table results/early_answer.json
"""

import argparse
import json
import os
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T_EVAL = (0.5, 1.0, 2.0, 5.0)
T1 = 200.0
GRID = np.unique(
    np.concatenate([np.linspace(0.0, 10.0, 1001), np.arange(10.0, T1 + 0.25, 0.5)])
)
RATE_MIN = 0.01
TOL = dict(rtol=1e-6, atol=1e-9)


def _splits(name):
    data = jaxcrn.datasets.load(name)
    if name == "iris":  # the paper's setting: train = valid = test = all 150 rows
        return data.train, data.train, data.test
    return data.train, data.valid, data.test


# ------------------------------------------------------------------- evaluation


def _argmax_curve(outputs, y):
    return (np.argmax(outputs, axis=-1) == y[:, None]).mean(axis=0)


def evaluate(model, rates, split):
    """Full and reduced CRN through simulate_batch to T1: accuracy over time and
    at each T, equilibrium accuracy and agreement, stable-argmax times."""
    x, y = np.asarray(split.x), np.asarray(split.y)
    nn = jaxcrn.forward(model, x).argmax(1)
    full = jaxcrn.nn_to_crn(model)
    if rates is not None:
        full = full.with_rates(np.asarray(rates).tolist())
    out = {"nn_accuracy": float(np.mean(nn == y))}
    curves = {}
    for kind, crn in (("full", full), ("reduced", jaxcrn.reduce_crn(full))):
        net = jaxcrn.compile_crn(crn)
        res = jaxcrn.simulate_batch(net, x, T1, saveat=GRID, progress=False, **TOL)
        final = np.asarray(res.outputs_final).argmax(1)
        outputs = np.asarray(res.outputs)
        curve = _argmax_curve(outputs, y)
        curves[kind] = curve
        times = np.asarray(
            jax.vmap(lambda o, f: jaxcrn.convergence_times(GRID, o, f).argmax_time)(
                jnp.asarray(outputs), jnp.asarray(res.outputs_final)
            )
        )
        out[kind] = dict(
            accuracy_at={
                str(t): float(curve[np.argmin(np.abs(GRID - t))]) for t in T_EVAL
            },
            equilibrium_accuracy=float(np.mean(final == y)),
            agreement=int(np.sum(final == nn)),
            samples=int(len(y)),
            ok=int(np.sum(np.asarray(res.status) == 0)),
            converged=int(np.sum(np.asarray(res.converged))),
            argmax_time_median=float(np.median(times)),
            argmax_time_p90=float(np.percentile(times, 90)),
            argmax_time_max=float(np.max(times)),
            reactions=len(crn.reactions),
            species=len(crn.species),
        )
    return out, curves


# --------------------------------------------------------------------- training


def _hinge(outputs, labels):
    t = 2 * jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype) - 1
    return jnp.mean(jnp.square(jnp.maximum(0, 1 - t * outputs)))


HORIZON = (1.0, 2.0, 4.0)  # the loss asks for the right answer at T, 2T and 4T


def _crn_outputs(model, log_rates, x, t, learn_rates):
    """Outputs of the full CRN at T, 2T and 4T: (batch, 3, outputs)."""
    rates = jnp.exp(log_rates) if learn_rates else None
    net = jaxcrn.trainable_crn(model, rates)
    ts = t * jnp.asarray(HORIZON)
    res = jaxcrn.simulate_differentiable(
        net, x, ts[-1], saveat=ts, solver=diffrax.Tsit5(), save_species=False, **TOL
    )
    return res.outputs, res.status


def _loss(params, x, y, t, learn_rates, nn_weight, nn_scale):
    model, log_rates = params
    crn_out, status = _crn_outputs(model, log_rates, x, t, learn_rates)
    nn_out = jax.vmap(model)(x)
    early = jnp.mean(jnp.stack([_hinge(crn_out[:, k], y) for k in range(len(HORIZON))]))
    late = _hinge(nn_out / nn_scale, y)
    return early + nn_weight * late, jnp.sum(status != 0)


@eqx.filter_jit
def _step(params, opt_state, x, y, t, optimizer, learn_rates, nn_weight, nn_scale):
    (loss, failed), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(
        params, x, y, t, learn_rates, nn_weight, nn_scale
    )
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(
            grads, opt_state, eqx.filter(params, eqx.is_array)
        )
        params = eqx.apply_updates(params, updates)
    model, log_rates = params
    layers = tuple(
        eqx.tree_at(lambda l: l.weight, layer, jnp.clip(layer.weight, -1, 1))
        for layer in model.layers
    )
    model = eqx.tree_at(lambda m: m.layers, model, layers)
    log_rates = jnp.clip(log_rates, np.log(RATE_MIN), 0.0)
    return (model, log_rates), opt_state, loss, failed


@eqx.filter_jit
def _selection_score(params, x, y, t, learn_rates):
    """Mean argmax accuracy of the CRN at T, 2T, 4T; the network's accuracy."""
    model, log_rates = params
    crn_out, status = _crn_outputs(model, log_rates, x, t, learn_rates)
    acc_t = jnp.mean(jnp.argmax(crn_out, -1) == y[:, None])
    acc_nn = jnp.mean(jnp.argmax(jax.vmap(model)(x), -1) == y)
    return acc_t, acc_nn, jnp.sum(status != 0)


def fine_tune(
    model,
    train,
    select,
    t,
    *,
    epochs,
    batch,
    lr,
    learn_rates,
    seed,
    latent,
    nn_weight,
    nn_scale,
):
    """Adam on the latent weights (clipped to [-1, 1]), biases and log rates."""
    n_rates = len(jaxcrn.nn_to_crn(model).reactions)
    # shrink the saturated latent weights (all at +-1) so that a sign can flip in a
    # few steps; the quantised network is unchanged
    layers = tuple(
        eqx.tree_at(lambda l: l.weight, layer, jnp.sign(layer.weight) * latent)
        for layer in model.layers
    )
    model = eqx.tree_at(lambda m: m.layers, model, layers)
    params = (model, jnp.zeros(n_rates))
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(eqx.filter(params, eqx.is_array))
    xs, ys = jnp.asarray(train.x), jnp.asarray(train.y)
    xv, yv = jnp.asarray(select.x), jnp.asarray(select.y)
    tt = jnp.asarray(t)
    rng = np.random.default_rng(seed)
    n = xs.shape[0]
    size = min(batch, n)
    acc_t, acc_nn0, _ = _selection_score(params, xv, yv, tt, learn_rates)
    # keep the epoch with the best early accuracy among those whose network (=
    # equilibrium) accuracy on the selection split is at least the start's
    best = (float(acc_t), 0, params)
    best_any = (float(acc_t), 0, params)  # the same without the constraint
    log = [dict(epoch=0, acc_t=float(acc_t), acc_nn=float(acc_nn0))]
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        losses = []
        for k in range(n // size):
            idx = order[k * size : (k + 1) * size]
            params, opt_state, loss, failed = _step(
                params, opt_state, xs[idx], ys[idx], tt, optimizer, learn_rates,
                nn_weight, nn_scale,
            )  # fmt: skip
            if int(failed):
                raise RuntimeError(f"{int(failed)} simulations failed at epoch {epoch}")
            losses.append(float(loss))
        acc_t, acc_nn, _ = _selection_score(params, xv, yv, tt, learn_rates)
        log.append(
            dict(
                epoch=epoch,
                loss=float(np.mean(losses)),
                acc_t=float(acc_t),
                acc_nn=float(acc_nn),
            )
        )
        if float(acc_nn) >= float(acc_nn0) and float(acc_t) > best[0]:
            best = (float(acc_t), epoch, params)
        if float(acc_t) > best_any[0]:
            best_any = (float(acc_t), epoch, params)

    def unpack(choice):
        model, log_rates = choice[2]
        rates = np.exp(np.asarray(log_rates)) if learn_rates else None
        return model, rates, choice[1]

    return {"kept": unpack(best), "unconstrained": unpack(best_any)}, log


# ------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="iris,virus")
    ap.add_argument("--times", default="0.5,1,2,5")
    ap.add_argument(
        "--epochs",
        default="40,virus=15",
        help="epochs per dataset: a default, then NAME=N overrides",
    )
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--latent", type=float, default=0.1)
    ap.add_argument("--learn-rates", action="store_true")
    ap.add_argument("--nn-weight", type=float, default=1.0)
    ap.add_argument(
        "--nn-scale",
        type=float,
        default=8.0,
        help="the network's hinge loss on outputs / NN_SCALE (a margin of NN_SCALE)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--table",
        metavar="JSON",
        help="print the markdown table of a results file and exit (no training)",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results", "early_answer.json"))
    ap.add_argument(
        "--figure", default=os.path.join(HERE, "results", "figures", "early_answer.png")
    )
    args = ap.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)), end="")
        return
    times = [float(t) for t in args.times.split(",")]
    epochs = {}
    for part in args.epochs.split(","):
        key, _, value = part.rpartition("=")
        epochs[key or "*"] = int(value)
    results = dict(
        command="python experiments/early_answer.py " + " ".join(sys.argv[1:]),
        settings=dict(
            epochs=args.epochs,
            batch=args.batch,
            lr=args.lr,
            latent=args.latent,
            nn_weight=args.nn_weight,
            nn_scale=args.nn_scale,
            horizon=HORIZON,
            learn_rates=args.learn_rates,
            seed=args.seed,
            t1=T1,
            rate_min=RATE_MIN,
            solver="Tsit5",
            **TOL,
        ),
        datasets={},
    )
    curves = {}
    for name in args.datasets.split(","):
        train, select, test = _splits(name)
        model = jaxcrn.load_model(
            os.path.join(HERE, "experiments", "models", f"{name}.npz"),
            dtype=jnp.float64,
        )
        t0 = time.perf_counter()
        before, c_before = evaluate(model, None, test)
        print(
            name,
            "before",
            json.dumps(before),
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        entry = dict(before=before, after={})
        curves[name] = {"before": c_before}
        for t in times:
            t0 = time.perf_counter()
            chosen, log = fine_tune(
                model,
                train,
                select,
                t,
                epochs=epochs.get(name, epochs.get("*", 40)),
                batch=args.batch,
                lr=args.lr,
                learn_rates=args.learn_rates,
                seed=args.seed,
                latent=args.latent,
                nn_weight=args.nn_weight,
                nn_scale=args.nn_scale,
            )
            train_s = time.perf_counter() - t0
            entry["after"][str(t)] = dict(train_seconds=train_s, log=log)
            for selection, (tuned, rates, epoch) in chosen.items():
                after, c_after = evaluate(tuned, rates, test)
                flips = sum(
                    int(np.sum(np.asarray(a.weight >= 0) != np.asarray(b.weight >= 0)))
                    for a, b in zip(model.layers, tuned.layers)
                )
                after.update(
                    best_epoch=epoch,
                    weight_flips=flips,
                    rates=None if rates is None else np.asarray(rates).tolist(),
                    rates_min=None if rates is None else float(rates.min()),
                )
                entry["after"][str(t)][selection] = after
                if selection == "kept":
                    curves[name][str(t)] = c_after
                print(name, "T", t, selection, json.dumps(after), flush=True)
        results["datasets"][name] = entry
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    _figure(curves, args.figure)


def markdown(results) -> str:
    """The README table: per dataset, T and CRN, accuracy at T, equilibrium
    accuracy and stable-argmax times, before and after (kept / unconstrained)."""
    lines = [
        "| dataset | T | CRN | accuracy at T: before / kept / unconstrained "
        "| equilibrium accuracy: before / kept / unconstrained "
        "| stable argmax, median (p90): before / kept / unconstrained |",
        "|---|---|---|---|---|---|",
    ]

    def pct(x):
        return f"{100 * x:.1f}%"

    def times(d):
        return f"{d['argmax_time_median']:.2f} ({d['argmax_time_p90']:.2f})"

    for name, entry in results["datasets"].items():
        before = entry["before"]
        for t, after in entry["after"].items():
            kept, free = after["kept"], after["unconstrained"]
            for kind in ("full", "reduced"):
                b, k, u = before[kind], kept[kind], free[kind]
                lines.append(
                    f"| {name} | {float(t):g} | {kind} "
                    f"| {pct(b['accuracy_at'][t])} / **{pct(k['accuracy_at'][t])}** / "
                    f"{pct(u['accuracy_at'][t])} "
                    f"| {pct(b['equilibrium_accuracy'])} / "
                    f"**{pct(k['equilibrium_accuracy'])}** / "
                    f"{pct(u['equilibrium_accuracy'])} "
                    f"| {times(b)} / **{times(k)}** / {times(u)} |"
                )
    return "\n".join(lines) + "\n"


def _figure(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, c in curves[name].items():
            label = "before" if key == "before" else f"after, T = {key}"
            style = dict(color="k", lw=2) if key == "before" else dict(lw=1.3)
            (line,) = ax.plot(GRID, c["full"], label=f"{label} (full)", **style)
            ax.plot(
                GRID,
                c["reduced"],
                ls="--",
                color=line.get_color(),
                lw=style["lw"] * 0.8,
            )
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlim(0, T1)
        ax.set_xlabel("time")
        ax.set_ylabel("CRN argmax accuracy")
        ax.set_title(f"{name}: solid full CRN, dashed reduced")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    main()
