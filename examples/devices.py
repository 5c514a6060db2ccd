"""Spread a batch over every local device: each worker thread runs its share of
every chunk on its own device, and the results come back in input order.

Here two CPU devices, forced (a GPU machine needs no flag: every GPU is used):

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python examples/devices.py
"""

import jax


jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402


model = jaxcrn.load_model("experiments/models/iris.npz")
net = jaxcrn.compile_crn(jaxcrn.reduce_crn(jaxcrn.nn_to_crn(model)))
x = jaxcrn.datasets.iris().test.x  # 150 inputs
devices = jax.devices()
plan = jaxcrn.plan_batch(net, len(x), devices=devices, workers=len(devices))
print(f"{len(devices)} devices: {', '.join(plan.devices)}")
every = jaxcrn.simulate_batch(net, x, 50.0, devices=devices, workers=len(devices))
one = jaxcrn.simulate_batch(net, x, 50.0, devices=devices[:1], workers=len(devices))
agree = every.outputs_final.argmax(1) == jaxcrn.forward(model, x).argmax(1)
print(f"{agree.sum()}/{len(x)} agree with the network")
print("identical to one device:", np.array_equal(every.outputs, one.outputs))
