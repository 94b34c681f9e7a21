"""The kubelet's atomic writer layout (agent/node/kubelet/volumes/atomicwriter.py):
timestamped payload directory, ..data swapped by rename, user-visible
symlinks, no rewrite of an equal payload, stale names removed, bad paths refused."""
import os
import stat

import pytest

from agent.node.kubelet.volumes.atomicwriter import AtomicWriter, FileProjection, PayloadError, validate_path


def layout(d):
    return sorted(os.listdir(d))


def test_first_write_makes_the_kubelet_layout(tmp_path):
    w = AtomicWriter(str(tmp_path / "vol"))
    assert w.write({"a": FileProjection(b"1"), "dir/b": FileProjection(b"2", 0o400)}, now=0)
    d = tmp_path / "vol"
    names = layout(d)
    ts = [n for n in names if n.startswith("..1970_01_01_00_00_00.")]
    assert len(ts) == 1 and set(names) == {ts[0], "..data", "a", "dir"}
    assert os.readlink(d / "..data") == ts[0]
    assert os.readlink(d / "a") == "..data/a" and os.readlink(d / "dir") == "..data/dir"
    assert (d / "dir" / "b").read_bytes() == b"2"
    assert stat.S_IMODE(os.stat(d / "dir" / "b").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(d / "a").st_mode) == 0o644


def test_equal_payload_is_not_rewritten_and_a_change_swaps_data(tmp_path):
    w = AtomicWriter(str(tmp_path))
    w.write({"a": FileProjection(b"1")})
    first = os.readlink(tmp_path / "..data")
    assert not w.write({"a": FileProjection(b"1")})
    assert os.readlink(tmp_path / "..data") == first
    assert w.write({"a": FileProjection(b"2"), "c": FileProjection(b"3")})
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert (tmp_path / "a").read_bytes() == b"2" and (tmp_path / "c").read_bytes() == b"3"
    assert not (tmp_path / "..data_tmp").exists()


def test_a_mode_change_alone_is_written(tmp_path):
    w = AtomicWriter(str(tmp_path))
    w.write({"a": FileProjection(b"1", 0o644)})
    assert w.write({"a": FileProjection(b"1", 0o600)})
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600


def test_names_that_leave_the_payload_are_removed(tmp_path):
    w = AtomicWriter(str(tmp_path))
    w.write({"a": FileProjection(b"1"), "b": FileProjection(b"2")})
    w.write({"b": FileProjection(b"2")})
    assert not os.path.lexists(tmp_path / "a")
    assert (tmp_path / "b").read_bytes() == b"2"
    w.write({})
    assert [n for n in layout(tmp_path) if not n.startswith("..")] == []


def test_an_open_reader_keeps_its_file_across_an_update(tmp_path):
    w = AtomicWriter(str(tmp_path))
    w.write({"a": FileProjection(b"old")})
    with open(tmp_path / "a", "rb") as f:
        w.write({"a": FileProjection(b"new")})
        assert f.read() == b"old"
    assert (tmp_path / "a").read_bytes() == b"new"


@pytest.mark.parametrize("path, message", [
    ("/abs", "must be relative path"), ("a/../b", "must not contain '..'"), ("..x", "must not start with '..'"),
    ("", "must not be empty"),
])
def test_bad_paths_are_refused_and_nothing_written(tmp_path, path, message):
    with pytest.raises(PayloadError, match=message):
        validate_path(path)
    with pytest.raises(PayloadError):
        AtomicWriter(str(tmp_path / "v")).write({path: FileProjection(b"x")})
    assert not (tmp_path / "v" / "..data").exists()
