"""trainable_crn: the chemistry of a binary network built from its arrays equals the
compiled CRN, and its gradients (straight through the quantiser) match central
differences of the relaxed stoichiometry."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from jaxcrn import (
    compile_crn,
    init_model,
    nn_to_crn,
    simulate,
    trainable_crn,
)
from jaxcrn._trainable import crn_of_weights


SIZES = (3, 4, 2)
X = jnp.array([0.8, -0.5, 1.2])


def _model(seed):
    model = init_model(SIZES, key=jr.PRNGKey(seed), dtype=jnp.float64)
    biases = jr.normal(jr.PRNGKey(seed + 100), (sum(SIZES[1:]),), jnp.float64)
    layers, k = [], 0
    for layer in model.layers:
        layers.append(
            eqx.tree_at(lambda l: l.bias, layer, biases[k : k + layer.fan_out])
        )
        k += layer.fan_out
    return eqx.tree_at(lambda m: m.layers, model, tuple(layers))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_compiled_crn(seed):
    model = _model(seed)
    net = trainable_crn(model)
    ref = compile_crn(nn_to_crn(model), form="dense")
    assert sorted(net.species) == sorted(ref.species)
    perm = np.array([net.index(s) for s in ref.species])  # ref order -> net order
    np.testing.assert_array_equal(np.asarray(net.y_init)[perm], np.asarray(ref.y_init))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        y = rng.uniform(0.0, 2.0, net.n_species)
        y_ref = y[perm]
        np.testing.assert_allclose(
            np.asarray(net(0.0, jnp.asarray(y), None))[perm],
            np.asarray(ref(0.0, jnp.asarray(y_ref), None)),
            rtol=1e-13,
            atol=1e-13,
        )
    reactants, products = net.stoichiometry()
    assert reactants.sum() == ref.stoichiometry()[0].sum()
    assert products.sum() == ref.stoichiometry()[1].sum()
    np.testing.assert_array_equal(
        np.asarray(net.initial_state(X))[perm], np.asarray(ref.initial_state(X))
    )


def _outputs_at(net):
    res = simulate(
        net, net.initial_state(X), jnp.asarray(1.5), solver=diffrax.Tsit5(),
        rtol=1e-10, atol=1e-12,
    )  # fmt: skip
    return jnp.sum(res.outputs_final * jnp.array([1.0, -2.0]))


@eqx.filter_jit
def _relaxed(ws, bs, rates):
    return _outputs_at(crn_of_weights(list(zip(ws, bs)), rates))


@pytest.mark.slow
def test_straight_through_gradient_is_the_relaxed_derivative():
    model = _model(3)
    rates = jnp.linspace(0.5, 1.0, compile_crn(nn_to_crn(model)).n_reactions)
    grads = eqx.filter_jit(jax.grad(lambda m: _outputs_at(trainable_crn(m, rates))))(
        model
    )
    ws = [layer.quantized_weight() for layer in model.layers]
    bs = [layer.bias for layer in model.layers]
    g_w, g_b, g_k = eqx.filter_jit(jax.grad(_relaxed, argnums=(0, 1, 2)))(ws, bs, rates)
    for layer, gw, gb in zip(grads.layers, g_w, g_b):
        np.testing.assert_allclose(layer.weight, gw, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.bias, gb, rtol=1e-12, atol=1e-14)
    # the relaxed derivative against central differences: weights, biases, rates
    eps = 1e-6
    rng = np.random.default_rng(0)
    for which in range(3):
        args = [ws, bs, rates]
        v = jax.tree_util.tree_map(
            lambda a: jnp.asarray(rng.uniform(-1, 1, a.shape)), args[which]
        )
        plus, minus = list(args), list(args)
        plus[which] = jax.tree_util.tree_map(lambda a, d: a + eps * d, args[which], v)
        minus[which] = jax.tree_util.tree_map(lambda a, d: a - eps * d, args[which], v)
        fd = (_relaxed(*plus) - _relaxed(*minus)) / (2 * eps)
        g = (g_w, g_b, g_k)[which]
        an = sum(
            jnp.sum(a * d)
            for a, d in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(v))
        )
        np.testing.assert_allclose(an, fd, rtol=1e-6, atol=1e-9)


def test_ternary_is_refused():
    model = init_model(SIZES, key=jr.PRNGKey(0), quantization="ternary")
    with pytest.raises(ValueError, match="needs a binary network"):
        trainable_crn(model)
