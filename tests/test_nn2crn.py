import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from jaxcrn import (
    Rodas5P,
    compile_crn,
    count_reactions,
    forward,
    is_noncompetitive,
    layered_structure,
    nn_to_crn,
    parse_crn,
    reduce_crn,
    simulate_batch,
)
from jaxcrn._nn2crn import bind_inputs, network_params, stable_state

from .helpers import random_params


W0 = np.array([[1.0, -1.0], [1.0, 1.0]])
B0 = np.array([0.5, -0.25])
W1 = np.array([[1.0], [-1.0]])
B1 = np.array([-1.0])
NET_221 = [(W0, B0), (W1, B1)]

EXPECTED_221 = """
X0p -> A1_0p + A1_1n
X0n -> A1_0n + A1_1p
X1p -> A1_0p + A1_1p
X1n -> A1_0n + A1_1n
A1_0p -> M1_0 + H1_0p
M1_0 + A1_0n -> H1_0n
A1_1p -> M1_1 + H1_1p
M1_1 + A1_1n -> H1_1n
H1_0p -> Y0p
H1_0n -> Y0n
H1_1p -> Y0n
H1_1n -> Y0p
init A1_0p = 0.5
init A1_1n = 0.25
init Y0n = 1
input x0 = X0p - X0n
input x1 = X1p - X1n
output y0 = Y0p - Y0n
"""

EXPECTED_221_REDUCED = """
X0p -> M1_0 + Y0p + A1_1n
X0n -> A1_0n + M1_1 + Y0n
X1p -> M1_0 + M1_1
X1n -> A1_0n + A1_1n
M1_0 + A1_0n -> Y0n
M1_1 + A1_1n -> Y0p
init M1_0 = 0.5
init A1_1n = 0.25
init Y0n = 0.5
input x0 = X0p - X0n
input x1 = X1p - X1n
output y0 = Y0p - Y0n
"""


def _as_sets(crn):
    rxns = sorted(
        (tuple(sorted(r.reactants)), tuple(sorted(r.products)), r.rate)
        for r in crn.reactions
    )
    return rxns, sorted(crn.init), crn.inputs, crn.outputs


def test_algorithm1_by_hand():
    assert nn_to_crn(NET_221) == parse_crn(EXPECTED_221)


def test_algorithm2_by_hand():
    red = reduce_crn(nn_to_crn(NET_221))
    assert _as_sets(red) == _as_sets(parse_crn(EXPECTED_221_REDUCED))


def test_algorithm2_without_netting_keeps_both_rails():
    red = reduce_crn(nn_to_crn(NET_221), net_dual_rail=False)
    x1p = next(r for r in red.reactions if r.reactants == (("X1p", 1),))
    assert dict(x1p.products) == {"M1_0": 1, "M1_1": 1, "Y0p": 1, "Y0n": 1}
    assert dict(red.init)["Y0p"] == 0.5 and dict(red.init)["Y0n"] == 1.0


@pytest.mark.parametrize(
    "sizes, full, reduced_bimol, reduced_all",
    [((4, 8, 3), 40, 8, 16), ((10, 32, 4), 148, 32, 52)],
)
def test_paper_reaction_counts(sizes, full, reduced_bimol, reduced_all):
    crn = nn_to_crn(random_params(sizes, np.random.default_rng(0)))
    red = reduce_crn(crn)
    assert count_reactions(crn).reactions == full
    c = count_reactions(red)
    assert (c.bimolecular, c.reactions, c.unimolecular) == (
        reduced_bimol,
        reduced_all,
        2 * sizes[0],
    )


@pytest.mark.slow
def test_mnist_reaction_counts():
    crn = nn_to_crn(random_params((196, 512, 512, 10), np.random.default_rng(0)))
    red = reduce_crn(crn)
    assert (count_reactions(crn).reactions, count_reactions(crn).species) == (
        4488,
        5532,
    )
    c = count_reactions(red)
    assert (c.reactions, c.bimolecular, c.species) == (1416, 1024, 2460)


def test_compiled_crns_are_noncompetitive():
    rng = np.random.default_rng(3)
    crn = nn_to_crn(random_params((3, 4, 4, 2), rng, ternary=True))
    assert is_noncompetitive(crn) and is_noncompetitive(reduce_crn(crn))
    assert layered_structure(crn).ok and layered_structure(reduce_crn(crn)).ok


def test_competitive_crn_is_named():
    check = is_noncompetitive(parse_crn("A + B -> C\nA -> D\nB -> E"))
    assert not check and check.species == "A"
    assert "A is consumed by reaction 1" in check.reason
    with pytest.raises(ValueError, match="non-competitive"):
        stable_state(parse_crn("A -> B\nA -> C\ninit A = 1"))


def test_ternary_zero_rows_keep_declarations():
    w0 = np.array([[0.0, 0.0], [1.0, 0.0]])  # input 0 unused, hidden 1 dead
    w1 = np.array([[1.0, 0.0], [0.0, 0.0]])  # output 1 unused
    crn = nn_to_crn([(w0, np.zeros(2)), (w1, np.zeros(2))])
    assert not any(r.reactants == (("X0p", 1),) for r in crn.reactions)
    assert {"X0p", "X0n", "Y1p", "Y1n"} <= set(crn.species)
    s = stable_state(crn, [5.0, 2.0])
    assert s["Y0p"] - s["Y0n"] == 2.0 and s["Y1p"] == s["Y1n"] == 0.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ([(np.array([[0.5]]), np.zeros(1))], r"W0\[0, 0\] = 0.5: weights must be"),
        ([(np.ones((2, 3)), np.zeros(2))], "b0 has shape"),
        (
            [(np.ones((2, 3)), np.zeros(3)), (np.ones((2, 1)), np.zeros(1))],
            "W1 has 2 inputs but layer 0 has 3 outputs",
        ),
        ([], "no layers"),
    ],
)
def test_bad_networks_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        nn_to_crn(bad)


def test_keep_inputs_false_needs_bound_inputs():
    crn = nn_to_crn(NET_221)
    with pytest.raises(ValueError, match="bind the inputs first"):
        reduce_crn(crn, keep_inputs=False)
    bound = bind_inputs(crn, [1.5, -0.5])
    red = reduce_crn(bound, keep_inputs=False)
    assert all(r.order == 2 for r in red.reactions)
    s = stable_state(red)
    expected = forward(NET_221, np.array([[1.5, -0.5]]))[0, 0]
    assert s["Y0p"] - s["Y0n"] == pytest.approx(expected, abs=1e-12)


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**31 - 1),
    depth=st.integers(1, 3),
    ternary=st.booleans(),
)
def test_completion_equals_forward_pass(seed, depth, ternary):
    """Exact rate-independent semantics (reactions run to completion in dependency
    order) of the full and reduced CRNs equal the network, for every shape."""
    rng = np.random.default_rng(seed)
    sizes = tuple(int(v) for v in rng.integers(1, 7, size=depth + 1))
    params = random_params(sizes, rng, ternary=ternary, bias_scale=1.0)
    x = rng.normal(size=sizes[0])
    expected = forward(params, x[None])[0]
    full = nn_to_crn(params)
    for crn in (full, reduce_crn(full), reduce_crn(full, net_dual_rail=False)):
        s = stable_state(crn, x)
        out = [s[f"Y{j}p"] - s[f"Y{j}n"] for j in range(sizes[-1])]
        np.testing.assert_allclose(out, expected, atol=1e-9)


def _hidden_margin(params, x):
    """Smallest |pre-activation| of any hidden unit (the CRN converges at that
    rate, so tiny margins need very long simulations)."""
    h, margin = x, np.inf
    for w, b in params[:-1]:
        z = h @ w + b
        margin = min(margin, float(np.abs(z).min()))
        h = np.maximum(z, 0)
    return margin


@pytest.fixture(scope="module")
def fixed_network():
    """A fixed ternary 3-4-4-2 network, compiled once (full and reduced)."""
    params = random_params(
        (3, 4, 4, 2), np.random.default_rng(11), ternary=True, bias_scale=1.0
    )
    full = nn_to_crn(params)
    return params, {"full": compile_crn(full), "reduced": compile_crn(reduce_crn(full))}


def _inputs_with_margin(params, rng, n=4, margin=0.1, tries=2000):
    """`n` random inputs whose hidden pre-activations all clear `margin`; None when
    `tries` draws find too few (a unit whose pre-activation is its bias alone,
    below the margin, has none: the search would never end)."""
    xs = []
    for _ in range(tries):
        x = rng.normal(size=params[0][0].shape[0])
        if _hidden_margin(params, x) > margin:
            xs.append(x)
            if len(xs) == n:
                return np.stack(xs)
    return None


@pytest.mark.slow
@settings(max_examples=3)
@given(seed=st.integers(0, 2**31 - 1), random_rates=st.booleans())
def test_simulated_equilibrium_equals_forward_pass(fixed_network, seed, random_rates):
    """Inputs and rate constants vary (log-uniform in [0.1, 10]); the simulated
    equilibrium of the full and reduced CRN equals the network's output."""
    params, nets = fixed_network
    rng = np.random.default_rng(seed)
    x = _inputs_with_margin(params, rng)
    assert x is not None  # the fixed network has inputs with margins
    expected = forward(params, x)
    for net in nets.values():
        t1 = 250.0
        if random_rates:
            rates = np.exp(rng.uniform(np.log(0.1), np.log(10.0), net.n_reactions))
            net = net.with_rates(jnp.asarray(rates))
            t1 = 250.0 / rates.min()
        # Rodas5P throughout (the automatic choice would switch to it for the
        # long horizons of random rates anyway): one compilation per network
        res = simulate_batch(
            net,
            x,
            t1,
            progress=False,
            saveat=None,
            exact_inputs=False,
            solver=Rodas5P(),
        )
        np.testing.assert_allclose(res.outputs_final, expected, atol=1e-4)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    depth=st.integers(1, 3),
    ternary=st.booleans(),
    random_rates=st.booleans(),
)
def test_simulated_equilibrium_property_all_shapes(seed, depth, ternary, random_rates):
    """1-3 layers, widths 1-6, binary or ternary, rates 1 or log-uniform in
    [0.1, 10]: the simulated equilibrium of the full and the reduced CRN equals the
    network's output within 1e-4."""
    rng = np.random.default_rng(seed)
    sizes = tuple(int(v) for v in rng.integers(1, 7, size=depth + 1))
    params = random_params(sizes, rng, ternary=ternary, bias_scale=1.0)
    x = _inputs_with_margin(params, rng, n=3)
    assume(x is not None)  # a network whose equilibrium is not near a kink
    expected = forward(params, x)
    full = nn_to_crn(params)
    for crn in (full, reduce_crn(full)):
        net = compile_crn(crn)
        t1 = 300.0
        if random_rates and net.n_reactions:  # all-zero ternary weights: none
            rates = np.exp(rng.uniform(np.log(0.1), np.log(10.0), net.n_reactions))
            net = net.with_rates(jnp.asarray(rates))
            t1 = 300.0 / rates.min()
        res = simulate_batch(net, x, t1, progress=False, saveat=None)
        np.testing.assert_allclose(res.outputs_final, expected, atol=1e-4)


def test_network_params_from_model(tmp_path):
    import jax

    from jaxcrn import init_model, quantized_params

    model = init_model((3, 4, 2), key=jax.random.PRNGKey(0))
    params = network_params(model)
    for (w, b), (w2, b2) in zip(params, quantized_params(model), strict=True):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    x = np.random.default_rng(0).normal(size=(5, 3))
    s = [stable_state(nn_to_crn(model), xi) for xi in x]
    out = np.array([[si[f"Y{j}p"] - si[f"Y{j}n"] for j in range(2)] for si in s])
    np.testing.assert_allclose(out, forward(model, x), atol=1e-9)
