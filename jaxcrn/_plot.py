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


def save_figure(fig, stem: str, formats=("png", "pdf"), *, force: bool = True):
    """Save `fig` as `stem.png` and `stem.pdf`; returns the paths written."""
    import os

    paths = []
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    for ext in formats:
        path = f"{stem}.{ext}"
        if os.path.exists(path) and not force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite it.")
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _plot_outputs(ax, ts, outputs, class_names, *, highlight=None, title=""):
    for i in range(outputs.shape[1]):
        name = class_names[i] if class_names else f"y{i}"
        lw = 2.2 if highlight == i else 1.2
        ax.plot(ts, outputs[:, i], lw=lw, label=name)
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("time")
    ax.set_ylabel("output  y = [Y+] - [Y-]")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def figure_full_vs_reduced(
    ts, full, reduced, *, class_names=None, nn_output=None, title="", t_max=None
):
    """Figure 2: output trajectories of one input through the full and the reduced
    CRN, side by side (`full`, `reduced`: arrays (times, classes))."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, out, name in zip(
        axes,
        (full, reduced),
        ("full CRN (Algorithm 1)", "reduced CRN (Algorithm 2)"),
        strict=True,
    ):
        _plot_outputs(
            ax, ts, out, class_names, title=name, highlight=int(np.argmax(out[-1]))
        )
        if nn_output is not None:
            for i, v in enumerate(nn_output):
                ax.axhline(v, color=f"C{i}", ls=":", lw=0.8)
        if t_max is not None:
            ax.set_xlim(0, t_max)
    axes[1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def figure_digit_traces(image, ts, outputs, *, predicted, true, t_max=None, title=""):
    """Figure 3: a 14x14 MNIST digit beside its CRN output traces, the predicted
    class marked."""
    plt = _plt()
    fig, (a0, a1) = plt.subplots(
        1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 2.4]}
    )
    a0.imshow(np.asarray(image).reshape(14, 14), cmap="gray_r")
    a0.set_title(f"input (14x14), label {true}", fontsize=10)
    a0.axis("off")
    _plot_outputs(
        a1,
        ts,
        outputs,
        [str(i) for i in range(outputs.shape[1])],
        highlight=predicted,
        title=f"CRN outputs: predicted {predicted}",
    )
    a1.annotate(
        f"{predicted}",
        xy=(ts[-1], outputs[-1, predicted]),
        xytext=(5, 0),
        textcoords="offset points",
        fontsize=12,
        fontweight="bold",
        color=f"C{predicted}",
    )
    if t_max is not None:
        a1.set_xlim(0, t_max)
    a1.legend(fontsize=7, ncol=2, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def figure_misclassified(
    ts, outputs, *, true, predicted, class_names, title="", t_max=None
):
    """Figure 4: a misclassified example's CRN output traces."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    _plot_outputs(
        ax,
        ts,
        outputs,
        class_names,
        highlight=predicted,
        title=title or f"true {class_names[true]}, predicted {class_names[predicted]}",
    )
    if t_max is not None:
        ax.set_xlim(0, t_max)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_convergence_hist(times: dict, *, dataset: str, eps: float):
    """Histograms of per-sample convergence times, one series per CRN variant.

    `times` maps a variant name to a dict with arrays `t_eps`, `t_argmax` and
    optionally `t_rel`; `inf` (not settled within t1) is counted in the legend."""
    plt = _plt()
    panels = [("t_eps", f"time to |y - y_final| <= {eps:g}")]
    if all("t_rel" in v for v in times.values()):
        panels.append(("t_rel", "time to within 1% of y_final"))
    panels.append(("t_argmax", "time to stable argmax"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4))
    for ax, (key, label) in zip(axes, panels, strict=True):
        finite = [np.asarray(v[key])[np.isfinite(v[key])] for v in times.values()]
        hi = max((f.max() for f in finite if f.size), default=1.0)
        bins = np.linspace(0, hi * 1.02 + 1e-9, 40)
        for (name, v), f in zip(times.items(), finite, strict=True):
            never = np.asarray(v[key]).size - f.size
            extra = f", {never} not within t1" if never else ""
            ax.hist(f, bins=bins, alpha=0.55, label=f"{name} (n={f.size}{extra})")
        ax.set_xlabel(label)
        ax.set_ylabel("examples")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{dataset}: per-example convergence times", fontsize=11)
    fig.tight_layout()
    return fig
