"""jaxcrn.plot: every function draws the data it is given and returns Axes."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import compile_crn, parse_crn, plot, simulate, simulate_batch


matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

TEXT = "X -> Y\nY -> Z  [k=0.5]\ninput x = X\noutput y = Y\noutput z = Z"


@pytest.fixture(scope="module")
def net():
    return compile_crn(parse_crn(TEXT))


@pytest.fixture(scope="module")
def batch(net):
    x = np.array([[1.0], [2.0], [0.5]])
    return simulate_batch(net, x, 6.0, saveat=13)


@pytest.fixture(scope="module")
def single(net):
    return simulate(
        net, net.initial_state(jnp.array([2.0])), jnp.asarray(6.0), saveat=13
    )


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_trajectories_draw_outputs_or_species(single):
    res = single
    ax = plot.trajectories(res)
    assert [ln.get_label() for ln in ax.get_lines()] == ["y", "z"]
    np.testing.assert_array_equal(
        ax.get_lines()[1].get_ydata(), np.asarray(res.outputs)[:, 1]
    )
    assert ax.get_ylabel() == "output value"
    ax = plot.trajectories(res, ["X", "z"])
    np.testing.assert_array_equal(
        ax.get_lines()[0].get_ydata(), np.asarray(res.ys)[:, 0]
    )
    assert ax.get_ylabel() == "value"
    with pytest.raises(KeyError, match="'W' is neither an output"):
        plot.trajectories(res, ["W"])


@pytest.mark.slow
def test_trajectories_of_one_sample_of_a_batch(batch):
    fig, ax = plt.subplots()
    assert plot.trajectories(batch, sample=1, ax=ax) is ax
    np.testing.assert_array_equal(
        ax.get_lines()[0].get_ydata(), np.asarray(batch.outputs)[1, :, 0]
    )
    with pytest.raises(ValueError, match="no species trajectories"):
        plot.trajectories(batch, ["X"])
    with pytest.raises(IndexError, match="sample 5 is out of range"):
        plot.trajectories(batch, sample=5)


def test_batch_outputs_mark_the_argmax(batch, single):
    axes = plot.batch_outputs(batch.with_names(classes=["Y wins", "Z wins"]))
    assert len(axes) == 3
    finals = np.asarray(batch.outputs)[:, -1, :]
    for k, ax in enumerate(axes):
        am = int(np.argmax(finals[k]))
        assert ax.get_title() == f"sample {k}: argmax {['Y wins', 'Z wins'][am]}"
        lines = ax.get_lines()
        assert lines[am].get_linewidth() > lines[1 - am].get_linewidth()
        marker = [ln for ln in lines if ln.get_marker() == "o"]
        assert len(marker) == 1
        assert marker[0].get_ydata()[0] == pytest.approx(finals[k, am])
    with pytest.raises(ValueError, match="needs a batched result"):
        plot.batch_outputs(single)
    with pytest.raises(ValueError, match="no samples to draw"):  # ZeroDivisionError
        plot.batch_outputs(batch, samples=[])


def test_outputs_muted_highlight():
    ts = np.linspace(0, 1, 4)
    vals = np.stack([ts * i for i in range(10)], axis=1)
    ax = plot.outputs(ts, vals, highlight=7, muted=True)
    colors = [ln.get_color() for ln in ax.get_lines()[:10]]
    assert colors[7] == plot.HIGHLIGHT
    assert set(colors[:7] + colors[8:]) == {"0.62"}


def test_convergence_histogram_counts():
    t = {"full": np.array([1.0, 1.5, 9.0, np.inf]), "reduced": np.array([0.5, 2.0])}
    ax = plot.convergence_histogram(t, bins=10)
    heights = [sum(p.get_height() for p in c) for c in ax.containers]
    assert heights == [3, 2]
    labels = [tx.get_text() for tx in ax.get_legend().get_texts()]
    assert labels == ["full (n=3, 1 not within t1)", "reduced (n=2)"]


def test_throughput_breaks_lines_at_missing_sizes():
    ax = plot.throughput(
        {"CPU": {1: 10.0, 10: 100.0, 100: 400.0}, "GPU": {1: 3.0, 100: 900.0}},
        colors={"GPU": "k"},
    )
    cpu, gpu = ax.get_lines()
    np.testing.assert_array_equal(cpu.get_ydata(), [10.0, 100.0, 400.0])
    # no segment joins 1 and 100: the value at 10 is missing
    assert np.isnan(gpu.get_ydata()[1]) and gpu.get_color() == "k"
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "samples / s"


def test_digit_shows_the_raw_image_with_a_colour_bar():
    img = np.arange(196.0) / 195
    ax = plot.digit(img)
    np.testing.assert_array_equal(ax.images[0].get_array(), img.reshape(14, 14))
    assert len(ax.figure.axes) == 2  # the image and its colour bar


def test_paper_figures_and_save(tmp_path):
    ts = np.linspace(0, 10, 21)
    traces = np.stack([np.tanh(ts / (i + 1)) * (i - 4) for i in range(10)], axis=1)
    axes = plot.digit_traces(np.ones(196), ts, traces, predicted=9, true=9, t_max=8)
    assert axes[1].get_lines()[9].get_color() == plot.HIGHLIGHT
    paths = plot.save_figure(axes, str(tmp_path / "fig3"))
    assert sorted(p.split("/")[-1] for p in paths) == ["fig3.pdf", "fig3.png"]
    before = (tmp_path / "fig3.png").read_bytes()
    with pytest.raises(FileExistsError, match="fig3.png already exists"):
        plot.save_figure(axes, str(tmp_path / "fig3"))  # refuses by default
    assert (tmp_path / "fig3.png").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["fig3.pdf", "fig3.png"]  # no temporaries
    plot.save_figure(axes, str(tmp_path / "fig3"), overwrite=True)
    # one format as a string: it was read as the formats "p", "n", "g"
    (one,) = plot.save_figure(axes, str(tmp_path / "one"), formats="png")
    assert one.endswith("one.png") and os.path.isfile(one)
    three = traces[:, :3]
    assert len(plot.full_vs_reduced(ts, three, three, class_names=list("abc"))) == 2
    ax = plot.misclassified(ts, three, true=0, predicted=2, class_names=list("abc"))
    assert ax.get_title() == "true a, predicted c"
    times = {"full": {"t_eps": ts, "t_rel": ts, "t_argmax": ts}}
    assert len(plot.convergence_histograms(times, dataset="x", eps=1e-3)) == 3
