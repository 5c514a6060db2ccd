"""The peer simulators of `benchmarks/peers.py` (scipy, libRoadRunner) on a tiny CRN.

The script is loaded from its path; its top level imports numpy only."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import compile_crn, nn_to_crn, parse_crn, reduce_crn, simulate_batch

from .helpers import forget_benchmark, load_benchmark


pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def peers():
    # importable by name, so that the spawned worker processes find `_peer_worker`
    module = load_benchmark("peers", register=True)
    yield module
    forget_benchmark("peers")


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


# -- general CRNs ------------------------------------------------------------------


def test_check_states_relative_and_floors(peers):
    ref = np.array([[1.0, 1e-3, 1e-12], [2e-9, 1e-9, 0.0]])
    # 1e-4 relative on the large species, tiny absolute errors on the decayed one
    y = ref * np.array([1 + 1e-4, 1 - 1e-4, 5.0]) + np.array([[0, 0, 3e-11], [0, 0, 0]])
    c = peers.check_states(y, ref, 1e-3, 1e-4, 1e-8)
    assert c["passed"] and c["max_scaled_err"] < 1e-3
    # a decayed species off by more than tol * floor_rel * largest fails
    bad = y.copy()
    bad[0, 2] = 2e-7
    c = peers.check_states(bad, ref, 1e-3, 1e-4, 1e-8)
    assert not c["passed"] and c["value_failures"] == 1
    assert (c["worst_sample"], c["worst_column"]) == (0, 2)
    # a sample whose concentrations are all below floor_abs is compared absolutely
    assert peers.check_states(ref + 5e-12, ref, 1e-3, 1e-4, 1e-8)["passed"]
    assert not peers.check_states(ref + 2e-11, ref, 1e-3, 1e-4, 1e-8)["passed"]
    nan = y.copy()
    nan[1, 0] = np.nan
    assert peers.check_states(nan, ref, 1e-3, 1e-4, 1e-8)["value_failures"] == 1


def test_bench_header(peers):
    text = (
        "# a title\n# Source: somewhere\n#@ t1: 40\n#@ sample a: uniform 0.5 1.5\n"
        "#@ sample b: loguniform 1e-3 1\n#@ tol: 1e-2\nA -> B\n# later comment\n"
    )
    h = peers.read_bench_header(text, "x.crn")
    assert h["t1"] == 40 and h["tol"] == 1e-2
    assert h["samples"] == {"a": ("uniform", 0.5, 1.5), "b": ("loguniform", 1e-3, 1)}
    assert h["source"] == "a title Source: somewhere"
    x = peers.general_inputs(h["samples"], 500, 0, "x")
    assert x.shape == (500, 2)
    assert 0.5 <= x[:, 0].min() and x[:, 0].max() <= 1.5
    assert 1e-3 <= x[:, 1].min() and x[:, 1].max() <= 1 and np.median(x[:, 1]) < 0.1
    np.testing.assert_array_equal(x, peers.general_inputs(h["samples"], 500, 0, "x"))
    for bad, msg in [
        ("#@ t1: -1\n", "t1 must be positive"),
        ("#@ sample a: normal 0 1\n", "uniform LO HI"),
        ("#@ sample a: loguniform 0 1\n", "LO > 0"),
        ("#@ rtol: 1\n", "KEY is t1, tol"),
        ("#@ t1 40\n", "KEY: VALUE"),
    ]:
        with pytest.raises(peers.CorpusError, match=msg) as e:
            peers.read_bench_header(bad, "x.crn")
        assert "x.crn, line 1" in str(e.value)


def test_load_general_rejects_dual_rail_and_unknown_samples(peers, tmp_path):
    import jaxcrn

    p = tmp_path / "dual.crn"
    p.write_text("A -> B\nC -> B\ninput a = A - C\n")
    with pytest.raises(peers.CorpusError, match="dual-rail"):
        peers.load_general(str(p), jaxcrn)
    p.write_text("#@ sample z: uniform 0 1\nA -> B\ninput a = A\n")
    with pytest.raises(peers.CorpusError, match="does not declare as inputs"):
        peers.load_general(str(p), jaxcrn)
    with pytest.raises(peers.CorpusError, match="neither a compiled model"):
        peers.load_general(str(tmp_path / "missing.crn"), jaxcrn)


def test_roadrunner_full_state_agrees_with_scipy(peers):
    pytest.importorskip("roadrunner")
    from jaxcrn import to_sbml

    crn = parse_crn(
        "2 A <=> B  [kf=2, kr=1]\nB -> C  [k=0.5]\ninit C = 0.1\ninput a = A"
    )
    spec = peers.network_spec(crn)
    run, _, names = peers.roadrunner_simulator(
        spec, to_sbml(crn), 5.0, 1e-10, 1e-12, True, state=True
    )
    assert names == list(crn.species)
    ours = peers.scipy_simulator(spec, "Radau", 5.0, 1e-10, 1e-12)
    for a in (0.5, 1.3):
        y_rr, _ = run(np.array([a]))
        y_sp, _ = ours(np.array([a]))
        np.testing.assert_allclose(y_rr, y_sp, rtol=1e-7, atol=1e-10)
        # the three species conserve A + 2 B + 2 C (the 0.1 of C included)
        assert abs(y_sp[0] + 2 * y_sp[1] + 2 * y_sp[2] - (a + 0.2)) < 1e-8


@pytest.mark.slow
def test_general_crn_end_to_end(peers, tmp_path):
    """The whole harness on a tiny general CRN: reference, its scipy checks, a peer,
    jaxcrn checked then timed; JSON lines and the Markdown table."""
    pytest.importorskip("roadrunner")
    path = tmp_path / "tiny.crn"
    path.write_text(
        "# tiny: a dimerisation and a decay\n# Source: this test\n#@ t1: 5\n"
        "#@ sample a: uniform 0.5 1.5\n2 A <=> B  [kf=2, kr=1]\nB -> C  [k=0.5]\n"
        "input a = A\n"
    )
    out, table = tmp_path / "r.jsonl", tmp_path / "r.md"
    argv = ["--models", str(path), "--batch", "4", "--peer-samples", "2"]
    argv += ["--repeats", "1", "--ref-check", "1", "--tools", "jaxcrn,roadrunner"]
    argv += ["--out", str(out), "--table", str(table)]
    assert peers.main(argv) == 0
    import json

    recs = {r["tool"]: r for r in map(json.loads, out.read_text().splitlines())}
    jx, rr = recs["jaxcrn"], recs["roadrunner"]
    assert jx["status"] == "ok" and rr["status"] == "ok", (jx, rr)
    assert jx["crn"] == "general" and jx["model"] == "tiny" and jx["t1"] == 5
    assert jx["samples_checked"] == 4 and rr["samples"] == 2
    assert jx["max_scaled_err"] < 1e-4 and rr["max_scaled_err"] < 1e-4
    assert jx["reference_check_max_scaled_err"] < 1e-7
    assert jx["reference_check_lsoda_max_scaled_err"] < 1e-6
    assert jx["plan"]["engine"] and jx["workers"] >= 1
    assert jx["speedup_vs_best_peer"] == pytest.approx(
        jx["samples_per_s"] / rr["samples_per_s"]
    )
    md = table.read_text()
    assert "## General CRNs" in md and "| tiny | 3 / 3 | 5 | 4 |" in md
    with pytest.raises(SystemExit, match="already exists"):
        peers.main(argv)
    # the same table, rendered again from the records alone
    again = tmp_path / "again.md"
    assert peers.main(["--from-jsonl", str(out), "--table", str(again)]) == 0
    assert again.read_text() == md


def test_parse_args_models_and_per_case_keys(peers):
    args = peers.parse_args(["--models", "corpus,iris", "--batch", "500,random600=16"])
    names = peers.corpus_names()
    assert args.models == names + ["iris"] and "robertson" in names
    assert args.batch("random600", "-", "general", "jaxcrn") == 16
    assert args.batch("robertson", "-", "general", "jaxcrn") == 500
    args = peers.parse_args(["--models", "robertson", "--ref-samples", "0,general=7"])
    assert args.ref_samples("robertson", "-", "general", "jaxcrn") == 7
    with pytest.raises(SystemExit, match="expected a comma-separated list"):
        peers.parse_args(["--models", "robertsn"])
    with pytest.raises(SystemExit, match="expected jaxcrn, radau or bdf"):
        peers.parse_args(["--models", "robertson", "--ref-tool", "cvode"])
    with pytest.raises(SystemExit, match="not a MODEL"):
        peers.parse_args(["--models", "robertson", "--batch", "10,robertsn=3"])


def test_scipy_reference_without_jaxcrn(peers, tmp_path):
    """--ref-tool radau: the reference is scipy Radau (checked against LSODA), and
    a run without jaxcrn compiles nothing."""
    path = tmp_path / "decay.crn"
    path.write_text(
        "#@ t1: 3\n#@ sample a: uniform 1 2\nA -> B  [k=0.7]\ninput a = A\n"
    )
    out = tmp_path / "r.jsonl"
    argv = ["--models", str(path), "--tools", "lsoda", "--ref-tool", "radau"]
    argv += ["--batch", "3", "--peer-samples", "3", "--ref-check", "1"]
    assert peers.main(argv + ["--out", str(out)]) == 0
    import json

    (rec,) = map(json.loads, out.read_text().splitlines())
    assert rec["tool"] == "lsoda" and rec["status"] == "ok", rec
    assert rec["reference"] == "scipy Radau rtol 1e-10 atol 1e-12"
    assert rec["max_scaled_err"] < 1e-4 and rec["samples"] == 3
    assert len(rec["machine"]["load_average_at_start"]) == 3


def _point(tool, rtol, err, us, model="net"):
    return dict(
        model=model,
        weights="-",
        crn="general",
        species=3,
        reactions=2,
        tool=tool,
        status="ok",
        rtol=rtol,
        max_scaled_err=err,
        per_sample_s=us * 1e-6,
    )


def test_matched_accuracy_compares_at_equal_error(peers):
    """jaxcrn is compared with the fastest peer at the nominal rtol (A: jaxcrn's
    cheapest setting at least as accurate) and at jaxcrn's nominal accuracy (B:
    the cheapest peer setting at least as accurate, else a lower bound)."""
    recs = [
        _point("jaxcrn", 1e-4, 3e-6, 10.0),
        _point("jaxcrn", 1e-6, 5e-9, 20.0),
        _point("jaxcrn", 1e-8, 1e-10, 40.0),
        _point("roadrunner", 1e-4, 1e-3, 50.0),
        _point("roadrunner", 1e-6, 5e-6, 100.0),
        _point("roadrunner", 1e-8, 1e-8, 400.0),
        _point("roadrunner_adams", 1e-6, 1e-6, 150.0),
        dict(_point("lsoda", 1e-6, 1e-9, 10.0), status="failed"),  # never counts
    ]
    (row,) = peers.matched_accuracy(recs, 1e-6)
    assert row["peer"] == "roadrunner" and row["nominal_speedup"] == pytest.approx(5.0)
    # A: roadrunner's 5e-6 at 100 us; jaxcrn's 1e-4 setting (3e-6) suffices
    assert row["at_peer_accuracy_jaxcrn_rtol"] == 1e-4
    assert row["at_peer_accuracy"] == pytest.approx(10.0)
    # B: no peer setting reaches 5e-9; each peer's most accurate setting bounds
    # its cost there, and the cheaper bound (Adams at 1e-6, 150 us) is reported
    assert row["at_jaxcrn_accuracy_is_lower_bound"]
    assert row["at_jaxcrn_accuracy"] == pytest.approx(7.5)
    # with a peer setting that gets there, B is that setting, not a bound
    recs.append(_point("roadrunner_adams", 1e-8, 1e-8 / 2, 300.0))
    recs.append(_point("roadrunner_adams", 1e-9, 2e-8, 250.0))  # not accurate enough
    recs[2] = _point("jaxcrn", 1e-8, 1e-10, 40.0)
    recs[1] = _point("jaxcrn", 1e-6, 1e-8, 20.0)
    (row,) = peers.matched_accuracy(recs, 1e-6)
    assert not row["at_jaxcrn_accuracy_is_lower_bound"]
    assert row["at_jaxcrn_accuracy_peer"] == "roadrunner_adams rtol 1e-08"
    assert row["at_jaxcrn_accuracy"] == pytest.approx(15.0)
    md = "\n".join(peers.markdown_matched([row], 1e-6))
    assert "| net/-/general | 3 / 2 | roadrunner (5.0e-06, 100 µs) |" in md
    # at the peer's error, a cheaper peer setting at least as accurate counts too
    cheaper = _point("roadrunner", 3e-6, 4e-6, 80.0)
    (row2,) = peers.matched_accuracy(recs + [cheaper], 1e-6)
    assert row2["at_peer_accuracy_peer"] == "roadrunner rtol 3e-06"
    assert row2["at_peer_accuracy"] == pytest.approx(8.0)
    assert row2["nominal_speedup"] == row["nominal_speedup"]
    # two runs in one file are compared each within itself
    other = [dict(r, run="b", per_sample_s=2 * r["per_sample_s"]) for r in recs]
    if_jaxcrn_slower = [
        dict(r, per_sample_s=2 * r["per_sample_s"]) if r["tool"] == "jaxcrn" else r
        for r in other
    ]
    a, b = peers.matched_accuracy(recs + if_jaxcrn_slower, 1e-6)
    assert a == row and b["run"] == "b"
    assert b["at_jaxcrn_accuracy"] == pytest.approx(row["at_jaxcrn_accuracy"] / 2)
    # a network run at one tolerance only has no matched row
    assert peers.matched_accuracy([r for r in recs if r["rtol"] == 1e-6], 1e-6) == []


@pytest.mark.slow
def test_rtol_ladder_end_to_end(peers, tmp_path):
    """--rtols: every tool at each tolerance, against one reference; jaxcrn's
    achieved error falls with its rtol, and the table compares at equal error."""
    path = tmp_path / "chain.crn"
    path.write_text(
        "#@ t1: 4\n#@ sample a: uniform 1 2\nA -> B  [k=0.7]\nB <=> C  [kf=3, kr=1]\n"
        "input a = A\n"
    )
    out, table = tmp_path / "r.jsonl", tmp_path / "r.md"
    argv = ["--models", str(path), "--tools", "jaxcrn,lsoda", "--batch", "8"]
    argv += ["--peer-samples", "4", "--ref-check", "0", "--repeats", "1"]
    argv += ["--rtols", "1e-4,1e-8", "--out", str(out), "--table", str(table)]
    assert peers.main(argv) == 0
    import json

    recs = list(map(json.loads, out.read_text().splitlines()))
    got = sorted((r["tool"], r["rtol"]) for r in recs)
    assert got == sorted(
        (t, r) for t in ("jaxcrn", "lsoda") for r in (1e-4, 1e-6, 1e-8)
    )
    assert all(r["atol"] == pytest.approx(r["rtol"] * 1e-3) for r in recs)
    assert all(r["status"] == "ok" for r in recs), [r["message"] for r in recs]
    err = {r["rtol"]: r["max_scaled_err"] for r in recs if r["tool"] == "jaxcrn"}
    assert err[1e-8] < err[1e-6] < err[1e-4], err
    md = table.read_text()
    assert "## At matched accuracy" in md and "| chain/-/general | 3 / 3 |" in md
