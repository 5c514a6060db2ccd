"""The SBML Test Suite's mass-action cases (../shared/sbml-test-suite, 190 cases):
each imported with `read_sbml`, simulated with jaxcrn and compared with the case's
expected results at the case's own tolerances (|ours - expected| <= absolute +
relative * |expected| at every reported time, as the suite defines a pass).

Compilation dominates: every case is padded to one common shape (species,
reactions, reactant order, saved times) with inert species and reactions, renamed
to common species names, so all 190 share one compiled, vmapped solve."""

import csv
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import CRN, Reaction, compile_crn, simulate


pytest.importorskip("libsbml")

from jaxcrn._sbml import SBMLModel, read_sbml  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))


def _suite_dir() -> str | None:
    for c in (
        os.environ.get("JAXCRN_SBML_SUITE"),
        os.path.join(HERE, "..", "..", "shared", "sbml-test-suite"),
    ):
        if c and os.path.isdir(os.path.join(c, "cases")):
            return os.path.join(os.path.abspath(c), "cases")
    return None


def _settings(folder: str) -> dict[str, str]:
    out = {}
    (path,) = glob.glob(os.path.join(folder, "*-settings.txt"))
    with open(path, encoding="utf-8") as f:
        for line in f:
            if ":" in line:
                key, value = line.split(":", 1)
                out[key.strip()] = value.strip()
    return out


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _expected(folder: str) -> tuple[list[str], np.ndarray]:
    (path,) = glob.glob(os.path.join(folder, "*-results.csv"))
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    return [h.strip() for h in rows[0]], np.array(rows[1:], dtype=float)


def _model_file(folder: str) -> str:
    case = os.path.basename(folder)
    for version in ("l3v2", "l3v1", "l2v4"):
        path = os.path.join(folder, f"{case}-sbml-{version}.xml")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(folder)


def _padded(crn: CRN, n_species: int, n_reactions: int, order: int):
    """`crn` with inert padding (a species held at 0, reactions `order P -> order
    P` whose flux is 0) and species renamed `s0, s1, ...` by position, so networks
    of equal padded shape share one compilation. Returns (crn, index of each
    original species)."""
    pad = "pad_"
    while pad in crn.species:
        pad += "_"
    inert = Reaction(((pad, order),), ((pad, order),), 1.0)
    reactions = crn.reactions + (inert,) * (n_reactions - len(crn.reactions))
    extra = n_species - len(crn.species) - 1
    init = crn.init + ((pad, 0.0),) + tuple((f"{pad}{i}", 0.0) for i in range(extra))
    padded = CRN(reactions, init)
    rename = {s: f"s{i}" for i, s in enumerate(padded.species)}

    def complex_(terms):
        return tuple((rename[s], c) for s, c in terms)

    renamed = CRN(
        tuple(
            Reaction(complex_(r.reactants), complex_(r.products), r.rate)
            for r in padded.reactions
        ),
        tuple((rename[s], v) for s, v in padded.init),
    )
    return renamed, {s: padded.species.index(s) for s in crn.species}


@jax.jit
def _solve_all(networks, t1, ts):
    def one(net, t1, ts):
        return simulate(
            net, net.y_init, t1, saveat=ts, rtol=1e-10, atol=1e-16, max_steps=4096
        )

    return jax.vmap(one)(networks, t1, ts)


def _values(model: SBMLModel, index, ys, name, settings) -> np.ndarray | None:
    """The suite's variable `name` from our trajectory `ys` (times, species)."""
    n = ys.shape[0]
    if name in model.species_compartment:
        value = ys[:, index[name]] if name in index else np.zeros(n)
        if name in _names(settings["amount"]):
            return model.amounts([name], value[:, None])[:, 0]
        return model.concentrations([name], value[:, None])[:, 0]
    if name in model.compartments:
        return np.full(n, model.compartments[name])
    if name in model.parameters:
        return np.full(n, model.parameters[name])
    return None


def run_suite(cases: list[str]) -> dict[str, str]:
    """{case: failure message} for the cases that fail (every case imports,
    simulates and is compared)."""
    loaded = []
    for folder in cases:
        model = read_sbml(_model_file(folder))
        header, expected = _expected(folder)
        loaded.append((folder, model, header, expected, _settings(folder)))
    n_species = 1 + max(len(m.crn.species) for _, m, *_ in loaded)
    n_reactions = 1 + max(len(m.crn.reactions) for _, m, *_ in loaded)
    order = max([r.order for _, m, *_ in loaded for r in m.crn.reactions] + [1])
    n_times = max(e.shape[0] for _, _, _, e, _ in loaded)
    nets, t1s, tss, indices = [], [], [], []
    for _, model, _, expected, _ in loaded:
        crn, index = _padded(model.crn, n_species, n_reactions, order)
        nets.append(compile_crn(crn, form="dense"))
        ts = expected[:, 0]
        tss.append(np.concatenate([ts, np.full(n_times - ts.size, ts[-1])]))
        t1s.append(ts[-1])
        indices.append(index)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *nets)
    res = _solve_all(stacked, jnp.asarray(t1s), jnp.asarray(np.array(tss)))
    ys_all = np.asarray(res.ys)
    status = np.asarray(res.status)
    failures = {}
    for k, (folder, model, header, expected, settings) in enumerate(loaded):
        case = os.path.basename(folder)
        if status[k] != 0:
            failures[case] = f"solver status {status[k]}"
            continue
        ys = ys_all[k, : expected.shape[0]]
        atol, rtol = float(settings["absolute"]), float(settings["relative"])
        problems = []
        for name in _names(settings["variables"]):
            ours = _values(model, indices[k], ys, name, settings)
            if ours is None:
                problems.append(f"{name}: unknown variable")
                continue
            want = expected[:, header.index(name)]
            err = np.abs(ours - want)
            if np.any(err > atol + rtol * np.abs(want)):
                problems.append(f"{name}: max error {err.max():.3g}")
        if problems:
            failures[case] = "; ".join(problems)
    return failures


SUITE = _suite_dir()
needs_suite = pytest.mark.skipif(
    SUITE is None, reason="SBML Test Suite not found (../shared/sbml-test-suite)"
)


@needs_suite
@pytest.mark.slow
def test_every_mass_action_case_matches_its_expected_results():
    assert SUITE is not None
    cases = sorted(glob.glob(os.path.join(SUITE, "[0-9]*")))
    assert len(cases) == 190
    failures = run_suite(cases)
    assert not failures, f"{190 - len(failures)}/190 pass; failing: {failures}"
