"""One batch over several processes (JAX's multi-process runtime): each process
simulates its share of the chunks on its own devices, and every process gets the
whole result, in input order.

A rate ensemble of the IRIS CRN: every test input under 20 random rate sets
(3,000 samples). On one machine, two processes on the CPU:

    python examples/distributed.py --processes 2 --id 0 &
    python examples/distributed.py --processes 2 --id 1

On a GPU cluster, one process per host (or per GPU) started by the cluster's
launcher, whose environment `jax.distributed.initialize()` reads (SLURM, Open MPI,
mpi4py, Kubernetes):

    srun --nodes 4 --ntasks-per-node 1 python examples/distributed.py

With --store DIR (a folder on a file system every process sees) each process
writes its chunks there as they finish; --resume continues an interrupted run.
"""

import argparse


ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--processes", type=int, help="processes (default: the cluster's)")
ap.add_argument("--id", type=int, help="this process (default: the cluster's)")
ap.add_argument("--coordinator", default="127.0.0.1:12355", help="with --processes")
ap.add_argument("--store", help="write the results here (default: gather them)")
ap.add_argument("--resume", action="store_true", help="continue --store")
ap.add_argument("--check", action="store_true", help="compare with one process")
args = ap.parse_args()

import jax  # noqa: E402


jax.config.update("jax_enable_x64", True)
if args.processes is not None:  # on one machine: CPU collectives
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, args.processes, args.id)
else:
    jax.distributed.initialize()

import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402
from jaxcrn import scan  # noqa: E402


model = jaxcrn.load_model("experiments/models/iris.npz")
net = jaxcrn.compile_crn(jaxcrn.reduce_crn(jaxcrn.nn_to_crn(model)))
x, rates = scan.cross(jaxcrn.datasets.iris().test.x, scan.log_uniform(net, 20))
kw = dict(rates=rates, saveat=None, chunk_size=250)
res = jaxcrn.simulate_batch(net, x, 500.0, store=args.store, resume=args.resume, **kw)
agree = res.outputs_final.argmax(1) == jaxcrn.forward(model, x).argmax(1)
me = f"process {jax.process_index()} of {jax.process_count()}"
print(f"{me}: {agree.sum()}/{len(x)} agree with the network", flush=True)
if args.check:
    alone = jaxcrn.simulate_batch(net, x, 500.0, distributed=False, **kw)
    same = np.array_equal(res.outputs_final, alone.outputs_final)
    print(f"{me}: identical to one process: {same}", flush=True)
