"""Build and execute experiments/notebooks/quickstart.ipynb (outputs stored).

python experiments/make_notebook.py
"""

import os

import nbformat
from nbclient import NotebookClient


CELLS = [
    (
        "markdown",
        "# jaxcrn quick start\n\nTrain a binary-weight network on IRIS, compile "
        "it to a chemical reaction network, simulate a batch with `jax.vmap`, plot the "
        "output traces and check that the chemistry computes the network.",
    ),
    (
        "code",
        'import jax\njax.config.update("jax_enable_x64", True)\n'
        "import jax.numpy as jnp\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
        "import jaxcrn\n\ndata = jaxcrn.datasets.iris()   # shipped with the package\n"
        "data.train.x.shape, data.class_names",
    ),
    (
        "code",
        'hidden, config = jaxcrn.preset("iris")\n'
        "model = jaxcrn.init_model((4, *hidden, 3), key=jax.random.PRNGKey(0))\n"
        "model, history = jaxcrn.train(model, data, config, progress=True)\n"
        'print(f"accuracy {jaxcrn.accuracy(model, data.test.x, data.test.y):.4f}, '
        "best epoch {history['best_epoch']}\")",
    ),
    (
        "code",
        "crn = jaxcrn.nn_to_crn(model)          # Algorithm 1\n"
        "reduced = jaxcrn.reduce_crn(crn)       # Algorithm 2\n"
        "print(jaxcrn.count_reactions(crn))\nprint(jaxcrn.count_reactions(reduced))\n"
        "print(jaxcrn.format_crn(reduced)[:400])",
    ),
    (
        "code",
        "net = jaxcrn.compile_crn(reduced)\nx = jnp.asarray(data.test.x)\n"
        "y0 = jax.vmap(net.initial_state)(x)   # dual-rail encoding of the inputs\n"
        "ts = jnp.linspace(0.0, 30.0, 151)\n"
        "run = jax.jit(jax.vmap(lambda y: jaxcrn.simulate(net, y, jnp.asarray(30.0), "
        "saveat=ts)))\nres = run(y0)\nres.outputs.shape   # (samples, times, outputs)",
    ),
    (
        "code",
        "fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)\n"
        "for ax, i in zip(axes, [0, 60, 120]):\n"
        "    for j, name in enumerate(data.class_names):\n"
        "        ax.plot(ts, res.outputs[i, :, j], label=name)\n"
        '    ax.set_title(f"example {i} ({data.class_names[data.test.y[i]]})"); '
        'ax.set_xlabel("time")\naxes[0].set_ylabel("[Y+] - [Y-]"); axes[0].legend(); '
        "plt.show()",
    ),
    (
        "code",
        "nn = jaxcrn.forward(model, data.test.x)\n"
        "crn_out = np.asarray(res.outputs_final)\n"
        "agree = crn_out.argmax(1) == nn.argmax(1)\n"
        'print(f"argmax agreement {agree.sum()}/{len(agree)}, max |CRN - NN| at t=30: '
        '{np.abs(crn_out - nn).max():.3g}")',
    ),
    (
        "code",
        "# the exact rate-independent equilibrium, no ODE solver:\n"
        "s = jaxcrn.stable_state(reduced, data.test.x[0])\n"
        '[s[f"Y{j}p"] - s[f"Y{j}n"] for j in range(3)], nn[0]',
    ),
    (
        "code",
        "# rate independence: random rate constants, same equilibrium\n"
        "rates = np.exp(np.random.default_rng(0).uniform(np.log(0.1), np.log(10), "
        "net.n_reactions))\n"
        "res2 = jaxcrn.simulate_batch(net.with_rates(rates), data.test.x, 1000.0, "
        "progress=False)\n"
        "(res2.outputs_final.argmax(1) == nn.argmax(1)).sum()",
    ),
    (
        "code",
        "# convergence times per sample, computed on device\n"
        "ct = jax.vmap(lambda t, o, f: jaxcrn.convergence_times(t, o, f, eps=1e-2))("
        "jnp.broadcast_to(ts, (len(x), len(ts))), res.outputs, res.outputs_final)\n"
        'print("median time to within 1e-2:", float(jnp.median(ct.all_abs_time)), '
        '"; to a stable argmax:", float(jnp.median(ct.argmax_time)))',
    ),
]


def main() -> None:
    nb = nbformat.v4.new_notebook()
    for kind, src in CELLS:
        make = (
            nbformat.v4.new_markdown_cell
            if kind == "markdown"
            else (nbformat.v4.new_code_cell)
        )
        nb.cells.append(make(src))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": root}}
    ).execute()
    out = os.path.join(root, "experiments", "notebooks", "quickstart.ipynb")
    nbformat.write(nb, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
