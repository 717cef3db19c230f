"""Index directories on disk: damaged by a crash, or handed to us by someone else.

1. An index directory from elsewhere is untrusted. Files named outside it (also through
   a symbolic link inside it), tampered arrays (re-signed in the manifest, so the
   structural checks and not the checksums must catch them), wrong checksums, future
   format versions, a truncated or corrupted FAISS file, a ``.npy`` holding a pickled
   object array: each is a clear IndexFormatError (or IndexVersionError), never an
   exception from deep inside numpy / json / FAISS, never a file read outside, never
   code execution.
2. A process killed with SIGKILL at random points while it saves an index (and while it
   loads, adds and saves) never leaves the index path unloadable: it loads with
   ``verify=True`` and holds exactly the old or the new version.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, HashEncoder, need_data

from medrag.errors import IndexFormatError, IndexVersionError, MedragError
from medrag.index import Index, IndexConfig
from medrag.ingest import iter_pubmed
from medrag.retrieve.dense import VectorConfig


def unique_docs():
    """The real excerpt's documents, one per id, in file order."""
    seen, out = set(), []
    for d in iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")):
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out


@pytest.fixture(scope="module")
def docs():
    return unique_docs()


@pytest.fixture(scope="module")
def hnsw_index(docs, tmp_path_factory):
    """A saved hybrid index with an HNSW FAISS file (so dense/index.faiss exists)."""
    root = tmp_path_factory.mktemp("hnsw")
    cfg = IndexConfig(vectors=VectorConfig(kind="hnsw", m=8, ef_construction=40, ef_search=32))
    Index.build(docs[:25], cfg, encoder=HashEncoder()).save(root / "ix")
    return (root / "ix").resolve()


@pytest.fixture
def ix(hnsw_index, tmp_path):
    """A private plain-directory copy of the HNSW index."""
    d = tmp_path / "copy"
    shutil.copytree(hnsw_index, d)
    assert (d / "dense" / "index.faiss").is_file()
    return d


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _write_manifest(d: Path, m: dict) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def resign(d: Path) -> None:
    """Recompute every listed file's size and sha256, as a forger would."""
    m = _manifest(d)
    for rel in m["files"]:
        p = d / rel
        if p.is_file():
            b = p.read_bytes()
            m["files"][rel] = {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
    _write_manifest(d, m)


def _load_and_search(d: Path, **kw) -> Index:
    idx = Index.load(d, encoder=HashEncoder(), **kw)
    for mode in ("hybrid", "bm25", "dense"):
        idx.search("dopamine response cocaine", k=5, mode=mode)
    return idx


def test_the_copy_loads(ix):
    assert len(_load_and_search(ix).document_ids()) == 25


# --------------------------------------------------------------------------- outside


def test_symlinked_file_pointing_outside_is_refused(ix, tmp_path):
    """docs.jsonl replaced by a link to a file outside, re-signed so that size and
    checksum match: refused as outside, before anything reads it."""
    outside = tmp_path / "outside.jsonl"
    shutil.copy(ix / "docs.jsonl", outside)
    (ix / "docs.jsonl").unlink()
    os.symlink(outside, ix / "docs.jsonl")
    resign(ix)
    with pytest.raises(IndexFormatError, match="outside"):
        Index.load(ix, encoder=HashEncoder())


def test_symlinked_subdirectory_pointing_outside_is_refused(ix, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(ix / "bm25", outside)
    os.symlink(outside, ix / "bm25")
    resign(ix)
    with pytest.raises(IndexFormatError, match="outside"):
        Index.load(ix, encoder=HashEncoder())


def test_extra_manifest_entry_linking_outside_is_refused(ix, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    os.symlink(secret, ix / "bm25" / "extra.npy")
    m = _manifest(ix)
    m["files"]["bm25/extra.npy"] = {"sha256": hashlib.sha256(b"TOP-SECRET").hexdigest(), "size": 10}
    _write_manifest(ix, m)
    with pytest.raises(IndexFormatError, match="outside") as e:
        Index.load(ix, encoder=HashEncoder())
    assert "TOP-SECRET" not in str(e.value)


@pytest.mark.parametrize("rel", ["../copy/docs.jsonl", "/etc/hostname", "~/x", "", ".", "bm25/../../copy/x"])
def test_manifest_names_outside_or_degenerate_paths(ix, rel):
    m = _manifest(ix)
    m["files"][rel] = {"sha256": "0" * 64, "size": 1}
    _write_manifest(ix, m)
    with pytest.raises(IndexFormatError):
        Index.load(ix, encoder=HashEncoder())


@pytest.mark.parametrize("rel", ["a\x00b", "a" * 5000])
def test_manifest_unopenable_file_names(ix, rel):
    m = _manifest(ix)
    m["files"][rel] = {"sha256": "0" * 64, "size": 1}
    _write_manifest(ix, m)
    with pytest.raises(IndexFormatError):
        Index.load(ix, encoder=HashEncoder())


# --------------------------------------------------------------------------- tampering


def _edit_npy(path: Path, f) -> None:
    a = np.load(path)
    np.save(path, f(np.array(a)), allow_pickle=False)


def _edit_json(path: Path, f) -> None:
    path.write_text(json.dumps(f(json.loads(path.read_text()))))


def _edit_lines(path: Path, f) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(f(lines)) + "\n", encoding="utf-8")


def _set(a, i, v):
    a[i] = v
    return a


TAMPER = {
    "chunk_doc out of range": ("chunk_doc.npy", lambda a: _set(a, 0, 10**6)),
    "chunk_doc negative": ("chunk_doc.npy", lambda a: _set(a, 0, -1)),
    "chunk_doc wrong dtype": ("chunk_doc.npy", lambda a: a.astype(np.int64)),
    "chunk_doc wrong length": ("chunk_doc.npy", lambda a: a[:-1]),
    "chunk_doc 2-D": ("chunk_doc.npy", lambda a: a.reshape(1, -1)),
    "chunk_offsets shuffled": ("chunk_offsets.npy", lambda a: a[::-1].copy()),
    "chunk_offsets past the file": ("chunk_offsets.npy", lambda a: _set(a, -1, a[-1] + 100)),
    "bm25 indices out of range": ("bm25/indices.npy", lambda a: _set(a, 0, 10**7)),
    "bm25 indices negative": ("bm25/indices.npy", lambda a: _set(a, 0, -5)),
    "bm25 indptr decreasing": ("bm25/indptr.npy", lambda a: _set(a, 1, a[-1] + 1)),
    "bm25 tf zero": ("bm25/tf.npy", lambda a: _set(a, 0, 0)),
    "bm25 term_order out of range": ("bm25/term_order.npy", lambda a: _set(a, 0, 10**6)),
    "bm25 doc_len negative": ("bm25/doc_len.npy", lambda a: _set(a, 0, -3)),
    "bm25 weights wrong dtype": ("bm25/weights.npy", lambda a: a.astype(np.float32)),
    "vectors wrong dim": ("dense/vectors.npy", lambda a: a[:, :-1].copy()),
    "vectors float64": ("dense/vectors.npy", lambda a: a.astype(np.float64)),
    "vectors missing rows": ("dense/vectors.npy", lambda a: a[:-2].copy()),
}
TAMPER_JSON = {
    "vocab not strings": ("bm25/vocab.json", lambda v: [1] * len(v)),
    "vocab too short": ("bm25/vocab.json", lambda v: v[:-1]),
    "vocab deeply nested": ("bm25/vocab.json", None),
    "bm25 meta n_rows wrong": ("bm25/bm25.json", lambda m: {**m, "n_rows": m["n_rows"] + 1}),
    "bm25 meta n_terms huge": ("bm25/bm25.json", lambda m: {**m, "n_terms": 10**12}),
    "bm25 meta params bogus": ("bm25/bm25.json", lambda m: {**m, "params": {"k1": "x"}}),
    "bm25 meta not a dict": ("bm25/bm25.json", lambda m: [m]),
    "docs.jsonl line not an object": ("docs.jsonl", lambda ls: ["[1, 2]"] + ls[1:]),
    "docs.jsonl wrong field type": ("docs.jsonl", lambda ls: [json.dumps({**json.loads(ls[0]), "authors": 5})] + ls[1:]),
    "docs.jsonl unknown field": ("docs.jsonl", lambda ls: [json.dumps({**json.loads(ls[0]), "evil": 1})] + ls[1:]),
    "docs.jsonl missing a line": ("docs.jsonl", lambda ls: ls[:-1]),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_array_is_a_format_error(ix, case):
    rel, f = TAMPER[case]
    _edit_npy(ix / rel, f)
    resign(ix)  # the checksums match: the structural checks must catch it
    with pytest.raises(IndexFormatError):
        _touch_everything(ix)


@pytest.mark.parametrize("case", sorted(TAMPER_JSON))
def test_tampered_json_is_a_format_error(ix, case):
    rel, f = TAMPER_JSON[case]
    p = ix / rel
    if f is None:
        p.write_text("[" * 100_000 + "]" * 100_000)
    elif rel.endswith(".jsonl"):
        _edit_lines(p, f)
    else:
        _edit_json(p, f)
    resign(ix)
    with pytest.raises(IndexFormatError):
        _touch_everything(ix)


def test_tampered_chunk_row_is_a_format_error_at_search(ix):
    """chunks.jsonl is read row by row at search time: a row that is not a chunk (same
    length, so the offsets still match) is an IndexFormatError then."""
    p = ix / "chunks.jsonl"
    raw = bytearray(p.read_bytes())
    raw[0:1] = b"!"
    p.write_bytes(bytes(raw))
    resign(ix)
    idx = Index.load(ix, encoder=HashEncoder())
    with pytest.raises(IndexFormatError):
        for row in range(len(idx)):
            idx.chunk(row)


MANIFEST_EDITS = {
    "format_version string": lambda m: {**m, "format_version": "1"},
    "format_version future": lambda m: {**m, "format_version": 3},
    "format_version true": lambda m: {**m, "format_version": True},
    "format missing": lambda m: {k: v for k, v in m.items() if k != "format"},
    "files not a dict": lambda m: {**m, "files": ["docs.jsonl"]},
    "file meta not a dict": lambda m: {**m, "files": {**m["files"], "docs.jsonl": [1]}},
    "file size a string": lambda m: {**m, "files": {**m["files"], "docs.jsonl": {**m["files"]["docs.jsonl"], "size": "12"}}},
    "wrong sha256": lambda m: {**m, "files": {**m["files"], "chunk_doc.npy": {**m["files"]["chunk_doc.npy"], "sha256": "0" * 64}}},
    "counts missing": lambda m: {k: v for k, v in m.items() if k != "counts"},
    "counts wrong": lambda m: {**m, "counts": {**m["counts"], "chunks": m["counts"]["chunks"] + 1}},
    "counts a string": lambda m: {**m, "counts": {**m["counts"], "chunks": "x"}},
    "chunking unknown key": lambda m: {**m, "chunking": {**m["chunking"], "evil": 1}},
    "analyzer unknown": lambda m: {**m, "analyzer": {"stemmer": "evil"}},
    "bm25 params bogus": lambda m: {**m, "bm25": {"k1": -1}},
    "fusion bogus": lambda m: {**m, "fusion": {"method": "max"}},
    "manifest a list": lambda m: [m],
    "manifest deeply nested": None,
    "dense dim not a number": lambda m: {**m, "dense": {**m["dense"], "dim": "abc"}},
    "dense not an object": lambda m: {**m, "dense": "x"},
    "dense dim wrong": lambda m: {**m, "dense": {**m["dense"], "dim": 7}},
    "dense vectors kind bogus": lambda m: {**m, "dense": {**m["dense"], "vectors": {"kind": "evil"}}},
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_tampered_manifest_is_a_format_error(ix, case):
    f = MANIFEST_EDITS[case]
    if f is None:
        (ix / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    else:
        _write_manifest(ix, f(_manifest(ix)))
    with pytest.raises(IndexFormatError):  # IndexVersionError is one too
        _touch_everything(ix)


def test_future_versions_are_version_errors(ix):
    m = _manifest(ix)
    m["format_version"] = 3
    _write_manifest(ix, m)
    with pytest.raises(IndexVersionError, match="3"):
        Index.load(ix, encoder=HashEncoder())
    m["format_version"] = 2
    _write_manifest(ix, m)
    _edit_json(ix / "bm25" / "bm25.json", lambda b: {**b, "format_version": 2})
    resign(ix)
    with pytest.raises(IndexVersionError):
        Index.load(ix, encoder=HashEncoder())


def _touch_everything(d: Path) -> None:
    """Load, search, and read every document's source and every chunk (an index may
    parse its rows lazily)."""
    idx = _load_and_search(d)
    for doc_id in idx.document_ids():
        idx.source(doc_id)
    for row in range(len(idx)):
        idx.chunk(row)


@pytest.mark.parametrize("rel", ["docs.jsonl", "chunks.jsonl"])
def test_invalid_utf8_in_jsonl_is_a_format_error(ix, rel):
    """Invalid UTF-8 (re-signed, so only parsing can notice): an IndexFormatError when
    loaded or when the row is read, never a UnicodeDecodeError."""
    p = ix / rel
    raw = bytearray(p.read_bytes())
    raw[3] = 0xFF
    p.write_bytes(bytes(raw))
    resign(ix)
    with pytest.raises(IndexFormatError):
        _touch_everything(ix)


def test_flipped_byte_without_resigning_fails_the_checksum(ix):
    for rel in ("docs.jsonl", "chunks.jsonl", "bm25/weights.npy", "dense/vectors.npy", "dense/index.faiss"):
        p = ix / rel
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        p.write_bytes(bytes(raw))
        with pytest.raises(IndexFormatError, match="sha256"):
            Index.load(ix, encoder=HashEncoder())
        raw[len(raw) // 2] ^= 0x01
        p.write_bytes(bytes(raw))
    Index.load(ix, encoder=HashEncoder())


@pytest.mark.parametrize("cut", [0, 8, 100, 0.5, -1])
def test_truncated_faiss_file(ix, cut):
    p = ix / "dense" / "index.faiss"
    raw = p.read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else (len(raw) + cut if cut < 0 else cut)
    p.write_bytes(raw[:n])
    with pytest.raises(IndexFormatError, match="size"):
        Index.load(ix, encoder=HashEncoder())
    resign(ix)
    with pytest.raises(IndexFormatError, match="faiss|FAISS"):
        _touch_everything(ix)


def test_corrupted_faiss_file_never_crashes_the_process(ix, tmp_path):
    """Random byte flips in index.faiss, re-signed: loaded and searched in a child
    process (a segfault in FAISS would kill pytest). Each must load and search, or be
    an IndexFormatError; the child must exit normally."""
    raw = (ix / "dense" / "index.faiss").read_bytes()
    rng = random.Random(1298)
    dirs = []
    for t in range(16):
        d = tmp_path / f"f{t}"
        shutil.copytree(ix, d)
        b = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] ^= rng.randint(1, 255)
        (d / "dense" / "index.faiss").write_bytes(bytes(b))
        resign(d)
        dirs.append(str(d))
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_crash import HashEncoder
        from medrag.index import Index
        from medrag.errors import IndexFormatError
        for d in sys.argv[2:]:
            try:
                idx = Index.load(d, encoder=HashEncoder())
                for q in ("dopamine", "lung cancer microRNA", "zzz"):
                    idx.search(q, k=5, mode="dense")
                    idx.search(q, k=50)
                print("ok", flush=True)
            except IndexFormatError:
                print("format-error", flush=True)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "tests"), *dirs],
        capture_output=True, text=True, timeout=120, env=_child_env(),
    )
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    outcomes = r.stdout.split()
    assert len(outcomes) == len(dirs) and set(outcomes) <= {"ok", "format-error"}, r.stdout
    assert "format-error" in outcomes  # FAISS validates what it reads


@pytest.mark.parametrize("rel", ["chunk_doc.npy", "chunk_offsets.npy", "bm25/indices.npy", "dense/vectors.npy"])
def test_pickled_object_array_is_never_unpickled(ix, tmp_path, rel):
    """A .npy holding a pickled object array whose unpickling would create a file:
    refused (allow_pickle=False) as an IndexFormatError, and the file never appears."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    arr = np.empty(3, dtype=object)
    arr[:] = [Evil(), Evil(), Evil()]
    np.save(ix / rel, arr, allow_pickle=True)
    resign(ix)
    with pytest.raises(IndexFormatError):
        _touch_everything(ix)
    with pytest.raises(IndexFormatError):
        _load_and_search(ix, mmap=False, verify=False)
    assert not marker.exists()
    # control: the payload is live (numpy would run it with allow_pickle=True)
    np.load(ix / rel, allow_pickle=True)
    assert marker.exists()


# --------------------------------------------------------------------------- SIGKILL

_CHILD = textwrap.dedent(
    """
    import sys, random
    sys.path.insert(0, sys.argv[1])
    from test_crash import HashEncoder, unique_docs
    from medrag.index import Index, IndexConfig
    mode, path, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
    docs = unique_docs()
    rng = random.Random(seed)
    enc = HashEncoder()
    print("ready", flush=True)
    while True:
        if mode == "save":
            m = rng.choice([10, 20, 30, 40])
            print("start", m, flush=True)
            Index.build(docs[:m], IndexConfig(), encoder=enc).save(path)
        else:  # load, add five documents (or start over), save
            idx = Index.load(path, encoder=enc)
            n = idx.n_documents
            if n + 5 > 40:
                idx.delete([d.id for d in docs[10:n]])
                m = 10
            else:
                idx.add(docs[n:n + 5])
                m = n + 5
            print("start", m, flush=True)
            idx.save(path)
        print("saved", m, flush=True)
    """
)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("mode", ["save", "add"])
def test_sigkill_during_save_leaves_old_or_new_version(mode, docs, tmp_path):
    ids = [d.id for d in docs]
    path = tmp_path / "ix"
    Index.build(docs[:10], IndexConfig(), encoder=HashEncoder()).save(path)
    rng = random.Random(hash(mode) & 0xFFFF)
    trials, killed_mid_save, t_end = 0, 0, time.monotonic() + 14
    prev_m = 10
    while (time.monotonic() < t_end or trials < 4 or not killed_mid_save) and trials < 30:
        out_path = tmp_path / f"out{trials}.txt"
        with open(out_path, "w") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(REPO / "tests"), mode, str(path), str(trials)],
                stdout=out, stderr=subprocess.PIPE, env=_child_env(),
            )
            # wait until it is working (every other trial: until a save has started, so
            # that some kills land inside a save however slow the machine), then kill at
            # a random moment
            mark = "ready" if trials % 2 == 0 else "start"
            t0 = time.monotonic()
            while mark not in out_path.read_text() and child.poll() is None and time.monotonic() - t0 < 60:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.2) if mark == "ready" else rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGKILL)
            child.wait()
        log = out_path.read_text().split("\n")
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-3000:]
        trials += 1
        starts = [int(ln.split()[1]) for ln in log if ln.startswith("start")]
        saves = [int(ln.split()[1]) for ln in log if ln.startswith("saved")]
        killed_mid_save += len(starts) > len(saves)
        idx = Index.load(path, encoder=HashEncoder(), verify=True)
        got = idx.document_ids()
        m = len(got)
        assert sorted(got) == sorted(ids[:m]), "the index holds no version that was ever saved"
        # the old version: the last one this child saved, or what was there before it
        old = saves[-1] if saves else prev_m
        new = starts[-1] if starts else old
        assert m in (old, new), (m, old, new)
        prev_m = m
        assert idx.manifest["counts"]["documents"] == m
        assert idx.search("dopamine cocaine Drosophila", k=3)
        # a killed save may leave its staging directory, never a broken index path
        assert path.is_dir() and not path.is_symlink() and (path / "manifest.json").is_file()
        del idx  # releases its reader lock: the next save may remove that generation
    assert trials >= 4 and killed_mid_save >= 1, (trials, killed_mid_save)
    # the next save works over whatever was left behind, and sweeps the killed saves'
    # staging directories and the retired generations
    Index.build(docs[:12], IndexConfig(), encoder=HashEncoder()).save(path)
    assert len(Index.load(path, encoder=HashEncoder()).document_ids()) == 12
    left = {p.name: sorted(q.name for q in p.iterdir()) for p in tmp_path.iterdir() if p.name.startswith(".ix.") and p.is_dir()}
    assert left == {}, left


def test_leftover_staging_directories_do_not_break_loading(docs, tmp_path):
    path = tmp_path / "ix"
    Index.build(docs[:10], IndexConfig(encoder=None)).save(path)
    (tmp_path / ".ix.deadbeefdeadbeef").mkdir()  # a staging dir killed before its manifest
    (tmp_path / ".ix.deadbeefdeadbeef" / "docs.jsonl").write_text("{partial")
    os.symlink(".ix.nowhere", tmp_path / ".ix.link-0123456789abcdef")  # a stale link temp
    assert len(Index.load(path).document_ids()) == 10
    Index.build(docs[:11], IndexConfig(encoder=None)).save(path)
    assert len(Index.load(path).document_ids()) == 11
    # the save removed the dangling link (no data), and kept the directory that carries
    # no medrag marker (0.1 wrote none: it cannot be told from somebody else's)
    assert not os.path.lexists(tmp_path / ".ix.link-0123456789abcdef")
    assert (tmp_path / ".ix.deadbeefdeadbeef" / "docs.jsonl").read_text() == "{partial"


def test_crash_between_the_renames_without_atomic_exchange(docs, tmp_path, monkeypatch):
    """Where renameat2(RENAME_EXCHANGE) is unavailable a save renames the old directory
    aside and then the new one in: dying between the two (simulated by a failing second
    rename) must still leave a loadable index at the path, and the next save must work."""
    from medrag import _indexdir

    plain = tmp_path / "ix"
    Index.build(docs[:10], IndexConfig(encoder=None)).save(plain)
    monkeypatch.setattr(_indexdir, "_renameat2", lambda *a: False)
    real_rename = os.rename

    def die_on_second(src, dst):
        if Path(src).name.startswith(".ix.") and not Path(src).name.startswith(".ix.old-"):
            raise SystemExit("killed")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", die_on_second)
    with pytest.raises(SystemExit):
        Index.build(docs[:11], IndexConfig(encoder=None)).save(plain)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not plain.exists()
    assert len(Index.load(plain).document_ids()) == 10  # the old generation, found aside
    # without exchange, the next saves still work (and sweep the directory left aside)
    Index.build(docs[:12], IndexConfig(encoder=None)).save(plain)
    Index.build(docs[:13], IndexConfig(encoder=None)).save(plain)
    assert len(Index.load(plain).document_ids()) == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ix.lock", "ix"]


def _generic_edits(path: Path) -> dict:
    """Edits that apply to any file of its kind (for files added to the format later)."""
    if path.suffix == ".npy":
        a = np.load(path)
        if a.dtype.kind == "S":  # fixed-width bytes (doc_sha256.npy)
            other, big = a.astype("S8"), np.full_like(a, b"\xff" * a.dtype.itemsize)
        else:
            other = a.astype(np.float16 if a.dtype != np.float16 else np.int8)
            big = np.full_like(a, min(np.iinfo(np.int32).max, np.iinfo(a.dtype).max) if a.dtype.kind in "iu" else 1e30)
        edits = {
            "dtype": lambda: np.save(path, other),
            "shorter": lambda: np.save(path, a[:-1] if a.ndim else a),
            "2-D": lambda: np.save(path, a.reshape(1, -1)),
            "reversed": lambda: np.save(path, a[::-1].copy() if a.ndim else a),
            "huge values": lambda: np.save(path, big),
        }
        if a.dtype.kind in "if":
            edits["negative"] = lambda: np.save(path, (-np.abs(a) - 1).astype(a.dtype))
    elif path.suffix == ".json":
        edits = {
            "nested": lambda: path.write_text("[" * 100_000 + "]" * 100_000),
            "not json": lambda: path.write_text("{oops"),
            "wrong type": lambda: path.write_text("42"),
            "bad utf-8": lambda: path.write_bytes(b'["\xff"]'),
        }
    else:
        lines = path.read_bytes().splitlines(keepends=True)
        edits = {
            "line swapped": lambda: path.write_bytes(b"".join(lines[1:2] + lines[:1] + lines[2:])),
            "null line": lambda: path.write_bytes(b"null\n" + b"".join(lines[1:])),
        }
    return edits


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float16 overflow while tampering
def test_every_listed_file_tampered_generically(hnsw_index, tmp_path):
    """Whatever files the format lists (it grows), generic tampering of each, re-signed,
    is an IndexFormatError or harmless: no other exception escapes load, search,
    source() or chunk()."""
    files = [rel for rel in _manifest(hnsw_index)["files"] if not rel.endswith(".faiss")]
    escaped, n = [], 0
    for rel in files:
        probe = tmp_path / "probe"
        shutil.copytree(hnsw_index, probe)
        names = list(_generic_edits(probe / rel))
        shutil.rmtree(probe)
        for name in names:
            d = tmp_path / f"t{n}"
            n += 1
            shutil.copytree(hnsw_index, d)
            _generic_edits(d / rel)[name]()
            resign(d)
            try:
                _touch_everything(d)
            except MedragError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                escaped.append((rel, name, type(exc).__name__, str(exc)[:120]))
            shutil.rmtree(d)
    assert n > 30
    assert escaped == [], escaped
