"""Writing output files: the one path by which jaxcrn writes any file.

`check_outputs` is called before any work is done and refuses a target that exists
(unless `overwrite`), that is a directory or not a regular file, whose folder does not
exist, that is named twice, or that is one of the files the command reads.
`write_outputs` then writes atomically: each file goes to a temporary file in the
target's folder and is renamed over the target only once complete (through a
symbolic link, to the file it names); on any failure the temporaries are removed,
so a target is never half-written and nothing stray is left behind. Several files
are staged first and renamed together at the end.

Errors are the built-in ones (`FileExistsError`, `IsADirectoryError`,
`FileNotFoundError`, `PermissionError`, `ValueError` for a name given twice) with a
message that names the path and says what to do.
"""

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import BinaryIO


Content = str | bytes | Callable[[BinaryIO], None]


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


def _existing_ancestor(folder: str) -> str:
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _probe(folder: str, path: str) -> None:
    """Create and remove a temporary file in `folder`: the one sure test that files
    can be written there (permissions, read-only file systems, /proc, ...)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".jaxcrn-probe.", dir=folder)
    except OSError as e:
        raise PermissionError(
            f"cannot write {path}: the folder {folder} is not writable "
            f"({e.strerror or e})."
        ) from None
    os.close(fd)
    os.unlink(tmp)


def check_output(
    path: str | os.PathLike, *, overwrite: bool = False, make_parents: bool = False
) -> str:
    """Check that `path` can be written; returns it as a `str`.

    With `make_parents`, a missing folder is fine if it can be created (the nearest
    existing ancestor is a writable folder); `write_outputs` then creates it.

    Example:
        >>> check_output("/tmp/new-file-for-the-doctest.txt", overwrite=True)
        '/tmp/new-file-for-the-doctest.txt'
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        p = os.fsdecode(p)
    if p == "":
        raise FileNotFoundError("an output file name is empty.")
    if "\0" in p:
        raise ValueError(f"{p!r} is not a valid file name (it holds a NUL character).")
    if p.endswith(("/", os.sep)) or os.path.isdir(p):
        raise IsADirectoryError(
            f"{p} is a directory; name a file to write (in it, or elsewhere)."
        )
    try:
        exists = os.path.lexists(p)
        if exists and not os.path.isfile(p):
            raise FileExistsError(
                f"{p} exists and is not a regular file; choose another name."
            )
        if exists and not overwrite:
            raise FileExistsError(
                f"{p} already exists; pass --force (overwrite=True) to replace it."
            )
        parent = os.path.dirname(os.path.abspath(p))
        if make_parents and not os.path.exists(parent):
            parent = _existing_ancestor(parent)
        if not os.path.isdir(parent):
            raise FileNotFoundError(
                f"cannot write {p}: "
                + (
                    f"{parent} is not a folder."
                    if os.path.exists(parent)
                    else f"the folder {parent} does not exist."
                )
            )
        _probe(parent, p)
        if len(os.path.basename(p).encode("utf-8", "surrogateescape")) > 255:
            raise OSError(f"cannot write {p}: the file name is too long.")
    except (FileExistsError, FileNotFoundError, PermissionError):
        raise
    except OSError as e:
        raise OSError(f"cannot write {p}: {e.strerror or e}.") from None
    return p


def check_outputs(
    paths: Iterable[str | os.PathLike | None],
    *,
    overwrite: bool = False,
    make_parents: bool = False,
    reads: Iterable[str | os.PathLike | None] = (),
) -> list[str]:
    """`check_output` for each path (None skipped), no file named twice, and none
    of the files in `reads` (what the caller reads: even with `overwrite`, writing
    one would replace the input it is made from).

    Example:
        >>> check_outputs(["/tmp/a.txt", "/tmp/./a.txt"], overwrite=True)
        Traceback (most recent call last):
        ...
        ValueError: /tmp/./a.txt and /tmp/a.txt are the same file; give each output its own name.
    """  # noqa: E501
    out: list[str] = []
    seen: dict[str, str] = {}
    read = {_key(os.fspath(r)): os.fspath(r) for r in reads if r is not None}
    for path in paths:
        if path is None:
            continue
        p = check_output(path, overwrite=overwrite, make_parents=make_parents)
        k = _key(p)
        if k in seen:
            raise ValueError(
                f"{p} is named twice as an output; give each output its own name."
                if p == seen[k]
                else f"{p} and {seen[k]} are the same file; give each output its own "
                "name."
            )
        if k in read:
            raise ValueError(
                f"{p} is also an input of this command"
                + ("" if read[k] == p else f" ({read[k]})")
                + ": writing it would replace the file being read; give the output "
                "another name."
            )
        seen[k] = p
        out.append(p)
    return out


def _write(f: BinaryIO, content: Content) -> None:
    if isinstance(content, str):
        f.write(content.encode("utf-8"))
    elif isinstance(content, bytes | bytearray | memoryview):
        f.write(content)
    else:
        content(f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_outputs(
    files: Mapping[str | os.PathLike, Content],
    *,
    overwrite: bool = False,
    make_parents: bool = False,
) -> list[str]:
    """Write every file or none: checked, staged in temporaries, then renamed.

    `files` maps each path to its content: text (written as UTF-8), bytes, or a
    function that writes to a binary file object. Returns the paths written. With
    `make_parents`, missing folders are created.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "a.txt")
        >>> write_outputs({path: "hello\\n"})  # doctest: +ELLIPSIS
        [...a.txt']
        >>> write_outputs({path: "again\\n"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileExistsError: ...a.txt already exists; pass --force (overwrite=True) to replace it.
        >>> import pathlib
        >>> pathlib.Path(path).read_text(), os.listdir(folder)
        ('hello\\n', ['a.txt'])
    """  # noqa: E501
    paths = check_outputs(files, overwrite=overwrite, make_parents=make_parents)
    contents = list(files.values())
    if make_parents:
        for p in paths:
            folder = os.path.dirname(os.path.abspath(p))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise OSError(
                    f"cannot create the folder {folder}: {e.strerror or e}."
                ) from None
    staged: list[tuple[str, str]] = []
    mode = 0o666 & ~_umask()
    try:
        for p, content in zip(paths, contents, strict=True):
            # through a symbolic link: replace the file it names, keep the link
            target = os.path.realpath(p) if os.path.islink(p) else p
            parent, name = os.path.split(os.path.abspath(target))
            try:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{name[:64]}.", suffix=".tmp", dir=parent
                )
            except OSError as e:
                raise OSError(f"cannot write {p}: {e.strerror or e}.") from None
            staged.append((tmp, target))
            try:
                with os.fdopen(fd, "wb") as f:
                    _write(f, content)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, mode)
            except OSError as e:
                raise OSError(f"cannot write {p}: {e.strerror or e}.") from None
        for tmp, p in staged:
            if overwrite:
                os.replace(tmp, p)
            elif os.path.lexists(p):  # appeared since the check
                raise FileExistsError(
                    f"{p} already exists; pass --force (overwrite=True) to replace it."
                )
            else:
                os.replace(tmp, p)
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return paths


def write_output(
    path: str | os.PathLike, content: Content, *, overwrite: bool = False
) -> str:
    """Write one file atomically (`write_outputs` with one entry); returns its path.

    Example:
        >>> import os, tempfile
        >>> path = write_output(os.path.join(tempfile.mkdtemp(), "b.txt"), b"hi")
        >>> import pathlib
        >>> pathlib.Path(path).read_bytes()
        b'hi'
    """
    return write_outputs({path: content}, overwrite=overwrite)[0]


def _finite(obj):
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return _finite(obj.tolist())
    return obj


def to_json(obj, *, indent: int | None = None) -> str:
    """Strict JSON text: NaN and infinities become null (JSON has neither).

    Example:
        >>> to_json({"t": float("inf"), "x": [1.5, float("nan")]})
        '{"t": null, "x": [1.5, null]}'
    """
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)
