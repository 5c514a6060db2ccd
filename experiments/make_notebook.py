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
        "it to a chemical reaction network, simulate the test set through the "
        "chemistry, look at the results as a table and as plots, and check that the "
        "chemistry computes the network (whatever the rate constants).",
    ),
    (
        "code",
        'import jax\njax.config.update("jax_enable_x64", True)\n'
        "import os, tempfile\nimport jax.numpy as jnp\nimport numpy as np\n"
        "import matplotlib.pyplot as plt\nimport jaxcrn\n\n"
        "data = jaxcrn.datasets.iris()   # shipped with the package\n"
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
        "net = jaxcrn.compile_crn(reduced)\n"
        "res = jaxcrn.simulate_batch(net, data.test.x, 30.0, saveat=151, "
        "progress=True)\n"
        "res = res.with_names(classes=data.class_names)  # outputs y0..y2: classes\n"
        'table = res.to_dataframe("final")   # one row per sample (pandas)\n'
        "table.head()",
    ),
    (
        "code",
        "nn = jaxcrn.forward(model, data.test.x)\n"
        'agree = table["argmax"].to_numpy() == nn.argmax(1)\n'
        'print(f"argmax agreement {agree.sum()}/{len(agree)}, max |CRN - NN| at t=30: '
        '{np.abs(res.outputs_final - nn).max():.3g}")\n'
        'res.to_dataframe().query("sample == 0").iloc[::30]   # trajectories',
    ),
    (
        "code",
        "axes = jaxcrn.plot.batch_outputs(res, samples=[0, 60, 120])  # argmax marked\n"
        "plt.show()",
    ),
    (
        "code",
        "# one sample with every species saved: concentrations against time\n"
        "one = jaxcrn.simulate(net, net.initial_state(data.test.x[60]), "
        "jnp.asarray(30.0), saveat=151)\n"
        "fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4))\n"
        'jaxcrn.plot.trajectories(one, ["M1_0", "M1_1", "A1_0n", "A1_1n"], ax=a)\n'
        "jaxcrn.plot.trajectories(one, ax=b)   # the outputs\nplt.show()",
    ),
    (
        "code",
        "# convergence times per sample, computed on device\n"
        "ct = jax.vmap(lambda t, o, f: jaxcrn.convergence_times(t, o, f, eps=1e-2))("
        "res.ts, res.outputs, res.outputs_final)\n"
        'jaxcrn.plot.convergence_histogram({"within 1e-2": ct.all_abs_time, '
        '"stable argmax": ct.argmax_time})\nplt.show()',
    ),
    (
        "code",
        "# results are files (npz, no pickle); the CRN is SBML for other tools\n"
        "folder = tempfile.mkdtemp()\n"
        'res.save(os.path.join(folder, "iris.npz"))\n'
        'back = jaxcrn.SimulationResult.load(os.path.join(folder, "iris.npz"))\n'
        'jaxcrn.save_sbml(reduced, os.path.join(folder, "iris.xml"))\n'
        'again = jaxcrn.load_sbml(os.path.join(folder, "iris.xml"))\n'
        "back.class_names, np.array_equal(back.outputs, res.outputs), "
        "len(again.reactions)",
    ),
    (
        "code",
        "# rate independence: random rate constants, same equilibrium\n"
        "rates = np.exp(np.random.default_rng(0).uniform(np.log(0.1), np.log(10), "
        "net.n_reactions))\n"
        "res2 = jaxcrn.simulate_batch(net.with_rates(rates), data.test.x, 1000.0)\n"
        "(res2.outputs_final.argmax(1) == nn.argmax(1)).sum()",
    ),
    (
        "code",
        "# the exact rate-independent equilibrium, no ODE solver:\n"
        "s = jaxcrn.stable_state(reduced, data.test.x[0])\n"
        '[s[f"Y{j}p"] - s[f"Y{j}n"] for j in range(3)], nn[0]',
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
    _final_progress_text(nb)
    out = os.path.join(root, "experiments", "notebooks", "quickstart.ipynb")
    nbformat.write(nb, out)
    print(f"wrote {out}")


def _final_progress_text(nb) -> None:
    """Progress widgets keep their final state in the notebook's metadata, but
    their plain-text fallback (shown where widgets are not rendered) is the bar as
    it was drawn first (0%): replace it with the final bar."""
    import html

    state = (
        nb.metadata.get("widgets", {})
        .get("application/vnd.jupyter.widget-state+json", {})
        .get("state", {})
    )

    def text(model_id: str) -> str:
        model = state.get(model_id, {})
        parts = []
        for child in model.get("state", {}).get("children", []):
            child_state = state.get(child.removeprefix("IPY_MODEL_"), {})
            if child_state.get("model_name") == "HTMLModel":
                parts.append(html.unescape(child_state["state"].get("value", "")))
        return " ".join(p.strip() for p in parts if p.strip())

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(
                "application/vnd.jupyter.widget-view+json"
            )
            if view and text(view["model_id"]):
                output["data"]["text/plain"] = text(view["model_id"])


if __name__ == "__main__":
    main()
