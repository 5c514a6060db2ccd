"""jaxcrn against an independent reference on random mass-action CRNs.

The reference shares nothing with jaxcrn but the parsed reaction list: the
benchmarks' NumPy mass action (`benchmarks/peers.py`: `network_spec`, `MassAction`,
its right-hand side and analytic Jacobian), integrated by scipy's Radau at rtol
1e-11.
Each network is drawn from a seed (2-8 species, up to 11 reactions of order 0-3,
stoichiometries up to 3, rates log-uniform over 1e-2..3e2, some species starting at
zero, t1 log-uniform over 0.1..100), simulated for four initial states (and, in the
rate test, four rate sets) by `simulate_batch` under its automatic plan and with
Rodas5P, and every sample whose reference finished must be OK and within the
tolerances' reach of it. A sample whose reference failed is not compared (Radau
fails on some growth to 1e37 that jaxcrn follows correctly, and on blow-ups,
which jaxcrn flags).
"""

import warnings

import numpy as np
import pytest

from jaxcrn import compile_crn, parse_crn, simulate_batch

from .helpers import load_benchmark


pytestmark = pytest.mark.slow

# rtol, atol of the runs; the answers are compared at 300x these (a global error is
# the local tolerance times a modest factor; 1e-6 relative is what is asked)
RTOL, ATOL = 1e-6, 1e-9
REACH = 300.0


def random_network(rng):
    n = int(rng.integers(2, 9))
    names = [f"S{i}" for i in range(n)]
    reactions = []
    for _ in range(int(rng.integers(1, 12))):

        def side(most):
            d: dict[int, int] = {}
            for s in rng.choice(n, size=int(rng.integers(0, most + 1))):
                d[int(s)] = d.get(int(s), 0) + 1
            if d and rng.random() < 0.15:
                d[next(iter(d))] += int(rng.integers(1, 3))
            return d

        left = side(2 if rng.random() < 0.8 else 3)
        right = side(3)
        if left != right:
            reactions.append((left, right, float(10 ** rng.uniform(-2, 2.5))))
    if not reactions:
        reactions = [({0: 1}, {1: 1}, 1.0)]
    y0 = np.where(rng.random(n) < 0.25, 0.0, 10 ** rng.uniform(-3, 1, n))
    return names, reactions, y0


def crn_text(names, reactions, y0) -> str:
    def side(d):
        if not d:
            return "0"
        return " + ".join((f"{c} " if c > 1 else "") + names[s] for s, c in d.items())

    lines = [f"{side(a)} -> {side(b)} [k={float(k)!r}]" for a, b, k in reactions]
    lines += [f"init {names[i]} = {float(v)!r}" for i, v in enumerate(y0) if v > 0]
    return "\n".join(lines) + "\n"


def reference(peers, crn, y0, t1, rates):
    """The state at t1 (in `crn.species` order) by scipy Radau on the benchmarks'
    NumPy mass action (None: no finite solution, e.g. a blow-up)."""
    from scipy.integrate import solve_ivp

    kin = peers.MassAction(peers.network_spec(crn))
    kin.rates = np.asarray(rates, np.float64)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            sol = solve_ivp(
                kin.rhs,
                (0.0, t1),
                y0,
                method="Radau",
                rtol=1e-11,
                atol=1e-15,
                jac=kin.jac,
            )
    except (ValueError, OverflowError, np.linalg.LinAlgError):
        return None
    if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
        return None
    return sol.y[:, -1]


@pytest.fixture(scope="module")
def peers():
    pytest.importorskip("scipy")
    return load_benchmark("peers")


def check(peers, seed, per_sample_rates):
    rng = np.random.default_rng(seed)
    names, reactions, y0 = random_network(rng)
    t1 = float(10 ** rng.uniform(-1, 2))
    crn = parse_crn(crn_text(names, reactions, y0))
    net = compile_crn(crn)
    assert net.n_reactions == len(crn.reactions) == len(reactions)
    species = list(crn.species)  # the reference's order
    cols = [net.species.index(s) for s in species]
    y0s = np.stack([y0 * f for f in (1.0, 0.5, 2.0, 1.3)])
    start = np.zeros((4, len(species)))  # only species of some reaction
    for j, s in enumerate(species):
        start[:, j] = y0s[:, names.index(s)]
    y0_net = np.zeros((4, net.n_species))
    y0_net[:, cols] = start
    base = np.array([r.rate for r in crn.reactions])
    scales = np.ones((4, base.size))
    if per_sample_rates:
        scales = 10 ** rng.uniform(-1, 1, (4, base.size))
    refs = [reference(peers, crn, start[b], t1, base * scales[b]) for b in range(4)]
    rates = np.asarray(net.rates)[None, :] * scales if per_sample_rates else None
    for solver in (None, "rodas5p"):
        res = simulate_batch(
            net,
            None,
            t1,
            y0=y0_net,
            rates=rates,
            solver=solver,
            saveat=None,
            max_steps=20_000,
        )
        for b, ref in enumerate(refs):
            if ref is None:
                continue
            status = int(res.status[b])
            got = np.asarray(res.y_final[b])[cols]
            text = crn_text(names, reactions, y0s[b])
            where = f"seed {seed}, sample {b}, solver {solver}:\n{text}"
            assert status == 0, f"status {status} where the reference finished; {where}"
            err = np.max(np.abs(got - ref) / (RTOL * np.abs(ref) + ATOL))
            assert err <= REACH, f"scaled error {err:.3g}; {where}"


# seed 107 is left out: it takes 46 s (growth like exp(100 t) slows the reference)
@pytest.mark.parametrize(
    "seed", [100, 101, 102, 103, 104, 105, 106, 108, 109, 110, 111, 112]
)
def test_random_networks_match_an_independent_reference(peers, seed):
    check(peers, seed, per_sample_rates=False)


@pytest.mark.parametrize("seed", range(200, 206))
def test_random_rate_sets_match_an_independent_reference(peers, seed):
    check(peers, seed, per_sample_rates=True)
