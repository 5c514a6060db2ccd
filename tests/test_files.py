"""The one path for writing output files (`jaxcrn._files`)."""

import json
import os

import pytest

from jaxcrn._files import check_outputs, to_json, write_output, write_outputs


def test_writes_atomically_and_never_overwrites(tmp_path):
    path = tmp_path / "a.txt"
    assert write_output(path, "one\n") == str(path)
    with pytest.raises(FileExistsError, match="already exists; pass --force"):
        write_output(path, "two\n")
    assert path.read_text() == "one\n"
    write_output(path, b"three\n", overwrite=True)
    assert path.read_bytes() == b"three\n"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporaries


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_output(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_failing_writer_leaves_nothing(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_outputs({tmp_path / "a.bin": b"ok", tmp_path / "b.bin": boom})
    assert os.listdir(tmp_path) == []  # neither file, no temporaries
    (tmp_path / "c.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_output(tmp_path / "c.bin", boom, overwrite=True)
    assert (tmp_path / "c.bin").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["c.bin"]


@pytest.mark.parametrize("force", [False, True])
def test_refuses_directories_missing_folders_and_odd_files(tmp_path, force):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        check_outputs([tmp_path], overwrite=force)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_outputs([tmp_path / "no" / "x.txt"], overwrite=force)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileExistsError, match="not a regular file"):
        check_outputs([tmp_path / "fifo"], overwrite=force)
    with pytest.raises(ValueError, match="NUL"):
        check_outputs(["a\0b"], overwrite=force)
    with pytest.raises(OSError, match="too long"):
        check_outputs([tmp_path / ("x" * 300)], overwrite=force)
    assert sorted(os.listdir(tmp_path)) == ["fifo"]


def test_the_same_file_twice(tmp_path):
    a = tmp_path / "a.txt"
    with pytest.raises(ValueError, match="named twice"):
        check_outputs([a, a])
    with pytest.raises(ValueError, match="are the same file"):
        check_outputs([a, f"{tmp_path}/./a.txt"], overwrite=True)
    a.write_text("")
    os.symlink(a, tmp_path / "link.txt")
    with pytest.raises(ValueError, match="are the same file"):
        check_outputs([a, tmp_path / "link.txt"], overwrite=True)
    b = tmp_path / "b.txt"
    assert check_outputs([a, None, b], overwrite=True) == [str(a), str(b)]


def test_an_input_is_never_an_output_and_links_are_written_through(tmp_path):
    src = tmp_path / "net.crn"
    src.write_text("A -> B\n")
    os.symlink(src, tmp_path / "alias.crn")
    for out in (src, tmp_path / "alias.crn", f"{tmp_path}/./net.crn"):
        with pytest.raises(ValueError, match="also an input of this command"):
            check_outputs([out], overwrite=True, reads=[src])
    assert src.read_text() == "A -> B\n"
    # --force on a link replaces the file it names; the link stays a link
    target = tmp_path / "result.txt"
    target.write_text("old")
    os.symlink(target, tmp_path / "latest.txt")
    write_output(tmp_path / "latest.txt", "new", overwrite=True)
    assert os.path.islink(tmp_path / "latest.txt") and target.read_text() == "new"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_make_parents(tmp_path):
    path = tmp_path / "x" / "y" / "z.txt"
    write_outputs({path: "z"}, make_parents=True)
    assert path.read_text() == "z"
    (tmp_path / "file").write_text("")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_outputs([tmp_path / "file" / "sub" / "a.txt"], make_parents=True)


def test_strict_json():
    text = to_json({"a": float("nan"), "b": [float("-inf"), 1.0], "c": (True, None)})
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": [True, None]}
    np = pytest.importorskip("numpy")
    assert json.loads(to_json({"x": np.float32(0.5), "y": np.arange(2)})) == {
        "x": 0.5,
        "y": [0, 1],
    }
