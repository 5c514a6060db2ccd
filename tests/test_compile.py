import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxcrn import compile_crn, layered_structure, nn_to_crn, parse_crn, reduce_crn
from jaxcrn._kinetics import LayeredKinetics, SparseLU, fill_reducing_order

from .helpers import build_crn, random_params, small_crn_specs


FORMS = ("dense", "sparse", "layered")


@eqx.filter_jit
def _rhs(net, y):
    return net(0.0, y, None)


def _rhs_by_name(net, crn, y):
    """RHS in the CRN's species order, whatever order the network stores."""
    perm = np.array([net.index(s) for s in crn.species])
    z = jnp.zeros_like(y).at[perm].set(y)
    return _rhs(net, z)[perm]


@eqx.filter_jit
def _shifted_residual(net, y, b, lam):
    x = net.kinetics.solve(net.kinetics.factor(y, net.rates, lam), b)
    jac = jax.jacfwd(lambda z: net(0.0, z, None))(y)
    return (lam * jnp.eye(net.n_species) - jac) @ x - b


FEEDFORWARD = """
X1p -> A1p + A2n
X1n -> A1n + A2p
X2 -> A1p + 2 A2p
A1p -> M1 + H1p
M1 + A1n -> H1n
A2p -> M2 + H2p
M2 + A2n -> H2n
H1p -> Yp
H1n -> Yn
H2p -> Yn + Yp
H2n -> Yp
C + H1p -> C + Q
2 X2 -> Z  [k=0.5]
0 -> C  [k=0.3]
init A1p = 0.5
input x1 = X1p - X1n
input x2 = X2
output y = Yp - Yn
"""


@pytest.fixture(scope="module")
def feedforward():
    return parse_crn(FEEDFORWARD)


def test_forms_agree_on_rhs_and_flux(feedforward):
    # zero-order reactions and a catalyst: not alignable, so dense and sparse only
    nets = {f: compile_crn(feedforward, form=f) for f in ("dense", "sparse")}
    y = jnp.asarray(np.random.default_rng(0).uniform(0, 2, len(feedforward.species)))
    ref = nets["dense"](0.0, y, None)
    for f in nets:
        np.testing.assert_allclose(nets[f](0.0, y, None), ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(nets[f].flux(y), nets["dense"].flux(y), rtol=1e-12)
    with pytest.raises(ValueError, match="consumed by one reaction"):
        compile_crn(feedforward, form="layered")


def test_rhs_matches_hand_written_mass_action():
    crn = parse_crn("A + B -> C [k=2]\n2 C -> A [k=0.5]\n0 -> B [k=3]")
    y = jnp.array([0.3, 0.7, 1.1])
    a, b, c = 0.3, 0.7, 1.1
    r1, r2, r3 = 2 * a * b, 0.5 * c * c, 3.0
    expected = [-r1 + r2, -r1 + r3, r1 - 2 * r2]
    for f in ("dense", "sparse"):
        np.testing.assert_allclose(compile_crn(crn, form=f)(0.0, y, None), expected)


def test_stoichiometry_is_exact():
    crn = parse_crn("A + 2 B -> 3 C\nC -> 0")
    reac, prod = compile_crn(crn, form="dense").stoichiometry()
    np.testing.assert_array_equal(reac, [[1, 2, 0], [0, 0, 1]])
    np.testing.assert_array_equal(prod, [[0, 0, 3], [0, 0, 0]])


@pytest.mark.parametrize("form", ("dense", "sparse"))
def test_shifted_solve_is_exact(feedforward, form):
    """The sparse LU (scheduled from the stoichiometry, no pivoting) solves
    `(lam I - J) x = b` to round-off; J from autodiff of the right-hand side."""
    net = compile_crn(feedforward, form=form)
    rng = np.random.default_rng(1)
    y = jnp.asarray(rng.uniform(0, 2, net.n_species))
    b = jnp.asarray(rng.normal(size=net.n_species))
    resid = _shifted_residual(net, y, b, jnp.asarray(3.7))
    assert float(jnp.abs(resid).max()) < 1e-12


@pytest.mark.parametrize("form", FORMS)
def test_solves_on_compiled_networks(form):
    """Block substitution (layered) and the sparse LU (dense, sparse) on CRNs
    compiled from a network, full and reduced."""
    rng = np.random.default_rng(2)
    full = nn_to_crn(random_params((3, 5, 4, 2), rng, ternary=True))
    for crn in (reduce_crn(full), full):
        net = compile_crn(crn, form=form)
        y = jnp.asarray(rng.uniform(0, 3, net.n_species))
        b = jnp.asarray(rng.normal(size=net.n_species))
        resid = _shifted_residual(net, y, b, jnp.asarray(0.25))
        assert float(jnp.abs(resid).max()) < 1e-10


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(spec=small_crn_specs(), seed=st.integers(0, 2**31 - 1))
def test_sparse_lu_matches_dense_solve(spec, seed):
    """On random small CRNs (any structure: cycles, autocatalysis, zero-order
    reactions), the scheduled sparse LU equals a dense NumPy solve, one sample and
    several lanes at once."""
    crn = build_crn(spec)
    if not crn.species:
        return
    rng = np.random.default_rng(seed)
    net = compile_crn(crn, form="sparse")
    n = net.n_species
    ys = rng.uniform(0.1, 2.0, (n, 3))
    bs = rng.normal(size=(n, 3))
    lam = 50.0  # lam*I - J well conditioned (a small step)
    kin = net.kinetics
    x = np.asarray(
        kin.solve(kin.factor(jnp.asarray(ys), net.rates, lam), jnp.asarray(bs))
    )
    for lane in range(3):
        jac = np.asarray(net.jacobian(jnp.asarray(ys[:, lane])))
        want = np.linalg.solve(lam * np.eye(n) - jac, bs[:, lane])
        np.testing.assert_allclose(x[:, lane], want, rtol=1e-9, atol=1e-10)


@pytest.mark.slow
def test_fill_reducing_order_avoids_fill():
    """An arrow pattern eliminated hub-first fills the whole matrix; the order
    eliminates the hub once at most one leaf is left, and the LU keeps the
    pattern's non-zeros."""
    n = 6
    pat = [(0, j) for j in range(1, n)] + [(j, 0) for j in range(1, n)]
    pat = np.array(pat + [(i, i) for i in range(n)])
    assert fill_reducing_order(n, pat).tolist().index(0) >= n - 2
    src = np.arange(len(pat))
    lu = SparseLU.build(
        n,
        src,
        pat[:, 0],
        pat[:, 1],
        np.ones(len(pat)),
        n_values=len(pat),
        dtype=jnp.float64,
    )
    assert lu.nnz == len(pat)
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, len(pat))
    b = rng.normal(size=n)
    jac = np.zeros((n, n))
    np.add.at(jac, (pat[:, 0], pat[:, 1]), v)
    x = lu.solve(lu.factor(10.0, jnp.asarray(v)), jnp.asarray(b))
    np.testing.assert_allclose(
        np.asarray(x), np.linalg.solve(10 * np.eye(n) - jac, b), rtol=1e-12
    )


def test_layered_structure_levels():
    s = layered_structure(parse_crn("A -> B\nB + C -> D\nD -> E"))
    assert s.ok and s.level.tolist() == [0, 1, 1, 2, 3]  # B + C: one block
    bad = layered_structure(parse_crn("A -> B\nB -> C\nC -> A"))
    assert not bad.ok and "cycle of 3 species" in bad.reason
    with pytest.raises(ValueError, match="feed-forward"):
        compile_crn(parse_crn("A -> B\nB -> C\nC -> A"), form="layered")


def test_auto_form():
    assert compile_crn(parse_crn("A -> B")).form == "layered"
    assert compile_crn(parse_crn("A -> B\nB -> C\nC -> A")).form == "sparse"


def test_initial_state_dual_rail_encoding(feedforward):
    net = compile_crn(feedforward)
    y0 = net.initial_state(jnp.array([-1.5, 2.0]))
    i = {s: k for k, s in enumerate(net.species)}
    assert float(y0[i["X1p"]]) == 0.0 and float(y0[i["X1n"]]) == 1.5
    assert float(y0[i["X2"]]) == 2.0 and float(y0[i["A1p"]]) == 0.5
    y1 = net.initial_state(jnp.array([0.25, 1.0]), offset=1.0)
    assert float(y1[i["X1p"]]) == 1.25 and float(y1[i["X1n"]]) == 1.0
    # a single-species input cannot be negative
    assert bool(jnp.isnan(net.initial_state(jnp.array([1.0, -1.0]))).any())


def test_read_outputs(feedforward):
    net = compile_crn(feedforward)
    y = jnp.arange(net.n_species, dtype=jnp.float64)
    assert float(net.read_outputs(y)[0]) == net.index("Yp") - net.index("Yn")
    assert net.read_outputs(jnp.stack([y, 2 * y])).shape == (2, 1)


def test_bad_input_messages(feedforward):
    net = compile_crn(feedforward)
    with pytest.raises(ValueError, match="x has shape \\(3,\\) but the network has 2"):
        net.initial_state(jnp.ones(3))
    with pytest.raises(ValueError, match="rates has 3 entries"):
        net.with_rates(jnp.ones(3))
    with pytest.raises(KeyError, match="No species named 'Q9'"):
        net.index("Q9")
    with pytest.raises(ValueError, match="form='fast' is not one of"):
        compile_crn(feedforward, form="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CRN"):
        compile_crn("A -> B")  # type: ignore[arg-type]


@settings(max_examples=4)
@given(seed=st.integers(0, 2**31 - 1))
def test_random_networks_forms_agree(seed):
    rng = np.random.default_rng(seed)
    sizes = tuple(rng.integers(1, 5, size=rng.integers(2, 4)))
    crn = nn_to_crn(random_params(sizes, rng, ternary=True))
    if rng.random() < 0.5:
        crn = reduce_crn(crn)
    y = jnp.asarray(rng.uniform(0, 2, len(crn.species)))
    ref = _rhs_by_name(compile_crn(crn, form="dense"), crn, y)
    nets = [compile_crn(crn, form="sparse"), compile_crn(crn, form="layered")]
    assert isinstance(nets[1].kinetics, LayeredKinetics)
    for net in nets:
        np.testing.assert_allclose(
            _rhs_by_name(net, crn, y), ref, rtol=1e-12, atol=1e-12
        )


def test_float32_compile():
    net = compile_crn(parse_crn("A -> B\ninit A = 1"), dtype=jnp.float32)
    assert net.y_init.dtype == jnp.float32 and net.rates.dtype == jnp.float32
