"""Compiled programs hold memory maps, and a process that runs out of them crashes.

XLA:CPU links every program it compiles into the process, a few memory mappings
per part of it, and JAX keeps every program it compiled for as long as the
process lives, used again or not. A process that compiles for many networks (a
scan over architectures, a loop over SBML models, a long notebook) uses more
mappings with each, and when none of the kernel's `vm.max_map_count` (65,530 by
default on Linux) is left, XLA's compiler dies with a segmentation fault or an
abort: no Python error, no result. About 350 mappings per network simulated at
XLA's default settings, so the default limit is reached after some 150-200
networks.

`release_if_near_limit`, called where the engine is about to compile (each
`simulate_batch` and `fit_rates` call), counts the mappings once at least
`CHECK_EVERY` programs were compiled since it last looked, and above
`NEAR_LIMIT` of the limit clears JAX's caches of compiled programs
(`jax.clear_caches()`, which frees their mappings) with a warning. Programs that
are used again compile again; results do not change. Elsewhere than Linux it
does nothing.
"""

import gc
import threading
import warnings


__all__ = ["maps_in_use", "release_if_near_limit"]

NEAR_LIMIT = 0.75  # fraction of vm.max_map_count at which the caches are cleared
CHECK_EVERY = 16  # compilations between two counts of the mappings (~10 ms each)

_lock = threading.Lock()
_compiles = [0]  # compilations since the mappings were last counted
_listening = [False]


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _compiles[0] += 1


def _on_event(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":  # loaded from disk: mapped too
        _compiles[0] += 1


def _listen() -> None:
    with _lock:
        if not _listening[0]:
            import jax.monitoring

            jax.monitoring.register_event_duration_secs_listener(_on_duration)
            jax.monitoring.register_event_listener(_on_event)
            _listening[0] = True
            _compiles[0] = CHECK_EVERY  # count at the first check


def maps_in_use() -> tuple[int, int] | None:
    """`(mappings of this process, the kernel's limit)`, or None where there is no
    `/proc` to read them from."""
    try:
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return None
    return used, limit


def _return_freed_memory() -> None:
    """Give the memory the cleared programs held back to the system: glibc keeps
    freed memory in the process (measured: 30 small networks simulated by the
    command line, 787 MB resident after `jax.clear_caches()`, 372 MB after
    `malloc_trim`)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def release_if_near_limit() -> bool:
    """Clear JAX's compiled programs if this process's memory mappings are near the
    kernel's limit (see the module); True if it did."""
    _listen()
    with _lock:
        if _compiles[0] < CHECK_EVERY:
            return False
        _compiles[0] = 0
    counts = maps_in_use()
    if counts is None:
        return False
    used, limit = counts
    if used < NEAR_LIMIT * limit:
        return False
    import jax

    jax.clear_caches()
    gc.collect()
    _return_freed_memory()
    after = maps_in_use()
    left = f"{after[0]:,}" if after else "fewer"
    warnings.warn(
        f"Cleared JAX's compiled programs: this process held {used:,} memory "
        f"mappings, near the kernel's limit of {limit:,} (vm.max_map_count), nearly "
        f"all of them programs XLA compiled, and XLA crashes when none are left "
        f"({left} mappings now). Programs used again compile again; results do not "
        f"change. To avoid the recompilation, call jax.clear_caches() between "
        f"networks you are done with, or raise the limit "
        f"(sysctl -w vm.max_map_count=262144).",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
