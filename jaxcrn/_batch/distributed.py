"""Many processes on JAX's own multi-process runtime (`jax.distributed`).

After `jax.distributed.initialize(...)` every process runs the same program; a
`simulate_batch` call made by all of them with the same arguments splits the
batch's chunks among them (round robin over the chunks still to do), each process
runs its chunks on its own local devices, and the results are gathered with
`jax.experimental.multihost_utils` (or, with a store on a shared file system,
written there by each process and read back by all), so that every process
returns the whole batch in input order. There is no scheduler of our own: the
assignment is fixed by the chunk number, and the collectives are JAX's.
"""

import dataclasses

import numpy as np


__all__ = ["Processes"]


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among the processes of the run."""

    count: int = 1
    index: int = 0

    @classmethod
    def of(cls, distributed: bool | None) -> "Processes":
        """`distributed`: None (every process of `jax.distributed` when it was
        initialised, else this one), True (the same, but said explicitly) or False
        (this process alone, whatever the others do)."""
        import jax

        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(
                f"distributed must be None, True or False, got {distributed!r}."
            )
        if distributed is False:
            return cls()
        return cls(jax.process_count(), jax.process_index())

    @property
    def many(self) -> bool:
        return self.count > 1

    def mine(self, chunks: list[int]) -> list[int]:
        """This process's chunks: every `count`-th of `chunks` from its index."""
        return chunks[self.index :: self.count]

    def barrier(self, name: str) -> None:
        if self.many:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

    def broadcast(self, value: np.ndarray) -> np.ndarray:
        """Process 0's `value` on every process."""
        if not self.many:
            return value
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.broadcast_one_to_all(value))

    def check_same(self, fingerprint: str) -> None:
        """Every process was called with the same arguments (their hash)."""
        if not self.many:
            return
        from jax.experimental import multihost_utils

        mine = np.frombuffer(bytes.fromhex(fingerprint), np.uint8)
        every = np.asarray(multihost_utils.process_allgather(mine))
        differ = [p for p in range(self.count) if not np.array_equal(every[p], mine)]
        if differ:
            raise ValueError(
                f"process {self.index} was called with other arguments than "
                f"process(es) {', '.join(map(str, differ))}: in a multi-process run "
                "every process must call simulate_batch with the same network, "
                "inputs, rates, y0 and options (pass distributed=False to simulate "
                "in this process alone)."
            )

    def gather(self, parts: dict, n_chunks: int, chunk_size: int, n: int) -> list:
        """Every chunk's result on every process, in chunk order. `parts` holds
        this process's results `{chunk: SimulationResult}`: the chunks of
        `mine(range(n_chunks))`, or, for a process without any, one other chunk
        (its result gives the layout, and is not used)."""
        import jax
        from jax.experimental import multihost_utils

        order = list(range(n_chunks))
        slots = -(-n_chunks // self.count)
        mine = self.mine(order)
        template = next(iter(parts.values()))
        leaves, treedef = jax.tree_util.tree_flatten(template)
        local = []
        for i, proto in enumerate(leaves):
            proto = np.asarray(proto)
            out = np.zeros((slots, chunk_size) + proto.shape[1:], proto.dtype)
            for s, k in enumerate(mine):
                a = np.asarray(jax.tree_util.tree_leaves(parts[k])[i])
                out[s, : a.shape[0]] = a
            local.append(out)
        every = [np.asarray(a) for a in multihost_utils.process_allgather(local)]
        result = []
        for k in order:
            p, s = k % self.count, k // self.count
            m = max(0, min(chunk_size, n - k * chunk_size))
            result.append(
                jax.tree_util.tree_unflatten(treedef, [a[p, s, :m] for a in every])
            )
        return result
