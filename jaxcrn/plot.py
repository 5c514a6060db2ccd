"""Plots of simulation results, convergence times and benchmarks (matplotlib).

Every function draws into an `ax` you pass (or a new figure) and returns the
matplotlib `Axes` (an array of them for several panels), so plots compose:

```python
fig, (a, b) = plt.subplots(1, 2)
jaxcrn.plot.trajectories(res, ax=a)
jaxcrn.plot.convergence_histogram({"CRN": t}, ax=b)
```

matplotlib comes from the `plot` extra (`pip install 'jaxcrn[plot]'`) and is
imported only when a function is called.
"""

from collections.abc import Mapping, Sequence

import numpy as np


__all__ = [
    "batch_outputs",
    "convergence_histogram",
    "convergence_histograms",
    "digit",
    "digit_traces",
    "full_vs_reduced",
    "misclassified",
    "outputs",
    "save_figure",
    "throughput",
    "trajectories",
]

HIGHLIGHT = "#d62728"  # the predicted class in `outputs(..., muted=True)`


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "Plotting needs matplotlib: pip install 'jaxcrn[plot]'."
        ) from e
    return plt


def _ax(ax, figsize=(6.0, 3.6)):
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=figsize)
    return ax


def _one_sample(result, sample: int):
    """(ts, ys or None, outputs) of one sample of a single or batched result."""
    ts = np.asarray(result.ts)
    outs = np.asarray(result.outputs)
    ys = None if result.ys is None else np.asarray(result.ys)
    if np.ndim(result.status) == 0:
        return ts, ys, outs
    n = outs.shape[0]
    if not -n <= sample < n:
        raise IndexError(f"sample {sample} is out of range for a batch of {n}.")
    return ts[sample], None if ys is None else ys[sample], outs[sample]


def trajectories(
    result,
    names: Sequence[str] | None = None,
    *,
    sample: int = 0,
    ax=None,
    max_species: int = 12,
):
    """Concentrations or outputs of one sample against time.

    Arguments:
        result: a `SimulationResult` (one sample, or a batch: see `sample`).
        names: output or species names to draw; default: every output when the
            network has outputs, else the first `max_species` species.
        sample: which sample of a batched result.
        ax: the matplotlib Axes to draw in (default: a new figure).

    Returns:
        The Axes.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn, plot, simulate
        >>> net = compile_crn(parse_crn("A -> B\\ninit A = 1"))
        >>> res = simulate(net, net.y_init, jnp.asarray(3.0), saveat=31)
        >>> ax = plot.trajectories(res)
        >>> [line.get_label() for line in ax.get_lines()]
        ['A', 'B']
    """
    ax = _ax(ax)
    ts, ys, outs = _one_sample(result, sample)
    out_names = list(result.output_names) or [f"y{i}" for i in range(outs.shape[-1])]
    species = list(result.species_names)
    if names is None:
        names = out_names if out_names else species[:max_species]
    drawn_outputs = drawn_species = False
    for name in names:
        if name in out_names:
            ax.plot(ts, outs[:, out_names.index(name)], label=name)
            drawn_outputs = True
        elif name in species:
            if ys is None:
                raise ValueError(
                    f"{name!r} is a species, but the result holds no species "
                    "trajectories (simulate with save_species=True)."
                )
            ax.plot(ts, ys[:, species.index(name)], label=name)
            drawn_species = True
        else:
            raise KeyError(
                f"{name!r} is neither an output ({', '.join(out_names) or 'none'}) "
                f"nor a species of the result."
            )
    ax.set_xlabel("time")
    ax.set_ylabel(
        "output value"
        if drawn_outputs and not drawn_species
        else "concentration"
        if drawn_species and not drawn_outputs
        else "value"
    )
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def outputs(
    ts,
    values,
    *,
    names: Sequence[str] | None = None,
    highlight: int | None = None,
    muted: bool = False,
    ax=None,
    title: str = "",
):
    """Output traces `values` (times, outputs) against `ts`, one line per output.

    `highlight` draws that output thicker; with `muted`, the other outputs are
    thin and grey and the highlighted one has a colour of its own (`HIGHLIGHT`),
    for many classes (e.g. ten digits). A grey line marks 0.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import plot
        >>> ts = np.linspace(0, 1, 5)
        >>> ax = plot.outputs(ts, np.c_[ts, -ts], names=["a", "b"], highlight=0)
        >>> [line.get_linewidth() for line in ax.get_lines()[:2]]
        [2.4, 1.2]
    """
    ax = _ax(ax)
    values = np.asarray(values)
    ts = np.asarray(ts)
    n = values.shape[1]
    names = list(names) if names is not None else [f"y{i}" for i in range(n)]
    for i in range(n):
        kw: dict = {"lw": 2.4 if i == highlight else 1.2, "label": names[i]}
        if muted:
            kw["color"] = HIGHLIGHT if i == highlight else "0.62"
            kw["zorder"] = 3 if i == highlight else 2
        ax.plot(ts, values[:, i], **kw)
    ax.axhline(0.0, color="0.75", lw=0.6, zorder=1)
    ax.set_xlabel("time")
    ax.set_ylabel("output  y = [Y+] - [Y-]")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return ax


def _final_argmax(out: np.ndarray) -> int | None:
    last = out[-1]
    return int(np.argmax(last)) if last.size and np.all(np.isfinite(last)) else None


def batch_outputs(
    result,
    *,
    samples: Sequence[int] | None = None,
    max_samples: int = 8,
    class_names: Sequence[str] | None = None,
    axes=None,
):
    """One panel per sample of a batch: its output traces, the final argmax marked
    (thick line, a dot at the end and its name in the title).

    Arguments:
        result: a batched `SimulationResult` (from `simulate_batch`).
        samples: which samples (default: the first `max_samples`).
        class_names: names of the outputs as classes (default: the result's
            `class_names`, else its output names).
        axes: a sequence of Axes to draw in (default: a new grid, 4 per row).

    Returns:
        A NumPy array of Axes, one per sample drawn.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import compile_crn, parse_crn, plot, simulate_batch
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> res = simulate_batch(net, np.array([[1.0], [2.0]]), 5.0, saveat=11)
        >>> axes = plot.batch_outputs(res)
        >>> [ax.get_title() for ax in axes]
        ['sample 0: argmax y', 'sample 1: argmax y']
    """
    outs = np.asarray(result.outputs)
    ts = np.asarray(result.ts)
    if outs.ndim != 3:
        raise ValueError(
            "batch_outputs needs a batched result (simulate_batch); use "
            "plot.trajectories for one sample."
        )
    if samples is None:
        samples = list(range(min(max_samples, outs.shape[0])))
    samples = list(samples)
    if not samples:
        raise ValueError(
            "no samples to draw: the batch is empty or samples=[] was given; pass "
            "the indices of one or more samples."
        )
    names = list(
        class_names
        or result.class_names
        or result.output_names
        or [f"y{i}" for i in range(outs.shape[-1])]
    )
    if axes is None:
        cols = min(len(samples), 4)
        rows = (len(samples) + cols - 1) // cols
        fig, grid = _plt().subplots(
            rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False, sharex=True
        )
        flat = list(grid.ravel())
        for ax in flat[len(samples) :]:
            ax.axis("off")
        axes = flat[: len(samples)]
        fig.supxlabel("time")
    axes = np.asarray(axes, dtype=object).ravel()
    for ax, k in zip(axes, samples, strict=True):
        am = _final_argmax(outs[k])
        outputs(ts[k], outs[k], names=names, highlight=am, ax=ax)
        ax.set_xlabel("")
        ax.set_ylabel("")
        if am is None:
            ax.set_title(f"sample {k}: failed", fontsize=9)
        else:
            ax.plot(ts[k][-1], outs[k][-1, am], "o", color=f"C{am % 10}", ms=6)
            ax.set_title(f"sample {k}: argmax {names[am]}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[0].figure.tight_layout()
    return axes


def convergence_histogram(
    times,
    *,
    ax=None,
    bins: int = 40,
    xlabel: str = "convergence time",
):
    """Histograms of per-sample convergence times, one series per entry of `times`
    (a dict name -> array, or one array). `inf` (not settled within the simulated
    time) cannot be drawn and is counted in the legend instead.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import plot
        >>> ax = plot.convergence_histogram({"CRN": np.array([1.0, 2.0, np.inf])})
        >>> ax.get_legend().get_texts()[0].get_text()
        'CRN (n=2, 1 not within t1)'
    """
    ax = _ax(ax, (5.0, 3.4))
    if not isinstance(times, Mapping):
        times = {"samples": times}
    arrays = {k: np.asarray(v, float).ravel() for k, v in times.items()}
    finite = {k: v[np.isfinite(v)] for k, v in arrays.items()}
    hi = max((f.max() for f in finite.values() if f.size), default=1.0)
    edges = np.linspace(0, hi * 1.02 + 1e-9, bins + 1)
    for name, v in arrays.items():
        f = finite[name]
        never = v.size - f.size
        extra = f", {never} not within t1" if never else ""
        ax.hist(f, bins=edges, alpha=0.55, label=f"{name} (n={f.size}{extra})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def throughput(
    series: Mapping[str, Mapping[int | float, float]],
    *,
    ax=None,
    colors: Mapping[str, str] | None = None,
    linestyles: Mapping[str, str] | None = None,
    xlabel: str = "batch size",
    ylabel: str = "samples / s",
):
    """Throughput curves: for each series (label -> {batch size: samples/s}), a
    line over the batch sizes it was measured at, on log-log axes.

    Lines never bridge a gap: where a series lacks a batch size that another
    series has between two of its own, its line is broken there (only measured
    points are joined by a line). `colors` maps labels to colours so that a
    series keeps its colour across panels.

    Example:
        >>> from jaxcrn import plot
        >>> ax = plot.throughput({"CPU": {1: 10.0, 10: 80.0, 100: 300.0},
        ...                       "GPU": {1: 5.0, 100: 900.0}})
        >>> [len(line.get_xdata()) for line in ax.get_lines()]
        [3, 3]
    """
    ax = _ax(ax, (4.8, 3.8))
    grid = sorted({b for pts in series.values() for b in pts})
    for k, (label, pts) in enumerate(series.items()):
        xs = np.array(grid, float)
        ys = np.array([pts.get(b, np.nan) for b in grid], float)
        keep = np.isfinite(ys)
        first, last = np.flatnonzero(keep)[[0, -1]] if keep.any() else (0, -1)
        xs, ys = xs[first : last + 1], ys[first : last + 1]
        color = (colors or {}).get(label, f"C{k % 10}")
        style = (linestyles or {}).get(label, "-")
        ax.plot(xs, ys, style, color=color, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def digit(image, *, shape: tuple[int, int] | None = None, ax=None, title: str = ""):
    """An image (e.g. a 14 x 14 MNIST digit) as it is, with a colour bar.

    `image` is flat or 2-D; `shape` defaults to the nearest square. Values are
    shown unchanged (pass raw pixel intensities, not centred inputs).

    Example:
        >>> import numpy as np
        >>> from jaxcrn import plot
        >>> ax = plot.digit(np.linspace(0, 1, 196))
        >>> ax.images[0].get_array().shape
        (14, 14)
    """
    ax = _ax(ax, (3.6, 3.2))
    img = np.asarray(image, float)
    if shape is None:
        side = int(round(np.sqrt(img.size)))
        shape = img.shape if img.ndim == 2 else (side, img.size // side)
    im = ax.imshow(img.reshape(shape), cmap="gray_r", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="intensity")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------------------------
# The paper's figures (jaxcrn reproduce), built from the plots above.


def full_vs_reduced(
    ts, full, reduced, *, class_names=None, nn_output=None, title="", t_max=None
):
    """Figure 2: one input's output traces through the full and the reduced CRN,
    side by side (`full`, `reduced`: arrays (times, classes)); the final argmax
    is drawn thick. Returns the two Axes."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, out, name in zip(
        axes,
        (np.asarray(full), np.asarray(reduced)),
        ("full CRN (Algorithm 1)", "reduced CRN (Algorithm 2)"),
        strict=True,
    ):
        outputs(
            ts, out, names=class_names, highlight=_final_argmax(out), ax=ax, title=name
        )
        if nn_output is not None:
            for i, v in enumerate(nn_output):
                ax.axhline(v, color=f"C{i}", ls=":", lw=0.8)
        if t_max is not None:
            ax.set_xlim(0, t_max)
    axes[1].set_ylabel("")
    axes[1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return axes


def digit_traces(image, ts, traces, *, predicted, true, t_max=None, title=""):
    """Figure 3: a digit (raw pixel intensities, with a colour bar) beside its CRN
    output traces; the predicted class in a colour of its own, the others grey.
    Returns the two Axes."""
    plt = _plt()
    fig, (a0, a1) = plt.subplots(
        1, 2, figsize=(10.5, 3.8), gridspec_kw={"width_ratios": [1, 2.2]}
    )
    digit(image, ax=a0, title=f"input image (14 x 14), label {true}")
    traces = np.asarray(traces)
    names = [str(i) for i in range(traces.shape[1])]
    outputs(
        ts,
        traces,
        names=names,
        highlight=predicted,
        muted=True,
        ax=a1,
        title=f"CRN outputs: predicted class {predicted}",
    )
    ts = np.asarray(ts)
    end = ts[-1] if t_max is None else min(t_max, ts[-1])
    k = int(np.searchsorted(ts, end, side="right")) - 1
    a1.annotate(  # the predicted class named at the end of its line
        names[predicted],
        xy=(ts[k], traces[k, predicted]),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=12,
        fontweight="bold",
        color=HIGHLIGHT,
    )
    if t_max is not None:
        a1.set_xlim(0, t_max * 1.06)
    handles = [
        plt.Line2D([], [], color=HIGHLIGHT, lw=2.4, label=f"{predicted} (predicted)"),
        plt.Line2D([], [], color="0.62", lw=1.2, label="other classes"),
    ]
    a1.legend(handles=handles, fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return np.array([a0, a1], dtype=object)


def misclassified(ts, traces, *, true, predicted, class_names, title="", t_max=None):
    """Figure 4: a misclassified example's CRN output traces (the predicted class
    drawn thick). Returns the Axes."""
    ax = outputs(
        ts,
        traces,
        names=class_names,
        highlight=predicted,
        ax=_ax(None, (6.5, 3.8)),
        title=title or f"true {class_names[true]}, predicted {class_names[predicted]}",
    )
    if t_max is not None:
        ax.set_xlim(0, t_max)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def convergence_histograms(times: Mapping[str, Mapping], *, dataset: str, eps: float):
    """Histograms of per-sample convergence times, one series per CRN variant and
    one panel per measure: `times` maps a variant to a dict with arrays `t_eps`,
    `t_argmax` and optionally `t_rel`. Returns the Axes."""
    plt = _plt()
    panels = [("t_eps", f"time to |y - y_final| <= {eps:g}")]
    if all("t_rel" in v for v in times.values()):
        panels.append(("t_rel", "time to within 1% of y_final"))
    panels.append(("t_argmax", "time to stable argmax"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4))
    for ax, (key, label) in zip(axes, panels, strict=True):
        convergence_histogram(
            {name: v[key] for name, v in times.items()}, ax=ax, xlabel=label
        )
    fig.suptitle(f"{dataset}: per-example convergence times", fontsize=11)
    fig.tight_layout()
    return axes


def save_figure(
    figure, stem: str, formats=("png", "pdf"), *, overwrite: bool = False, dpi=150
) -> list[str]:
    """Save a figure (or the figure of an Axes / array of Axes) as `stem.png` and
    `stem.pdf`; returns the paths written. Every file is written or none (each
    staged in a temporary file and renamed into place), missing folders are
    created, and an existing file is an error unless `overwrite` (checked for
    every format before anything is written)."""
    from ._files import write_outputs

    fig = figure
    if isinstance(fig, np.ndarray):
        fig = fig.ravel()[0]
    fig = getattr(fig, "figure", fig)

    def render(ext):
        return lambda f: fig.savefig(f, format=ext, dpi=dpi, bbox_inches="tight")

    if isinstance(formats, str):  # "png" was read as the formats p, n, g
        formats = (formats,)
    files = {f"{stem}.{ext}": render(ext) for ext in formats}
    return write_outputs(files, overwrite=overwrite, make_parents=True)
