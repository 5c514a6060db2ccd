"""Plots (matplotlib, from the `plot` extra; imported inside the functions)."""

import numpy as np


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'jaxcrn[plot]'."
        ) from e
    return plt


def plot_trajectories(result, network, *, species=None, ax=None, max_species=12):
    """Plot concentrations (or, if the network has outputs, outputs) against time.

    Arguments:
        result: a single-sample `SimulationResult` with saved states.
        network: the `MassActionNetwork` it came from (for names).
        species: names to plot; default: the outputs if declared, else the first
            `max_species` species.
        ax: an existing matplotlib axis.

    Returns:
        The matplotlib figure.
    """
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    else:
        fig = ax.figure
    ts = np.asarray(result.ts)
    if species is None and network.n_outputs and result.outputs is not None:
        outs = np.asarray(result.outputs)
        for i, name in enumerate(network.output_names):
            ax.plot(ts, outs[:, i], label=name)
        ax.set_ylabel("output value")
    else:
        if result.ys is None:
            raise ValueError("result has no saved states; simulate with save_species")
        ys = np.asarray(result.ys)
        names = list(species) if species is not None else network.species[:max_species]
        for name in names:
            ax.plot(ts, ys[:, network.index(name)], label=name)
        ax.set_ylabel("concentration")
    ax.set_xlabel("time")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def plot_batch_outputs(result, network, *, max_rows=8):
    """One panel per sample (up to `max_rows`): output values against time."""
    plt = _plt()
    n = min(max_rows, np.asarray(result.outputs).shape[0])
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True
    )
    ts = np.asarray(result.ts)
    outs = np.asarray(result.outputs)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= n:
            ax.axis("off")
            continue
        for i, name in enumerate(network.output_names):
            ax.plot(ts[k], outs[k, :, i], label=name)
        ax.set_title(f"row {k}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.supxlabel("time")
    fig.tight_layout()
    return fig
