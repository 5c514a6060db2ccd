"""Ensembles and scale-out: rate scans (`jaxcrn.scan`), per-sample rates through the
engine, verify's rate sets as one batch, result stores with resume, and, in
subprocesses (`slow` and `scale`, run by .ci/run), two devices, two processes and
runs interrupted by SIGINT and SIGKILL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxcrn import (
    SimulationResult,
    compile_crn,
    load_crn,
    nn_to_crn,
    parse_crn,
    scan,
    simulate_batch,
    verify,
)
from jaxcrn._batch.store import Store
from jaxcrn._cli import main

from .helpers import random_params


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
DECAY = "A -> B\nB -> C  [k=2]\ninit A = 1"
FIELDS = ("ts", "outputs", "y_final", "outputs_final", "t_final", "status")
FIELDS += ("converged", "t_converged", "num_steps", "num_rejected")


def assert_identical(a, b):
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.fixture(scope="module")
def chain():  # A -> B -> C: B(t) has a closed form in both rates
    return compile_crn(parse_crn(DECAY))


@pytest.fixture(scope="module")
def relu():
    return compile_crn(load_crn(os.path.join(EXAMPLES, "relu.crn")))


# ------------------------------------------------------------------ jaxcrn.scan


def test_log_uniform_is_log_uniform_and_seeded():
    crn = parse_crn(DECAY)
    r = scan.log_uniform(crn, 20_000, 0.1, 10.0, seed=3)
    assert r.shape == (20_000, 2)
    assert r.min() >= 0.1 and r.max() <= 10.0
    # log10 uniform on [-1, 1]: mean 0, variance 1/3, a quarter per half-decade
    u = np.log10(r)
    assert abs(u.mean()) < 0.02 and abs(u.var() - 1 / 3) < 0.02
    np.testing.assert_allclose(np.mean(u < -0.5), 0.25, atol=0.01)
    np.testing.assert_array_equal(r, scan.log_uniform(crn, 20_000, seed=3))
    assert not np.array_equal(r, scan.log_uniform(crn, 20_000, seed=4))
    # the same stream as one set at a time (what verify drew before)
    rng = np.random.default_rng(3)
    loop = [np.exp(rng.uniform(np.log(0.1), np.log(10.0), 2)) for _ in range(5)]
    np.testing.assert_array_equal(r[:5], loop)
    around = scan.log_uniform(crn, 5000, factor=4.0, seed=0)
    ratio = around / np.array([1.0, 2.0])
    assert ratio.min() >= 0.25 and ratio.max() <= 4.0
    assert abs(np.log(ratio).mean()) < 0.05


def test_grid_and_one_at_a_time():
    crn = parse_crn("A -> B\nB -> C  [k=2]\nC + A -> D  [k=3]")
    g = scan.grid(crn, {"k0": [1.0, 5.0], "C + A -> D": [0.1, 0.2, 0.3]})
    assert g.shape == (6, 3)
    np.testing.assert_array_equal(g[:, 1], 2.0)  # untouched
    np.testing.assert_array_equal(g[:, 0], [1, 1, 1, 5, 5, 5])
    np.testing.assert_array_equal(g[:, 2], [0.1, 0.2, 0.3] * 2)
    o = scan.one_at_a_time(crn, 10.0)
    assert o.shape == (7, 3)
    np.testing.assert_array_equal(o[0], [1.0, 2.0, 3.0])
    changed = o[1:] != o[0]
    np.testing.assert_array_equal(changed.sum(axis=1), 1)  # one at a time
    np.testing.assert_allclose(o[1:][changed] / np.repeat(o[0], 2), [10, 0.1] * 3)
    net = compile_crn(crn)  # a compiled network: indices and ids
    np.testing.assert_array_equal(scan.one_at_a_time(net, 10.0), o)


def test_reaction_names_and_errors():
    crn = parse_crn("A + B <=> C\nC -> D")
    assert [scan.reaction_index(crn, n) for n in (0, "1", "k2", "R2")] == [0, 1, 2, 2]
    assert scan.reaction_index(crn, "B+A->C") == 0  # spaces, order within a side
    assert scan.reaction_index(crn, "C -> A + B") == 1
    for name, match in [
        (3, "has 3 reactions"),
        ("k9", "has 3 reactions"),
        ("D -> C", "no such reaction"),
        ("A ->", "reaction 'A ->'"),
        ("rate", "expected an index"),
        (True, "int or a string"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            scan.reaction_index(crn, name)
    with pytest.raises(ValueError, match="needs the CRN"):
        scan.reaction_index(compile_crn(crn), "C -> D")
    with pytest.raises(ValueError, match="named twice"):
        scan.grid(crn, {0: [1.0], "k0": [2.0]})
    with pytest.raises(ValueError, match="not a positive finite"):
        scan.grid(crn, {0: [1.0, -1.0]})
    with pytest.raises(ValueError, match="low = 2"):
        scan.log_uniform(crn, 3, 2.0, 1.0)
    with pytest.raises(ValueError, match="positive integer"):
        scan.log_uniform(crn, 0)
    with pytest.raises(ValueError, match="pass one or the other"):
        scan.log_uniform(crn, 3, low=100.0, high=1000.0, factor=2.0)  # was: factor
    x, r = scan.cross(np.arange(6.0).reshape(3, 2), np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(x[3:], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(r[:, 0], [1, 1, 1, 2, 2, 2])


def test_rate_grid_through_the_engine_matches_the_closed_form(chain):
    """Every lane its own rates: B(t) = k1/(k2-k1) (e^-k1 t - e^-k2 t)."""
    rates = scan.grid(chain, {0: np.geomspace(0.2, 5.0, 7), 1: [0.5, 3.0]})
    res = simulate_batch(
        chain,
        None,
        2.0,
        rates=rates,
        saveat=None,
        keep_states=True,
        rtol=1e-9,
        atol=1e-12,
    )
    k1, k2 = rates[:, 0], rates[:, 1]
    b = k1 / (k2 - k1) * (np.exp(-k1 * 2.0) - np.exp(-k2 * 2.0))
    np.testing.assert_allclose(res.y_final[:, chain.index("B")], b, rtol=1e-6)


# ------------------------------------------------------------------ verify


@pytest.mark.slow
def test_rescaled_rates_reach_the_same_state(chain):
    """What verify's one batch relies on: rates r / m simulated to t1 give the
    state that rates r give at t1 / m (mass action has no other time scale)."""
    rates = scan.log_uniform(chain, 6, seed=1)
    m = rates.min(axis=1)
    tol = dict(saveat=None, keep_states=True, rtol=1e-10, atol=1e-13)
    scaled = simulate_batch(chain, None, 1.5, rates=rates / m[:, None], **tol)
    for k in range(6):
        direct = simulate_batch(
            chain.with_rates(rates[k]), None, 1.5 / m[k], y0=chain.y_init, **tol
        )
        np.testing.assert_allclose(
            scaled.y_final[k], direct.y_final[0], rtol=1e-7, atol=1e-10
        )


@pytest.mark.slow
@pytest.mark.scale
def test_verify_rate_sets_in_one_batch_equal_separate_runs(tmp_path):
    """verify's rate sets, one batch, against a direct simulation of each set to
    t1 / min(rates); then the same report again from its store."""
    params = random_params([2, 3, 2], np.random.default_rng(5))
    crn = nn_to_crn(params)
    x = np.random.default_rng(6).normal(size=(5, 2))
    tol = dict(rtol=1e-9, atol=1e-11, solver="tsit5", max_steps=100_000)
    kw = dict(t1=30.0, rate_samples=3, seed=2, progress=False, chunk_size=4, **tol)
    rep = verify(params, crn, x, store=tmp_path / "v", **kw)
    assert sorted(os.listdir(tmp_path / "v")) == ["main", "rates"]
    assert len(rep.rate_samples) == 3
    net = compile_crn(crn)
    rates = scan.log_uniform(net, 3, seed=2)
    for k, rs in enumerate(rep.rate_samples):
        assert rs.t1 == pytest.approx(30.0 / rates[k].min())
        assert rs.rates_min == rates[k].min() and rs.rates_max == rates[k].max()
        direct = simulate_batch(net.with_rates(rates[k]), x, rs.t1, saveat=None, **tol)
        err = np.max(np.abs(direct.outputs_final - rep.nn_outputs))
        change = np.max(np.abs(direct.outputs_final - rep.crn_outputs))
        assert rs.max_abs_error == pytest.approx(err, rel=1e-4, abs=1e-7)
        assert rs.max_change == pytest.approx(change, rel=1e-4, abs=1e-7)
        assert rs.ok == 5
    again = verify(params, crn, x, store=tmp_path / "v", resume=True, **kw)
    np.testing.assert_array_equal(again.crn_outputs, rep.crn_outputs)
    assert again.rate_samples == rep.rate_samples


# ------------------------------------------------------------------ stores


def test_store_writes_every_chunk_and_resumes_to_the_same_result(relu, tmp_path):
    x = np.linspace(-2, 2, 23)[:, None]
    kw = dict(chunk_size=5, saveat=7, workers=1)
    ref = simulate_batch(relu, x, 20.0, **kw)
    path = tmp_path / "store"
    stored = simulate_batch(relu, x, 20.0, store=path, **kw)
    assert_identical(stored, ref)
    assert sorted(os.listdir(path)) == ["chunks", "index.json", "store.json"]
    assert sorted(os.listdir(path / "chunks")) == [f"{k:06d}.npz" for k in range(5)]
    index = json.loads((path / "index.json").read_text())
    assert index["done"] == [0, 1, 2, 3, 4] and index["samples_done"] == 23
    # a run killed after chunks 0 and 3: chunk 1 written but not listed, chunk 2
    # half-written (a temporary), chunk 4 missing
    index["done"] = [0, 3]
    (path / "index.json").write_text(json.dumps(index))
    (path / "chunks" / "000001.npz").write_bytes(b"junk: never listed, never read")
    (path / "chunks" / ".000002.npz.abc.tmp").write_bytes(b"PK\x03\x04 half")
    os.remove(path / "chunks" / "000004.npz")
    st = Store(
        path, json.loads((path / "store.json").read_text()) | {}, 23, 5, resume=True
    )
    assert st.done() == {0, 3} and st.samples_done() == 10
    np.testing.assert_array_equal(
        np.flatnonzero(st.done_mask()), [*range(5), 15, 16, 17, 18, 19]
    )
    resumed = simulate_batch(relu, x, 20.0, store=path, resume=True, **kw)
    assert_identical(resumed, ref)
    assert sorted(os.listdir(path / "chunks")) == [f"{k:06d}.npz" for k in range(5)]
    assert json.loads((path / "index.json").read_text())["done"] == [0, 1, 2, 3, 4]
    # resuming a finished store reads it back (chunk size from the store)
    again = simulate_batch(relu, x, 20.0, store=path, resume=True, saveat=7)
    assert_identical(again, ref)


def test_store_refuses_other_runs_and_damage(relu, tmp_path):
    x = np.linspace(-1, 1, 6)[:, None]
    path = tmp_path / "s"
    simulate_batch(relu, x, 10.0, store=path, chunk_size=3, saveat=None)
    with pytest.raises(FileExistsError, match=r"already holds a run \(6 of 6"):
        simulate_batch(relu, x, 10.0, store=path, chunk_size=3, saveat=None)
    for kw, what in [
        (dict(t1=11.0), "t1: 10.0 in the store, 11.0 now"),
        (dict(rtol=1e-7), "rtol"),
        (dict(chunk_size=2), "chunk_size: 3 in the store, 2 now"),
        (dict(inputs=x * 2), "inputs: hash"),
        (dict(rates=[1.0, 1.0, 2.0, 1.0]), "network: hash"),
    ]:
        args = dict(inputs=x, t1=10.0, saveat=None) | kw
        with pytest.raises(ValueError, match=what):
            simulate_batch(relu, store=path, resume=True, **args)
    with pytest.raises(ValueError, match="resume=True needs a store"):
        simulate_batch(relu, x, 10.0, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds other files"):
        simulate_batch(relu, x, 10.0, store=tmp_path / "other")
    # chunk 0's file copied over chunk 1's held samples 0-2 in rows 3-5, status OK
    chunks = path / "chunks"
    (chunks / "000001.npz").write_bytes((chunks / "000000.npz").read_bytes())
    for damage in ("copied", b"damaged"):
        if damage != "copied":
            (chunks / "000001.npz").write_bytes(damage)
        with pytest.raises(ValueError, match="000001.npz is not the file written for"):
            simulate_batch(relu, x, 10.0, store=path, resume=True, saveat=None)
    os.remove(chunks / "000001.npz")
    with pytest.raises(ValueError, match="chunk 1 is listed as done but cannot be"):
        simulate_batch(relu, x, 10.0, store=path, resume=True, saveat=None)
    meta = json.loads((path / "store.json").read_text())
    (path / "store.json").write_text(json.dumps(meta | {"format": "jaxcrn.store/1"}))
    with pytest.raises(ValueError, match="written by another jaxcrn version"):
        simulate_batch(relu, x, 10.0, store=path, resume=True, saveat=None)
    with pytest.raises(TypeError, match="JAX devices"):
        simulate_batch(relu, x, 10.0, devices=["cpu"])


# ------------------------------------------------------------------ the CLI


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
@pytest.mark.scale
def test_cli_scan_rows_carry_the_rate_set(capsys):
    relu_crn = os.path.join(EXAMPLES, "relu.crn")
    csv = os.path.join(EXAMPLES, "relu_inputs.csv")
    code, out, err = run(
        capsys,
        "simulate",
        relu_crn,
        "--inputs",
        csv,
        "--scan",
        "random:4:x3",
        "--seed",
        "7",
        "--json",
        "--t1",
        "400",
    )
    assert code == 0, err
    obj = json.loads(out)
    sets = np.array(obj["rate_sets"])
    np.testing.assert_array_equal(
        sets, scan.log_uniform(load_crn(relu_crn), 4, factor=3.0, seed=7)
    )
    assert obj["reactions"][3] == "M + An -> Yn"
    rows = obj["rows"]
    assert [(r["rate_set"], r["line"]) for r in rows] == [
        (k, line) for k in range(4) for line in (2, 3, 4)
    ]
    for r in rows:  # rate independent: y = max(0, x) under every rate set
        np.testing.assert_allclose(r["outputs"][0], max(0.0, r["input"][0]), atol=5e-3)


@pytest.mark.slow
@pytest.mark.scale
def test_cli_rates_csv_and_scan_forms(capsys, tmp_path):
    crn = os.path.join(EXAMPLES, "reversible.crn")
    sets = tmp_path / "sets.csv"
    sets.write_text("C -> D,0\n0.5,2\n1,1\n")
    code, out, err = run(capsys, "simulate", crn, "--rates-csv", sets, "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["rate_sets"] == [[2.0, 0.5, 0.5], [1.0, 0.5, 1.0]]
    assert obj["species"] == ["A", "B", "C", "D"] and len(obj["rows"]) == 2
    d = [r["final"][3] for r in obj["rows"]]
    assert d[0] < d[1]  # slower C -> D, less D by t1
    for spec, n in [
        ("each:x10", 7),
        ("grid:0=0.1:10:3,k2=1:10:2", 6),
        ("random:3:0.5:2", 3),
    ]:
        code, out, err = run(capsys, "simulate", crn, "--scan", spec, "--json")
        assert code == 0, (spec, err)
        assert len(json.loads(out)["rows"]) == n
    code, out, err = run(capsys, "simulate", crn, "--scan", "each:x10")
    assert code == 0 and out.splitlines()[0].split() == [
        "rate_set",
        "A",
        "B",
        "C",
        "D",
        "status",
        "steady",
        "t_steady",
    ]
    for text, match in [
        ("0.5,2\n1,1\n", "line 1: reaction '0.5'.*must be a header"),
        ("k0,0\n1,2\n", "reaction 0 .'0'. is named twice"),
        ("0,Q -> A\n1,2\n", "no such reaction"),
        ("k0,1\n1\n", "line 2: 1 values, but the header names 2"),
        ("k0,1\n1,-2\n", "line 2: the rate of reaction 1 is -2"),
        ("k0\n", "a header but no rate sets"),
        # no header: the first set would have been read as indices 1, 2, 0
        ("1,2,0\n5,0.1,3\n", "line 1: '1,2,0' holds only numbers.*'k1,k2,k0'"),
    ]:
        sets.write_text(text)
        code, _, err = run(capsys, "simulate", crn, "--rates-csv", sets)
        assert code == 2 and err.count("\n") == 1, err
        assert __import__("re").search(match, err), (match, err)
    for spec, match in [
        ("random", "expected random:N"),
        ("random:0", "not a positive whole number"),
        ("random:5:x0.5", "factor must be >= 1"),
        ("grid:k9=1:2:3", "has 3 reactions"),
        ("grid:0=2:1:3", "0 < LOW <= HIGH"),
        ("grid:0=1:2", "not R=LOW:HIGH:N"),
        ("tiles:3", "expected random:N"),
    ]:
        code, _, err = run(capsys, "simulate", crn, "--scan", spec)
        assert code == 2 and match in err, (spec, err)
    code, _, err = run(capsys, "simulate", crn, "--scan", "each:2", "--rates-csv", sets)
    assert code == 2 and "not allowed with" in err


@pytest.mark.slow
def test_cli_store_and_resume(capsys, tmp_path):
    crn = os.path.join(EXAMPLES, "relu.crn")
    csv = os.path.join(EXAMPLES, "relu_inputs.csv")
    store = tmp_path / "runs"
    argv = [
        "simulate",
        crn,
        "--inputs",
        csv,
        "--scan",
        "each:x2",
        "--json",
        "--chunk-size",
        "4",
        "--store",
        store,
    ]
    code, first, err = run(capsys, *argv)
    assert code == 0, err
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already holds files" in err and "--resume" in err
    code, again, err = run(capsys, *argv, "--resume")
    assert code == 0 and again == first
    code, _, err = run(capsys, *argv[:-1], store, "--resume", "--t1", "60")
    assert code == 2 and "holds a different run (t1: 50.0 in the store" in err
    assert err.count("\n") == 1
    code, _, err = run(capsys, "simulate", crn, "--resume")
    assert code == 2 and "--resume needs --store" in err
    code, _, err = run(capsys, "simulate", crn, "--store", tmp_path / "x")
    assert code == 2 and "--store applies to batches" in err


def test_progress_counts_resumed_samples():
    from jaxcrn._progress import Progress

    with Progress(10, "x", initial=4) as bar:
        bar.update(3)
    assert bar.done == 7


# ------------------------------------------------------------------ subprocesses

SUB_ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")


with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
    README = _f.read()


def _python(code: str, *, env=None, timeout=300, args=()):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env or SUB_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DEVICES = """
import runpy, jaxcrn._batch.lanes as L
seen, run = set(), L.run
def spy(static, carry, n):
    seen.update(str(d) for d in carry.lanes.y.devices())
    return run(static, carry, n)
L.run = spy
runpy.run_path("examples/devices.py", run_name="__main__")
print("ran on", sorted(seen))
"""


@pytest.mark.slow
@pytest.mark.scale
def test_two_cpu_devices_identical_to_one():
    env = dict(SUB_ENV)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    p = _python(DEVICES, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "2 devices: cpu:0, cpu:1",
        "150/150 agree with the network",
        "identical to one device: True",
        "ran on ['cpu:0', 'cpu:1']",
    ]
    shown = "python examples/devices.py\n" + "\n".join(p.stdout.splitlines()[:3])
    assert shown in README  # what the README shows is what the example prints


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path, *extra):
    port = _free_port()
    cmd = [
        sys.executable,
        os.path.join(EXAMPLES, "distributed.py"),
        "--processes",
        "2",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--check",
        *map(str, extra),
    ]
    procs = [
        subprocess.Popen(
            cmd + ["--id", str(i)],
            cwd=ROOT,
            env=SUB_ENV,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 0, err[-3000:]
        outs.append([ln for ln in out.splitlines() if ln.startswith("process ")])
    return outs


@pytest.mark.slow
@pytest.mark.scale
def test_two_processes_gather_and_store(tmp_path):
    """examples/distributed.py on two local processes (CPU collectives): gathered
    with multihost_utils, and written to one store; both equal one process."""
    for extra in ((), ("--store", tmp_path / "store")):
        outs = _two_processes(tmp_path, *extra)
        for i, lines in enumerate(outs):
            assert lines == [
                f"process {i} of 2: 3000/3000 agree with the network",
                f"process {i} of 2: identical to one process: True",
            ]
        shown = "--id 0 --check\n" + "\n".join(outs[0])
        assert shown in README  # what the README shows is what process 0 prints
    # each process listed its own chunks; together every one of them
    index = [
        json.loads((tmp_path / "store" / f).read_text())["done"]
        for f in ("index.json", "index-1.json")
    ]
    assert index == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]


def _cli(*argv):
    return [sys.executable, "-m", "jaxcrn", *map(str, argv)]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """The IRIS CRN and 6,000 inputs as files, and the uninterrupted run."""
    import jaxcrn

    folder = tmp_path_factory.mktemp("iris")
    model = jaxcrn.load_model(os.path.join(ROOT, "experiments", "models", "iris.npz"))
    crn = folder / "iris.crn"
    jaxcrn.save_crn(jaxcrn.reduce_crn(jaxcrn.nn_to_crn(model)), crn)
    x = np.tile(jaxcrn.datasets.iris().test.x, (40, 1))
    csv = folder / "x.csv"
    np.savetxt(csv, x, delimiter=",", header="x0,x1,x2,x3", comments="")
    argv = ["simulate", crn, "--inputs", csv, "--chunk-size", "20", "--json"]
    ref = subprocess.run(
        _cli(*argv, "--store", folder / "ref"),
        cwd=ROOT,
        env=SUB_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr
    return argv, ref.stdout, folder


@pytest.mark.slow
@pytest.mark.scale
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["INT", "KILL"])
def test_interrupted_run_resumes_to_the_same_results(iris_run, tmp_path, sig):
    argv, ref_out, folder = iris_run
    store = tmp_path / "store"
    p = subprocess.Popen(
        _cli(*argv, "--store", store),
        cwd=ROOT,
        env=SUB_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (store / "index.json").exists():  # the first chunk is done
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.02)
        time.sleep(0.2)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    if sig == signal.SIGINT:
        assert p.returncode == 130 and "jaxcrn simulate: interrupted" in err
    else:
        assert p.returncode == -signal.SIGKILL
    assert out == ""  # nothing printed as a result
    done = json.loads((store / "index.json").read_text())["done"]
    assert 0 < len(done) < 300  # stopped mid-run
    for k in done:  # every chunk listed as done is complete
        a = SimulationResult.load(store / "chunks" / f"{k:06d}.npz")
        b = SimulationResult.load(folder / "ref" / "chunks" / f"{k:06d}.npz")
        assert_identical(a, b)
    resumed = subprocess.run(
        _cli(*argv, "--store", store, "--resume"),
        cwd=ROOT,
        env=SUB_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == ref_out  # every output, bit for bit (JSON floats)
    assert len(json.loads((store / "index.json").read_text())["done"]) == 300
