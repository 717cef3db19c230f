"""medrag._io: the checked readers every on-disk format uses (load_npy, read_json,
check_format): no pickle, exact dtype and shape, errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest

from medrag._io import check_format, load_format_json, load_npy, read_json
from medrag.errors import IndexFormatError, IndexVersionError


def test_load_npy_checks_dtype_shape_and_refuses_pickle(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.arange(6, dtype=np.int64).reshape(2, 3))
    for mmap in (False, True):
        a = load_npy(p, np.int64, (2, 3), mmap)
        assert type(a) is np.ndarray and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert load_npy(p, np.int64, ndim=2).shape == (2, 3)
    with pytest.raises(IndexFormatError, match=r"a\.npy: expected int32 \(2, 3\), found int64 \(2, 3\)"):
        load_npy(p, np.int32, (2, 3))
    with pytest.raises(IndexFormatError, match=r"a\.npy: expected int64 \(3, 2\)"):
        load_npy(p, np.int64, (3, 2))
    with pytest.raises(IndexFormatError, match="expected int64 1-d"):
        load_npy(p, np.int64, ndim=1)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(IndexFormatError, match=r"obj\.npy: truncated or not a \.npy array"):
        load_npy(obj, object, (1,))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(IndexFormatError, match=r"cut\.npy: truncated"):
        load_npy(cut, np.int64, (2, 3), mmap=True)
    with pytest.raises(IndexFormatError, match=r"gone\.npy: missing"):
        load_npy(tmp_path / "gone.npy", np.int64, (1,))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros(0, np.uint32))
    assert load_npy(empty, np.uint32, (0,), mmap=True).shape == (0,)  # numpy cannot map 0 bytes


def test_json_headers(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"format": "medrag-x", "format_version": 2, "n": 1}')
    assert load_format_json(p, "medrag-x", 2)["n"] == 1
    with pytest.raises(IndexVersionError, match=r"m\.json: format_version 2 is not one"):
        load_format_json(p, "medrag-x", 3)
    with pytest.raises(IndexFormatError, match=r"m\.json: not a medrag-y manifest"):
        check_format(read_json(p), p, "medrag-y", 2, what="manifest")
    p.write_text("[" * 100_000)
    with pytest.raises(IndexFormatError, match=r"m\.json: not valid JSON"):
        read_json(p)
    with pytest.raises(IndexFormatError, match=r"no\.json: missing \(hint\)"):
        read_json(tmp_path / "no.json", missing="missing (hint)")
