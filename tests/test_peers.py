"""The peer simulators of `benchmarks/peers.py` (scipy, libRoadRunner) on a tiny CRN.

The script is loaded from its path; its top level imports numpy only."""

import importlib.util
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import compile_crn, nn_to_crn, parse_crn, reduce_crn, simulate_batch


pytest.importorskip("scipy")

PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "peers.py")


@pytest.fixture(scope="module")
def peers():
    # importable by name, so that the spawned worker processes find `_peer_worker`
    sys.path.insert(0, os.path.dirname(os.path.abspath(PATH)))
    spec = importlib.util.spec_from_file_location("peers", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("peers", None)
    sys.path.remove(os.path.dirname(os.path.abspath(PATH)))


@pytest.fixture(scope="module")
def tiny():
    """A 2-3-2 network, reduced, with its inputs and jaxcrn's answer at t1 = 20."""
    params = [
        (np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]), np.array([0.3, -0.2, 0.1])),
        (np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]), np.array([-0.4, 0.25])),
    ]
    crn = reduce_crn(nn_to_crn(params))
    x = np.array([[0.5, -1.0], [-0.7, 0.2], [1.5, 0.4]])
    net = compile_crn(crn)
    res = simulate_batch(
        net, x, 20.0, rtol=1e-10, atol=1e-12, saveat=None, progress=False
    )
    return crn, x, np.asarray(res.outputs_final)


def test_rhs_and_jacobian(peers):
    crn = parse_crn("A + B -> C [k=1.5]\n2 C -> D + A [k=0.3]\n0 -> A [k=0.1]\nD -> 0")
    kin = peers.MassAction(peers.network_spec(crn))
    y = np.array([0.7, 1.3, 0.4, 2.0])
    net = compile_crn(crn, form="dense")
    assert net.species == crn.species
    ours = np.asarray(net(0.0, jnp.asarray(y), None))
    np.testing.assert_allclose(kin.rhs(0.0, y), ours, rtol=1e-12)
    eps = 1e-7
    fd = np.stack(
        [
            (kin.rhs(0.0, y + eps * e) - kin.rhs(0.0, y - eps * e)) / (2 * eps)
            for e in np.eye(4)
        ],
        axis=1,
    )
    np.testing.assert_allclose(kin.jac(0.0, y).toarray(), fd, atol=1e-7)


@pytest.mark.parametrize("method", ["BDF", "LSODA", "RK45"])
def test_scipy_agrees_with_jaxcrn(peers, tiny, method):
    crn, x, expected = tiny
    spec = peers.network_spec(crn)
    run = peers.scipy_simulator(spec, method, 20.0, 1e-7, 1e-10)
    for xi, want in zip(x, expected, strict=True):
        y, info = run(xi)
        out = y[spec["out_pos"]] - y[spec["out_neg"]]
        np.testing.assert_allclose(out, want, atol=1e-5)
        assert info["nfev"] > 0


def test_roadrunner_agrees_with_jaxcrn(peers, tiny):
    pytest.importorskip("roadrunner")
    from jaxcrn import to_sbml

    crn, x, expected = tiny
    spec = peers.network_spec(crn)
    for stiff in (True, False):
        run, load_s, rails = peers.roadrunner_simulator(
            spec, to_sbml(crn), 20.0, 1e-8, 1e-10, stiff
        )
        assert load_s > 0 and len(rails) == 4
        for xi, want in zip(x, expected, strict=True):
            r, _ = run(xi)
            np.testing.assert_allclose(r[:2] - r[2:], want, atol=1e-5)


def test_run_peer_in_a_worker_and_check(peers, tiny):
    crn, x, expected = tiny
    job = dict(
        tool="bdf",
        spec=peers.network_spec(crn),
        x=x,
        t1=20.0,
        rtol=1e-8,
        atol=1e-10,
        memory_bytes=None,
    )
    r = peers.run_peer(job, 60.0)
    assert r["status"] == "ok", r["message"]
    assert len(r["times"]) == 3 and r["load_s"] is not None
    out = np.asarray(r["pos"]) - np.asarray(r["neg"])
    c = peers.check_outputs(out, expected, np.ones(3), 1e-4)
    assert c["passed"] and c["max_abs_err"] < 1e-5
    bad = peers.check_outputs(out + np.array([1e-3, 0.0]), expected, np.ones(3), 1e-4)
    assert not bad["passed"] and bad["value_failures"] == 3


def test_run_peer_timeout(peers, tiny):
    crn, x, _ = tiny
    job = dict(tool="bdf", spec=peers.network_spec(crn), x=x, t1=20.0)
    job.update(rtol=1e-8, atol=1e-10, memory_bytes=None)
    r = peers.run_peer(job, 0.01)
    assert r["status"] == "timeout"
    assert r["message"].startswith("timeout after 0.01 s")


def test_check_outputs_counts_ties(peers):
    ref = np.array([[1.0, 1.0 + 1e-6], [0.0, 2.0]])
    out = np.array([[1.0 + 2e-6, 1.0], [0.0, 2.0]])
    c = peers.check_outputs(out, ref, np.ones(2), 1e-4)
    assert c["passed"] and c["argmax_mismatches"] == 1 and c["argmax_ties"] == 1


def test_per_case_most_specific_wins(peers):
    get = peers.per_case("100,mnist14=2,mnist14/bdf=5,mnist14/full/bdf=1", int, "x")
    assert get("iris", "trained", "full", "bdf") == 100
    assert get("mnist14", "trained", "reduced", "lsoda") == 2
    assert get("mnist14", "random", "reduced", "bdf") == 5
    assert get("mnist14", "random", "full", "bdf") == 1
    with pytest.raises(SystemExit, match="not a MODEL"):
        peers.per_case("10,cifar=3", int, "--batch")
