"""The one progress bar (tqdm.auto): on a terminal, in Jupyter, silent otherwise."""

import io
import sys
import threading
import time

import numpy as np
import pytest

from jaxcrn._progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch, capsys):
    """As if stderr were a terminal; returns what was written to stderr so far
    (pytest replaces sys.stderr at each test phase, so `visible` is patched)."""
    import jaxcrn._progress

    monkeypatch.setattr(jaxcrn._progress, "visible", lambda: True)
    written = []

    def read():
        written.append(capsys.readouterr().err)
        return "".join(written)

    return read


def test_visible_on_a_terminal_only(monkeypatch):
    from jaxcrn._progress import visible

    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert visible()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not visible()


def test_bar_on_a_terminal(terminal):
    with Progress(4, "simulating", enabled=True, unit="sample") as bar:
        assert bar.enabled
        bar.update(1)
        bar.update(3, "4/4 converged")
    text = terminal()
    assert "simulating" in text and "4/4" in text and "4/4 converged" in text


def test_silent_when_not_a_terminal(capsys):
    with Progress(4, "simulating", enabled=True) as bar:  # stderr: captured
        bar.update(4)
    assert not bar.enabled and bar.done == 4
    assert capsys.readouterr().err == ""


def test_off_unless_asked(terminal):
    with Progress(4, "simulating") as bar:
        bar.update(4)
    assert not bar.enabled and terminal() == ""


def test_updates_from_many_threads_are_counted(terminal):
    with Progress(8000, "work", enabled=True) as bar:
        threads = [
            threading.Thread(target=lambda: [bar.update(1) for _ in range(1000)])
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert bar.done == 8000 and bar._bar.n == 8000
    assert "8000/8000" in terminal()


def test_redraws_while_no_update_comes(terminal):
    with Progress(2, "long chunk", enabled=True, refresh=0.05):
        time.sleep(0.4)
        drawn = terminal().count("long chunk")
    assert drawn >= 3  # the elapsed time keeps moving during a long chunk


def test_simulate_batch_and_train_show_progress_on_a_terminal(terminal):
    import jax.random as jr

    from jaxcrn import (
        TrainConfig,
        compile_crn,
        datasets,
        init_model,
        parse_crn,
        simulate_batch,
        train,
    )

    net = compile_crn(parse_crn("X -> Y\ninput x = X\noutput y = Y"))
    simulate_batch(net, np.ones((5, 1)), 2.0, saveat=None, chunk_size=2, progress=True)
    text = terminal()
    assert "simulating" in text and "5/5" in text and "sample" in text
    model = init_model((4, 3), key=jr.PRNGKey(0))
    train(model, datasets.iris(), TrainConfig(epochs=3, batch_size=16), progress=True)
    text = terminal()
    assert "training" in text and "3/3" in text and "valid" in text


def _run_in_kernel(source: str):
    """Execute `source` in a fresh Jupyter kernel; returns the cell's outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return nb.cells[0].outputs


def _shown(outputs, label: str) -> bool:
    """A tqdm widget (ipywidgets) or a text bar naming `label` in the outputs."""
    for out in outputs:
        data = out.get("data", {})
        if "application/vnd.jupyter.widget-view+json" in data:
            return True
        text = out.get("text", "") + data.get("text/plain", "")
        if label in text:
            return True
    return False


def test_progress_appears_in_a_jupyter_kernel():
    outputs = _run_in_kernel(
        "from jaxcrn._progress import Progress, visible\n"
        "print('visible', visible())\n"
        "with Progress(3, 'simulating', enabled=True, unit='sample') as bar:\n"
        "    bar.update(3)\n"
    )
    assert any("visible True" in o.get("text", "") for o in outputs), outputs
    assert _shown(outputs, "simulating"), outputs


@pytest.mark.slow
def test_simulate_batch_and_train_show_progress_in_a_jupyter_kernel():
    outputs = _run_in_kernel(
        "import numpy as np, jax.random as jr\n"
        "from jaxcrn import (TrainConfig, compile_crn, datasets, init_model,\n"
        "                    parse_crn, simulate_batch, train)\n"
        "net = compile_crn(parse_crn('X -> Y\\ninput x = X\\noutput y = Y'))\n"
        "simulate_batch(net, np.ones((5, 1)), 2.0, progress=True)\n"
        "print('simulated')\n"
    )
    assert _shown(outputs, "simulating"), outputs
    outputs = _run_in_kernel(
        "import jax.random as jr\n"
        "from jaxcrn import TrainConfig, datasets, init_model, train\n"
        "train(init_model((4, 3), key=jr.PRNGKey(0)), datasets.iris(),\n"
        "      TrainConfig(epochs=3, batch_size=16), progress=True)\n"
        "print('trained')\n"
    )
    assert _shown(outputs, "training"), outputs
