"""A result store: a batch's results on disk, chunk by chunk, so that an interrupted
run loses at most the chunks in flight (`simulate_batch(..., store=path)`).

A store is a folder:

    store.json          what was run: the batch size, the chunk size and a
                        fingerprint of every argument that decides the results
                        (network, inputs, y0, rates, t1, times, tolerances, method)
    chunks/000003.npz   samples [3 c, 4 c) as a `SimulationResult` file
    index.json          the index: which chunks are done, with the sha256 of each
                        chunk's file (`index-<p>.json` for process p > 0 of a
                        multi-process run)

Every file is written through `jaxcrn._files` (a temporary file in the same folder,
flushed to disk, then renamed over the target), so a file that exists is complete.
A chunk is done when the index lists it, and the index is rewritten only after the
chunk's file is in place: a chunk killed mid-write is never listed, and a chunk
written but not yet listed is simply computed again. Resuming reads the index,
checks that `store.json` describes the same run, and computes the other chunks.
A chunk read back must have the hash the index lists for it: a file replaced,
copied over another chunk's or edited is damage, never another chunk's results.
"""

import datetime
import glob
import hashlib
import json
import os
import re

import numpy as np

from .._files import to_json, write_output


__all__ = ["Store", "fingerprint_of"]

FORMAT = "jaxcrn.store/2"  # 2: the index lists each chunk file's sha256
META = "store.json"
INDEX = re.compile(r"index(?:-([0-9]+))?\.json")
# keys of store.json that say how it was made, not what was run
INFO = ("format", "created", "jaxcrn")


def digest(*arrays) -> str | None:
    """sha256 of arrays (their dtype, shape and bytes); None for None."""
    if all(a is None for a in arrays):
        return None
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_digest(path: str) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def network_digest(network) -> str:
    """sha256 of a network: its array leaves and its static names and layout."""
    import equinox as eqx
    import jax

    leaves = jax.tree_util.tree_leaves(eqx.filter(network, eqx.is_array))
    h = hashlib.sha256(digest(*[np.asarray(x) for x in leaves]).encode())
    static = (
        network.species,
        network.input_names,
        network.input_pos,
        network.input_neg,
        network.output_names,
        network.output_pos,
        network.output_neg,
        network.form,
    )
    h.update(repr(static).encode())
    return h.hexdigest()


def fingerprint_of(network, *, inputs, y0, rates, ts, options: dict) -> dict:
    """What decides a batch's results, as JSON-able values (hashes for arrays)."""
    return {
        "network": network_digest(network),
        "species": len(network.species),
        "reactions": int(network.n_reactions),
        "inputs": digest(inputs),
        "y0": digest(y0),
        "rates": digest(rates),
        "times": None if ts is None else digest(np.asarray(ts)),
        "n_times": 0 if ts is None else int(np.asarray(ts).shape[0]),
        **options,
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxcrn")
    except PackageNotFoundError:  # pragma: no cover - run from a bare tree
        return "0+unknown"


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable {what} ({e}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a {what} (expected a JSON object).")
    return data


class Store:
    """The result store in folder `path` (see the module's docstring).

    Arguments:
        path: the folder (created if needed).
        fingerprint: what is run (`fingerprint_of`); with `batch` and `chunk_size`
            it must equal what the store holds when it exists.
        batch, chunk_size: samples, and samples per chunk (the last may be short).
        resume: continue a store that holds a run; without it a store that holds
            anything is refused (nothing is ever overwritten).
        process: this process's index (0 in a single-process run): which index
            file it writes.
        create: whether this process creates the store (process 0); the others
            only open it, after process 0 made it.
    """

    def __init__(
        self,
        path,
        fingerprint: dict,
        batch: int,
        chunk_size: int,
        *,
        resume: bool = False,
        process: int = 0,
        create: bool = True,
    ):
        self.path = os.fspath(path)
        self.batch = int(batch)
        self.chunk_size = int(chunk_size)
        self.n_chunks = -(-self.batch // self.chunk_size)
        self.process = int(process)
        self.meta = {
            "format": FORMAT,
            "batch": self.batch,
            "chunk_size": self.chunk_size,
            **fingerprint,
        }
        self._done: set[int] = set()
        self._hashes: dict[int, str] = {}  # chunk -> sha256 of its file, as listed
        meta_path = os.path.join(self.path, META)
        if create:
            self._create_or_check(meta_path, resume)
        else:
            self._check(_read_json(meta_path, "jaxcrn result store"), meta_path)
        self._done = self.read_index()

    # ---------------------------------------------------------------- opening

    @property
    def chunk_folder(self) -> str:
        return os.path.join(self.path, "chunks")

    def _create_or_check(self, meta_path: str, resume: bool) -> None:
        p = self.path
        if os.path.exists(p) and not os.path.isdir(p):
            raise NotADirectoryError(
                f"store {p} exists and is not a folder; name a folder for the store."
            )
        if os.path.isfile(meta_path):
            held = _read_json(meta_path, "jaxcrn result store")
            if not resume:
                done = self.read_index()
                k = sum(self._rows(c) for c in done if c < self.n_chunks)
                raise FileExistsError(
                    f"store {p} already holds a run ({k:,} of "
                    f"{int(held.get('batch', 0)):,} samples done); pass resume=True "
                    "(--resume) to continue it, or choose another store (a store is "
                    "never overwritten)."
                )
            self._check(held, meta_path)
            self._clean()
            return
        if os.path.isdir(p) and os.listdir(p):
            raise FileExistsError(
                f"store {p} is a folder that holds other files (no {META}); choose "
                "an empty or new folder for the store."
            )
        try:
            os.makedirs(self.chunk_folder, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the store {p}: {e.strerror or e}.") from None
        meta = dict(self.meta)
        meta["created"] = datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        )
        meta["jaxcrn"] = _version()
        write_output(meta_path, to_json(meta, indent=1) + "\n")

    def _check(self, held: dict, meta_path: str) -> None:
        if held.get("format") != FORMAT:
            fmt = held.get("format")
            if isinstance(fmt, str) and fmt.startswith("jaxcrn.store/"):
                raise ValueError(
                    f"{meta_path}: a result store in format {fmt!r}, written by "
                    f"another jaxcrn version; this one reads {FORMAT!r}. Start a new "
                    "store (another folder) to run it again."
                )
            raise ValueError(
                f"{meta_path}: not a jaxcrn result store (format {fmt!r}, expected "
                f"{FORMAT!r})."
            )
        want = {k: v for k, v in self.meta.items() if k not in INFO}
        have = {k: v for k, v in held.items() if k not in INFO}
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:

            def show(v):
                if isinstance(v, str) and len(v) == 64:
                    return f"hash {v[:12]}..."
                return json.dumps(v)

            parts = [
                f"{k}: {show(have.get(k))} in the store, {show(want.get(k))} now"
                for k in diff[:4]
            ]
            raise ValueError(
                f"store {self.path} holds a different run ("
                + "; ".join(parts)
                + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
                + "); resume it with the same arguments, or choose another store."
            )

    def _clean(self) -> None:
        """Remove temporaries left by a killed writer (never listed as done)."""
        for tmp in glob.glob(os.path.join(self.chunk_folder, ".*.tmp")) + glob.glob(
            os.path.join(self.path, ".*.tmp")
        ):
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    # ---------------------------------------------------------------- the index

    def _index_path(self, process: int) -> str:
        name = "index.json" if process == 0 else f"index-{process}.json"
        return os.path.join(self.path, name)

    def read_index(self) -> set[int]:
        """The chunks listed as done by any process's index file (and, kept for
        `read`, the hash listed for each)."""
        done: set[int] = set()
        if not os.path.isdir(self.path):
            return done
        for name in sorted(os.listdir(self.path)):
            if not INDEX.fullmatch(name):
                continue
            path = os.path.join(self.path, name)
            data = _read_json(path, "store index")
            chunks = data.get("done", [])
            if not isinstance(chunks, list) or not all(
                isinstance(c, int) and 0 <= c for c in chunks
            ):
                raise ValueError(f"{path}: 'done' must be a list of chunk numbers.")
            hashes = data.get("sha256", {})
            if not isinstance(hashes, dict) or not all(
                isinstance(h, str) and k.isdigit() for k, h in hashes.items()
            ):
                raise ValueError(
                    f"{path}: 'sha256' must map chunk numbers to file hashes."
                )
            missing = [c for c in chunks if str(c) not in hashes]
            if missing:
                raise ValueError(
                    f"{path}: chunk {missing[0]} is listed as done without the hash "
                    "of its file; the store is damaged."
                )
            done.update(chunks)
            self._hashes.update({int(k): h for k, h in hashes.items()})
        return done

    def done(self) -> set[int]:
        """Chunks done (as of opening, plus those this process wrote since)."""
        return set(self._done)

    def _rows(self, k: int) -> int:
        start = k * self.chunk_size
        return max(0, min(self.chunk_size, self.batch - start))

    def samples_done(self) -> int:
        return sum(self._rows(k) for k in self._done if k < self.n_chunks)

    def done_mask(self) -> np.ndarray:
        """`(batch,)` bool: the samples whose results are in the store."""
        mask = np.zeros(self.batch, bool)
        for k in self._done:
            mask[k * self.chunk_size : (k + 1) * self.chunk_size] = True
        return mask

    # ---------------------------------------------------------------- chunks

    def chunk_path(self, k: int) -> str:
        return os.path.join(self.chunk_folder, f"{k:06d}.npz")

    def write(self, k: int, result) -> None:
        """Write chunk `k` (complete before it is renamed into place), then list it
        in this process's index."""
        from .._results import to_arrays

        rows = self._rows(k)
        if np.asarray(result.status).shape != (rows,):
            raise ValueError(
                f"chunk {k} has {np.asarray(result.status).shape} samples, expected "
                f"{rows}."
            )
        arrays = to_arrays(result)
        path = self.chunk_path(k)
        write_output(path, lambda f: np.savez(f, **arrays), overwrite=True)
        own = self._own_index()
        own[k] = file_digest(path)
        self._done.add(k)
        self._hashes[k] = own[k]
        index = {
            "format": FORMAT,
            "batch": self.batch,
            "chunk_size": self.chunk_size,
            "done": sorted(own),
            "samples_done": sum(self._rows(c) for c in own),
            "sha256": {str(c): own[c] for c in sorted(own)},
        }
        write_output(
            self._index_path(self.process), to_json(index) + "\n", overwrite=True
        )

    def _own_index(self) -> dict[int, str]:
        """This process's index: chunk -> the hash of its file."""
        path = self._index_path(self.process)
        if not os.path.exists(path):
            return {}
        data = _read_json(path, "store index")
        hashes = data.get("sha256", {})
        return {c: hashes[str(c)] for c in data.get("done", [])}

    def read(self, k: int):
        """The `SimulationResult` of chunk `k` (listed as done)."""
        from .._results import load

        path = self.chunk_path(k)
        if k not in self._hashes:  # written by another process since opening
            self.read_index()
        want = self._hashes.get(k)
        try:
            have = file_digest(path)
        except OSError as e:
            raise ValueError(
                f"store {self.path}: chunk {k} is listed as done but cannot be read "
                f"({e.strerror or e}); the store is damaged: remove its number from "
                "the index files to compute it again."
            ) from None
        if have != want:
            raise ValueError(
                f"store {self.path}: {path} is not the file written for chunk {k} "
                "(its sha256 differs from the index's); the store is damaged: remove "
                "the file and its number from the index files to compute it again."
            )
        try:
            res = load(path)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"store {self.path}: chunk {k} is listed as done but cannot be read "
                f"({e}); the store is damaged: remove {path} and its number from the "
                "index files to compute it again."
            ) from None
        rows = self._rows(k)
        if np.asarray(res.status).shape != (rows,):
            raise ValueError(
                f"store {self.path}: chunk {k} holds {np.asarray(res.status).shape} "
                f"samples, expected {rows}; the store is damaged."
            )
        return res
