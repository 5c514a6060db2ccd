"""The general-CRN benchmark corpus (`benchmarks/crns/`): every file loads with its
provenance and settings, the generated files are reproducible, and the networks
are what their headers say (closed forms, conservation laws, computed results).

numpy and scipy only: no JAX compilation here."""

import re

import numpy as np
import pytest

import jaxcrn

from .helpers import load_benchmark


pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def peers():
    return load_benchmark("peers")


@pytest.fixture(scope="module")
def corpus(peers):
    return {name: peers.load_general(name, jaxcrn) for name in peers.corpus_names()}


def test_corpus_covers_the_issue(corpus):
    sizes = {n: len(g["crn"].species) for n, g in corpus.items()}
    for name in ("robertson", "brusselator", "random60", "random600"):
        assert name in corpus
    assert 50 <= sizes["random60"] <= 100 and sizes["random600"] >= 500
    programs = {"approximate_majority", "rps_oscillator", "crnpp_sqrt"}
    assert programs <= set(corpus)
    signalling = {"mapk_huang_ferrell", "earm_1_0", "earm_1_3", "kinase_cascade"}
    signalling |= {"egfr_simple", "fricker_2010", "egfr_net", "fceri_ji"}
    assert signalling <= set(corpus)
    assert sorted(sizes[n] for n in signalling)[-2:] >= [350, 350]
    # and generated stiff signalling cascades of hundreds of species
    cascades = sorted(sizes[n] for n in corpus if n.startswith("cascade"))
    assert len(cascades) >= 3 and cascades[0] >= 100 and cascades[-1] >= 500


def test_every_file_has_provenance_and_settings(corpus):
    for name, g in corpus.items():
        assert "Source:" in g["source"], name
        assert g["t1"] and g["t1"] > 0, name
        crn = g["crn"]
        assert crn.inputs, name
        assert all(s.neg is None for s in crn.inputs), name
        # every input has an explicit law in the file, not the harness default
        with open(g["path"]) as f:
            text = f.read()
        declared = set(re.findall(r"^#@ sample (\w+):", text, re.M))
        assert declared == {s.name for s in crn.inputs}, name
        # the input species start at the sampled value (no init added to it)
        inits = dict(crn.init)
        assert not any(s.pos in inits for s in crn.inputs), name


def test_generated_files_are_reproducible():
    make = load_benchmark("make_crns")
    assert make.main(["--check"]) == 0


@pytest.mark.parametrize("name", ["random60", "random600"])
def test_random_networks_conserve_mass(corpus, name):
    g = corpus[name]
    with open(g["path"]) as f:
        masses = next(line.split(":", 1)[1].split() for line in f if "Masses:" in line)
    mass = {f"S{i}": int(m) for i, m in enumerate(masses)}
    assert set(mass) == set(g["crn"].species)
    for r in g["crn"].reactions:
        assert sum(mass[s] * c for s, c in r.net.items()) == 0, r
    # reversible: every reaction has its reverse
    pairs = {(r.reactants, r.products) for r in g["crn"].reactions}
    assert all((b, a) in pairs for a, b in pairs)


def test_robertson_and_brusselator_are_the_textbook_odes(corpus, peers):
    rng = np.random.default_rng(0)
    kin = peers.MassAction(peers.network_spec(corpus["robertson"]["crn"]))
    assert corpus["robertson"]["crn"].species == ("A", "B", "C")
    for _ in range(5):
        a, b, c = y = rng.uniform(0, 1, 3)
        want = [
            -0.04 * a + 1e4 * b * c,
            0.04 * a - 1e4 * b * c - 3e7 * b**2,
            3e7 * b**2,
        ]
        np.testing.assert_allclose(kin.rhs(0.0, y), want, rtol=1e-12)
    kin = peers.MassAction(peers.network_spec(corpus["brusselator"]["crn"]))
    assert corpus["brusselator"]["crn"].species == ("X", "Y")
    for _ in range(5):
        x, y = v = rng.uniform(0, 3, 2)
        want = [1 + x * x * y - 4 * x, 3 * x - x * x * y]
        np.testing.assert_allclose(kin.rhs(0.0, v), want, rtol=1e-12)


def test_rps_conserves_sum_and_product(corpus, peers):
    g = corpus["rps_oscillator"]
    spec = peers.network_spec(g["crn"])
    run = peers.scipy_simulator(spec, "LSODA", g["t1"], 1e-10, 1e-12)
    x = np.array([0.6, 1.0, 1.4])
    y, _ = run(x)
    assert abs(y.sum() - x.sum()) < 1e-8
    assert abs(np.prod(y) / np.prod(x) - 1) < 1e-6
    assert np.abs(y - x).max() > 0.05  # it moved: a cycle, not a fixed point


def test_approximate_majority_reaches_the_majority(corpus, peers):
    g = corpus["approximate_majority"]
    spec = peers.network_spec(g["crn"])
    run = peers.scipy_simulator(spec, "LSODA", g["t1"], 1e-8, 1e-12)
    for x in ([0.6, 0.4], [1.0, 0.3]):
        y, _ = run(np.array(x))
        got = dict(zip(spec["species"], y, strict=True))
        assert abs(got["X"] - sum(x)) < 1e-6 and got["Y"] < 1e-6 and got["B"] < 1e-6


def test_crnpp_program_computes_the_square_root(corpus, peers):
    g = corpus["crnpp_sqrt"]
    spec = peers.network_spec(g["crn"])
    run = peers.scipy_simulator(spec, "LSODA", g["t1"], 1e-8, 1e-10)
    root = spec["species"].index("X")
    for a in (0.5, 2.0, 5.0):
        y, _ = run(np.array([a]))
        assert abs(y[root] - np.sqrt(a)) < 1e-3, (a, y[root])


def test_mapk_cascade_is_ultrasensitive(corpus, peers):
    """Huang-Ferrell's result: MAPK-PP switches from off to on over a few-fold
    change of the input kinase, with every total conserved."""
    g = corpus["mapk_huang_ferrell"]
    spec = peers.network_spec(g["crn"])
    run = peers.scipy_simulator(spec, "LSODA", g["t1"], 1e-8, 1e-12)
    names = spec["species"]
    kpp = names.index("KPP")
    low, _ = run(np.array([1e-6]))
    high, _ = run(np.array([1e-5]))
    assert low[kpp] < 0.01 * 1.2 and high[kpp] > 0.75 * 1.2
    # MAPK in all its forms, free and in complexes (each holds one MAPK): 1.2 uM
    mapk = [i for i, s in enumerate(names) if re.fullmatch(r"K(P|PP)?(_.*)?", s)]
    assert sorted(names[i] for i in mapk) == [
        "K",
        "KP",
        "KPP",
        "KPP_KPase",
        "KP_KKPP",
        "KP_KPase",
        "K_KKPP",
    ]
    for y in (low, high):
        assert abs(sum(y[i] for i in mapk) - 1.2) < 1e-8
