"""The chemistry of a binary network as a differentiable function of its weights:
`trainable_crn(model)`.

`compile_crn(nn_to_crn(model))` is a host-side compilation: its stoichiometry is
integer and fixed. Here the full CRN of Algorithm 1 is rebuilt from the model's
arrays inside a traced function, so that a loss on simulated concentrations has a
gradient with respect to the latent weights (straight through the quantiser, as in
BinaryConnect), the biases (which are initial concentrations) and the rate
constants. For a binary network every weight `w` in {-1, +1} sends the product of
source rail `s` to target rail `s` with stoichiometry `(1 + w) / 2` and to the
other rail with `(1 - w) / 2`, so the reaction set does not depend on the signs:
only these coefficients do.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from ._kinetics import DenseKinetics
from ._network import MassActionNetwork, compile_crn
from ._nn2crn import nn_to_crn


__all__ = ["trainable_crn"]


def _source(l: int, i: int, rail: str) -> str:
    return f"X{i}{rail}" if l == 0 else f"H{l}_{i}{rail}"


def _target(l: int, j: int, rail: str, n_layers: int) -> str:
    return f"Y{j}{rail}" if l == n_layers - 1 else f"A{l + 1}_{j}{rail}"


@functools.lru_cache(maxsize=16)
def _structure(sizes: tuple[int, ...], dtype_name: str):
    """The dense network of an all-(+1) binary model of these sizes, with the
    weight-dependent product coefficients zeroed, and per layer the reactions of
    each source rail and the species of each target rail. Concrete arrays even
    when first called inside a traced function (the result is cached)."""
    with jax.ensure_compile_time_eval():
        return _build_structure(sizes, dtype_name)


def _build_structure(sizes: tuple[int, ...], dtype_name: str):
    dtype = jnp.dtype(dtype_name)
    params = [(np.ones((a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    crn = nn_to_crn(params)
    net = compile_crn(crn, form="dense", dtype=dtype)
    consumer = {
        rxn.reactants[0][0]: r
        for r, rxn in enumerate(crn.reactions)
        if len(rxn.reactants) == 1 and rxn.reactants[0][1] == 1
    }
    n_layers = len(sizes) - 1
    layers = []
    net_t = np.asarray(net.kinetics.net_t).copy()  # (species, reactions)
    for l in range(n_layers):
        rp = np.array([consumer[_source(l, i, "p")] for i in range(sizes[l])])
        rn = np.array([consumer[_source(l, i, "n")] for i in range(sizes[l])])
        fan_out = range(sizes[l + 1])
        tp = np.array([net.index(_target(l, j, "p", n_layers)) for j in fan_out])
        tn = np.array([net.index(_target(l, j, "n", n_layers)) for j in fan_out])
        for r, t in ((rp, tp), (rn, tn)):  # the all-(+1) model's products
            net_t[t[None, :], r[:, None]] -= 1
        layers.append((rp, rn, tp, tn))
    assert isinstance(net.kinetics, DenseKinetics)
    kinetics = eqx.tree_at(lambda k: k.net_t, net.kinetics, jnp.asarray(net_t, dtype))
    base = eqx.tree_at(lambda n: n.kinetics, net, kinetics)
    return base, tuple(layers)


def trainable_crn(
    model, rates: Float[ArrayLike, " reactions"] | None = None
) -> MassActionNetwork:
    """The full CRN of a binary `BinaryMLP` (Algorithm 1), built from its arrays so
    that simulations of it are differentiable with respect to the model.

    The result equals `compile_crn(nn_to_crn(model), form="dense")` up to the order
    of the species (see `network.species`), but its stoichiometry is computed from
    the quantised weights with straight-through gradients to the latent ones, and
    its initial concentrations from the biases (`max(b, 0)` on the positive rail of
    the unit, `max(-b, 0)` on the negative one). Call it inside the function you
    differentiate; the reaction structure depends only on the layer sizes and is
    compiled once per sizes.

    Arguments:
        model: a binary `BinaryMLP`.
        rates: rate constants, shape `(reactions,)`, in the order of
            `nn_to_crn(model).reactions` (which is the same for every binary model
            of these sizes). Default: all 1, the paper's.

    Example:
        >>> import diffrax, jax, jax.numpy as jnp, jax.random as jr
        >>> from jaxcrn import init_model, simulate, trainable_crn
        >>> model = init_model((2, 3, 2), key=jr.PRNGKey(0))
        >>> def y0_at_1(model):  # output 0 of the chemistry at t = 1, input (1, -1)
        ...     net = trainable_crn(model)
        ...     y = net.initial_state(jnp.array([1.0, -1.0]))
        ...     res = simulate(net, y, jnp.asarray(1.0), solver=diffrax.Tsit5())
        ...     return res.outputs_final[0]
        >>> grads = jax.grad(y0_at_1)(model)
        >>> grads.layers[0].weight.shape
        (2, 3)
    """
    if model.quantization != "binary":
        raise ValueError(
            f"trainable_crn needs a binary network, got quantization "
            f"{model.quantization!r}: a ternary weight of 0 removes products, which "
            "changes the reaction structure."
        )
    layers = [(layer.quantized_weight(), layer.bias) for layer in model.layers]
    return crn_of_weights(layers, rates)


def crn_of_weights(
    layers, rates: Float[ArrayLike, " reactions"] | None = None
) -> MassActionNetwork:
    """`trainable_crn` for explicit `(W, b)` pairs, `W` of shape `(fan_in,
    fan_out)`: entries +-1 give the network's CRN; other real values give the
    stoichiometry `(1 + W) / 2` and `(1 - W) / 2` of the same reactions (the
    relaxation whose derivative the straight-through gradient uses)."""
    dtype = jnp.result_type(float)
    sizes = (int(layers[0][0].shape[0]), *(int(w.shape[1]) for w, _ in layers))
    base, index = _structure(sizes, jnp.dtype(dtype).name)
    net_t = base.kinetics.net_t
    y_init = base.y_init
    for (w, b), (rp, rn, tp, tn) in zip(layers, index):
        w = jnp.asarray(w).astype(dtype)
        same, other = (1 + w) / 2, (1 - w) / 2  # (fan_in, fan_out)
        for r, t_same, t_other in ((rp, tp, tn), (rn, tn, tp)):
            net_t = net_t.at[t_same[None, :], r[:, None]].add(same)
            net_t = net_t.at[t_other[None, :], r[:, None]].add(other)
        b = jnp.asarray(b).astype(dtype)
        y_init = y_init.at[tp].add(jnp.maximum(b, 0)).at[tn].add(jnp.maximum(-b, 0))
    kinetics = eqx.tree_at(lambda k: k.net_t, base.kinetics, net_t)
    net = eqx.tree_at(lambda n: (n.kinetics, n.y_init), base, (kinetics, y_init))
    if rates is not None:
        net = net.with_rates(rates)
    return net
