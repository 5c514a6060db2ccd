"""JAX's persistent compilation cache, for programs that outlive one process.

Most of a first `simulate_batch` call on a network of tens of species is XLA
compiling the engine for it (about 20 s for 60 species on 2 cores; a second call
takes a fraction of a second). JAX can keep compiled programs on disk and read them
back in a later process, which is what each `jaxcrn` command is: the command line
turns the cache on (`JAXCRN_CACHE`), and `use_compilation_cache` does so for a
script or notebook. Entries are keyed by the program, the compiler options and the
JAX version, so a changed network, option or release compiles afresh.
"""

import os
import pathlib
from typing import Literal


__all__ = ["cache_dir_from_env", "use_compilation_cache"]

ENV = "JAXCRN_CACHE"
_OFF = ("", "0", "off", "no", "none", "false")
# programs that compile faster than this are not written (reading one back costs a
# file read and a deserialisation, a few ms)
MIN_COMPILE_SECONDS = 0.2
MAX_BYTES = 1 << 30  # least recently used entries go beyond this


def cache_dir_from_env() -> pathlib.Path | None:
    """The cache folder `$JAXCRN_CACHE` names, None if it says `off` (or `0`, `no`,
    `none`, `false`, empty), and by default `$XDG_CACHE_HOME/jaxcrn/xla` (or
    `~/.cache/jaxcrn/xla`)."""
    value = os.environ.get(ENV)
    if value is not None:
        if value.strip().lower() in _OFF:
            return None
        return pathlib.Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return pathlib.Path(base) / "jaxcrn" / "xla"


def use_compilation_cache(
    path: str | os.PathLike | None | Literal[False] = None,
) -> pathlib.Path | None:
    """Keep the programs XLA compiles in the folder `path`, so that a later process
    (a script run again, a notebook restarted, the next `jaxcrn` command) reads
    them back instead of compiling them again. Sets JAX's own persistent cache
    (`jax_compilation_cache_dir`) for the whole process, at most 1 GiB, least
    recently used entries dropped first; programs compiled in under 0.2 s are not
    kept. The batch engine's programs (`simulate_batch`, `fit_rates`, `scan`, every
    command) are kept; those of `simulate` and `simulate_differentiable` are not:
    diffrax's solve checks its arguments through host callbacks, and JAX does not
    store programs with callbacks.

    Arguments:
        path: the cache folder, created if missing. Default: `$JAXCRN_CACHE`, else
            `$XDG_CACHE_HOME/jaxcrn/xla` or `~/.cache/jaxcrn/xla`. False: no cache
            from now on (programs already compiled stay in memory).

    Returns:
        The folder, or None where the cache is off (`path` False, or None with
        `JAXCRN_CACHE=off`).

    Raises:
        ValueError: the folder cannot be made or written (its path and why).

    Like JAX's cache it is trusted: whoever can write to the folder can make this
    process run code, so keep it private (it is created readable by you only).

    Example:
        >>> import tempfile
        >>> import jaxcrn
        >>> folder = jaxcrn.use_compilation_cache(tempfile.mkdtemp())
        >>> folder.is_dir()
        True
        >>> jaxcrn.use_compilation_cache(False)  # and off again
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if path is False:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
        return None
    folder = cache_dir_from_env() if path is None else pathlib.Path(path).expanduser()
    if folder is None:
        return None
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"compilation cache {str(folder)!r} is a file, not a folder; pass a "
            f"folder (or set {ENV}=off for no cache)."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ValueError(
            f"compilation cache {str(folder)!r} cannot be made: {e.strerror or e}; "
            f"pass a folder you can write to (or set {ENV}=off for no cache)."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"compilation cache {str(folder)!r} is not writable; pass a folder you "
            f"can write to (or set {ENV}=off for no cache)."
        )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    compilation_cache.set_cache_dir(str(folder))
    # JAX decides once, at its first compilation, whether a cache is in use: start
    # it afresh so that the folder takes effect after earlier compilations too
    compilation_cache.reset_cache()
    return folder
