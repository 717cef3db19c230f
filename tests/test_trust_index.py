"""Issue 11, index side: each finding of the adversarial review of 0.1, reproduced.

* Saving never deletes what is not an index: a symbolic link to an ordinary directory,
  a directory with somebody else's ``manifest.json``, an index directory holding a
  user's file.
* Failed or interrupted saves leave no staging directory; the next save sweeps those of
  a killed save (and only those).
* The index path is a real directory: ``cp -r``, ``cp -a`` and ``tar`` copies load; a
  0.1 index (a link to a hidden sibling) still loads and becomes a real directory.
* Several processes: a loaded index keeps reading its generation after another process
  saves; writers are serialized by a file lock (a clear error or a wait); a save over a
  generation someone else saved since is refused; an old generation is removed only
  once no reader holds it.
* Arguments checked at the API boundary; ``k`` clamped before FAISS; a tampered
  ``token_pattern`` refused; a manifest naming a hub model or a folder elsewhere never
  loads it unless the caller opts in, while the packaged default still loads offline.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, HashEncoder
from test_crash import _child_env, resign, unique_docs

import medrag.errors as E
from medrag.errors import ConfigError, IndexFormatError
from medrag.index import Filters, Index, IndexConfig
from medrag.retrieve.bm25 import BM25Index
from medrag.retrieve.dense import VectorConfig


@pytest.fixture(scope="module")
def docs():
    return unique_docs()


def lexical() -> IndexConfig:
    return IndexConfig(encoder=None)


def siblings(d: Path) -> list[str]:
    """What lies beside the index path (staging, retired generations, the lock)."""
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(REPO / "tests"), *args],
        capture_output=True, text=True, timeout=timeout, env=_child_env(),
    )


# --------------------------------------------------------------------------- nothing else deleted


def test_save_through_a_link_to_an_ordinary_directory_is_refused(docs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    link = tmp_path / "ix"
    os.symlink(mine, link)
    with pytest.raises(ConfigError, match="not a medrag index"):
        Index.build(docs[:5], lexical()).save(link)
    assert (mine / "keep.txt").read_text() == "precious" and link.is_symlink()
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]
    # a link to a file, and a link to nothing
    (tmp_path / "f.txt").write_text("x")
    os.symlink(tmp_path / "f.txt", tmp_path / "to_file")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for p in (tmp_path / "to_file", tmp_path / "dangling"):
        with pytest.raises(ConfigError):
            Index.build(docs[:5], lexical()).save(p)
    assert (tmp_path / "f.txt").read_text() == "x"


def test_a_directory_with_someone_elses_manifest_is_not_replaced(docs, tmp_path):
    """0.1 took any directory holding a file called manifest.json for an index (a web
    app's, say) and deleted it."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    (app / "index.html").write_text("<html></html>")
    with pytest.raises(ConfigError, match="not a medrag index"):
        Index.build(docs[:5], lexical()).save(app)
    assert sorted(p.name for p in app.iterdir()) == ["index.html", "manifest.json"]


def test_an_index_directory_holding_a_users_file_is_not_replaced(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:5], lexical()).save(ix)
    (ix / "my-notes.txt").write_text("notes")
    with pytest.raises(ConfigError, match="my-notes.txt"):
        Index.build(docs[:6], lexical()).save(ix)
    assert (ix / "my-notes.txt").read_text() == "notes"
    assert len(Index.load(ix).document_ids()) == 5


# --------------------------------------------------------------------------- staging left behind


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_save_leaves_no_staging_directory(docs, tmp_path, monkeypatch, exc):
    ix = tmp_path / "ix"
    Index.build(docs[:5], lexical()).save(ix)

    def fail(self, directory):
        (Path(directory)).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "indptr.npy").write_bytes(b"\0" * 4096)  # half-written
        raise exc

    monkeypatch.setattr(BM25Index, "save", fail)
    with pytest.raises(type(exc)):
        Index.build(docs[:8], lexical()).save(ix)
    monkeypatch.undo()
    assert siblings(ix) == [".ix.lock"]
    assert len(Index.load(ix).document_ids()) == 5


_KILLED_SAVE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from test_crash import unique_docs
from medrag.index import Index, IndexConfig
from medrag.retrieve.bm25 import BM25Index
real = BM25Index.save
def die(self, d):
    real(self, d)
    os.kill(os.getpid(), signal.SIGKILL)  # killed with the generation half written
BM25Index.save = die
Index.build(unique_docs()[:20], IndexConfig(encoder=None)).save(sys.argv[2])
"""


def test_the_next_save_sweeps_a_killed_saves_staging_and_only_that(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:5], lexical()).save(ix)
    for _ in range(3):
        r = run_child(_KILLED_SAVE, str(ix))
        assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    # each killed save's staging was swept by the next save: only the last is left
    staged = [n for n in siblings(ix) if n != ".ix.lock"]
    assert len(staged) == 1 and (tmp_path / staged[0] / "bm25").is_dir()
    # a directory that merely looks like one (no medrag marker) is somebody's: kept
    foreign = tmp_path / ".ix.0123456789abcdef"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    assert len(Index.load(ix).document_ids()) == 5  # the killed saves changed nothing
    Index.build(docs[:7], lexical()).save(ix)
    assert siblings(ix) == [".ix.0123456789abcdef", ".ix.lock"]
    assert (foreign / "data.csv").read_text() == "a,b\n"
    assert len(Index.load(ix).document_ids()) == 7


# --------------------------------------------------------------------------- copies and 0.1


@pytest.mark.parametrize("how", ["cp -r", "cp -a", "tar"])
def test_ordinary_copies_load(docs, tmp_path, how):
    ix = tmp_path / "ix"
    idx = Index.build(docs[:12], lexical())
    idx.save(ix)
    idx.add(docs[12:15])
    idx.save(ix)  # a second generation: the path must still be a plain directory
    dst = tmp_path / "copy"
    if how == "tar":
        subprocess.run(["tar", "-cf", str(tmp_path / "ix.tar"), "-C", str(tmp_path), "ix"], check=True)
        (tmp_path / "un").mkdir()
        subprocess.run(["tar", "-xf", str(tmp_path / "ix.tar"), "-C", str(tmp_path / "un")], check=True)
        dst = tmp_path / "un" / "ix"
    else:
        subprocess.run([*how.split(), str(ix), str(dst)], check=True)
    got = Index.load(dst, verify=True)
    assert sorted(got.document_ids()) == sorted(d.id for d in docs[:15])
    assert got.search("dopamine cocaine Drosophila", k=3)
    # and the copy is an index of its own: saving it leaves the original alone
    got.add(docs[15:17])
    got.save(dst)
    assert len(Index.load(dst).document_ids()) == 17 and len(Index.load(ix).document_ids()) == 15


MARKER = ".medrag-generation"  # medrag._indexdir.MARKER


def _make_v01_layout(ix: Path) -> Path:
    """Turn a saved index into what medrag 0.1 wrote: the path a relative symbolic link
    to a hidden sibling ``.ix.<16 hex>`` holding the files (no marker)."""
    hidden = ix.parent / f".{ix.name}.00112233445566aa"
    os.rename(ix, hidden)
    (hidden / MARKER).unlink(missing_ok=True)
    m = json.loads((hidden / "manifest.json").read_text())
    m["files"].pop(MARKER, None)
    (hidden / "manifest.json").write_text(json.dumps(m))
    os.symlink(hidden.name, ix)
    return hidden


def test_a_01_index_loads_and_the_next_save_makes_it_a_real_directory(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:10], lexical()).save(ix)
    hidden = _make_v01_layout(ix)
    idx = Index.load(ix, verify=True)
    assert len(idx.document_ids()) == 10
    idx.add(docs[10:14])
    idx.save(ix)
    assert ix.is_dir() and not ix.is_symlink()
    assert not hidden.exists()  # the old generation, released, was removed
    assert len(Index.load(ix).document_ids()) == 14


# --------------------------------------------------------------------------- processes

_SAVE_OTHER = """
import sys
sys.path.insert(0, sys.argv[1])
from test_crash import unique_docs
from medrag.index import Index, IndexConfig
Index.build(unique_docs()[30:45], IndexConfig(encoder=None)).save(sys.argv[2])
print("saved", flush=True)
"""


def test_a_loaded_index_keeps_reading_its_generation_after_another_process_saves(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:25], lexical()).save(ix)
    reader = Index.load(ix)  # loaded, not yet searched
    expected = {(p.chunk.id, round(p.score, 6)) for p in Index.load(ix).search("dopamine cocaine", k=10)}
    for _ in range(2):  # twice: the generation it loaded is no longer the current one
        r = run_child(_SAVE_OTHER, str(ix))
        assert r.returncode == 0, r.stderr[-3000:]
    got = {(p.chunk.id, round(p.score, 6)) for p in reader.search("dopamine cocaine", k=10)}
    assert got == expected
    for row in range(len(reader)):
        assert reader.chunk(row).doc_id in {d.id for d in docs[:25]}
    assert sorted(Index.load(ix).document_ids()) == sorted(d.id for d in docs[30:45])
    # its generation is kept while it reads it, and removed once it is closed
    assert len([n for n in siblings(ix) if n != ".ix.lock"]) == 1
    reader.close()
    Index.build(docs[:3], lexical()).save(ix)
    assert siblings(ix) == [".ix.lock"]


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from medrag import _indexdir
with _indexdir.write_lock(Path(sys.argv[2]), None):
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_writers_are_serialized_across_processes(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:5], lexical()).save(ix)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLD_LOCK), str(REPO / "tests"), str(ix), "2.0"],
        stdout=subprocess.PIPE, text=True, env=_child_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(E.IndexConflictError, match="another process"):
            Index.build(docs[:6], lexical()).save(ix, lock_timeout=0.2)
        assert len(Index.load(ix).document_ids()) == 5  # nothing written meanwhile
        Index.build(docs[:7], lexical()).save(ix, lock_timeout=30)  # waits for the holder
        assert time.monotonic() - t0 > 1.0
        assert len(Index.load(ix).document_ids()) == 7
    finally:
        holder.kill()
        holder.wait()


def test_saving_over_a_generation_someone_else_saved_is_refused(docs, tmp_path):
    """Two processes (here: two loaded indexes) load, change and save in turn: 0.1 let
    the second silently discard the first's documents."""
    ix = tmp_path / "ix"
    Index.build(docs[:10], lexical()).save(ix)
    a, b = Index.load(ix), Index.load(ix)
    a.add(docs[10:12])
    a.save(ix)
    b.add(docs[20:22])
    with pytest.raises(E.IndexConflictError, match="another writer"):
        b.save(ix)
    assert sorted(Index.load(ix).document_ids()) == sorted(d.id for d in docs[:12])
    a.add(docs[12:13])
    a.save(ix)  # its own generation: no conflict
    b.save(tmp_path / "elsewhere")  # saving somewhere else is fine
    c = Index.load(ix)
    c.add(docs[20:22])
    c.save(ix)
    assert sorted(Index.load(ix).document_ids()) == sorted(d.id for d in docs[:13] + docs[20:22])


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs",
    [{"year_min": "2015"}, {"year_max": 2015.5}, {"year_min": True}, {"kinds": "pubmed"},
     {"publication_types": "Review"}, {"mesh": [1]}, {"doc_ids": "pmid:1"}, {"exclude_doc_ids": 5},
     {"include_retracted": "yes"}],
)
def test_bad_filters_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        Filters(**kwargs)


def test_filters_accept_lists_and_numpy_years(docs):
    import numpy as np

    f = Filters(year_min=np.int64(2015), kinds=["pubmed"])
    assert f.year_min == 2015 and isinstance(f.year_min, int) and f.kinds == ("pubmed",)
    idx = Index.build(docs[:20], lexical())
    assert idx.search("cancer", k=5, filters=f) == idx.search("cancer", k=5, filters=Filters(year_min=2015, kinds=("pubmed",)))


def test_add_and_delete_check_their_arguments(docs):
    idx = Index.build(docs[:10], lexical())
    victim = docs[0].id
    with pytest.raises(ConfigError, match="single string"):
        idx.delete(victim)
    with pytest.raises(ConfigError):
        idx.delete([1, 2])
    assert idx.n_documents == 10
    assert idx.delete([victim, victim]) == 1
    assert idx.n_documents == 9
    with pytest.raises(ConfigError, match="item 0 is a str"):
        idx.add(["str"])
    with pytest.raises(ConfigError, match=r"pass \[document\]"):
        idx.add(docs[1])
    with pytest.raises(ConfigError):
        idx.add(42)
    assert idx.n_documents == 9


_HUGE_K = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import HashEncoder
from test_crash import unique_docs
from medrag.index import Index, IndexConfig
from medrag.retrieve.dense import VectorConfig
cfg = IndexConfig(vectors=VectorConfig(kind="hnsw", m=8, ef_construction=40, ef_search=32))
idx = Index.build(unique_docs()[:20], cfg, encoder=HashEncoder())
idx.search("dopamine cocaine", k=5)
import resource
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for mode in ("dense", "hybrid", "bm25"):
    print(mode, len(idx.search("dopamine cocaine", k=1_000_000_000, mode=mode)), flush=True)
print("rows", len(idx))
print("grew_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_huge_k_is_clamped_before_faiss():
    """0.1 passed k to FAISS HNSW as efSearch: 7.8 GB of memory and 19 s a search here
    (4.4 GB and std::bad_alloc on the reviewer's machine)."""
    r = run_child(_HUGE_K, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = dict(line.split() for line in r.stdout.split("\n") if line)
    rows = int(out["rows"])
    assert int(out["dense"]) == rows and int(out["hybrid"]) == rows and 0 < int(out["bm25"]) <= rows
    assert int(out["grew_mb"]) < 200, out


# --------------------------------------------------------------------------- tampered manifests


@pytest.fixture
def saved_lexical(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:10], lexical()).save(ix)
    return ix


CATASTROPHIC = r"(?:[a-z]+)+[^\W_]*(?:x+x+)+y"


@pytest.mark.parametrize("where", ["manifest.json", "bm25/bm25.json"])
def test_a_tampered_token_pattern_is_refused(saved_lexical, where):
    p = saved_lexical / where
    m = json.loads(p.read_text())
    m["analyzer"]["token_pattern"] = CATASTROPHIC
    p.write_text(json.dumps(m))
    if where != "manifest.json":
        resign(saved_lexical)
    with pytest.raises(IndexFormatError, match="token_pattern"):
        Index.load(saved_lexical)


@pytest.fixture
def saved_dense(docs, tmp_path):
    ix = tmp_path / "ix"
    Index.build(docs[:10], IndexConfig(), encoder=HashEncoder()).save(ix)
    return ix


def _name_model(ix: Path, model: str) -> None:
    m = json.loads((ix / "manifest.json").read_text())
    m["dense"]["encoder"] = {
        "type": "sentence-transformers", "dim": 32, "model": model, "query_prefix": "",
        "document_prefix": "", "max_seq_length": None, "batch_size": 32,
    }
    (ix / "manifest.json").write_text(json.dumps(m))


_LOAD_UNTRUSTED = """
import sys
from medrag.index import Index
from medrag.errors import ConfigError
try:
    Index.load(sys.argv[2])
    print("loaded")
except ConfigError as e:
    print("refused", "trust_encoder" in str(e))
print("sentence_transformers imported:", "sentence_transformers" in sys.modules)
"""


@pytest.mark.parametrize("model", ["hub", "folder"])
def test_a_manifest_naming_a_model_elsewhere_is_not_loaded(saved_dense, tmp_path, model):
    """Neither the hub nor a folder outside the index: refused before
    sentence-transformers is even imported; the caller's encoder, load_encoder=False
    or trust_encoder=True are the ways in."""
    if model == "hub":
        name = "sentence-transformers/all-MiniLM-L6-v2"
    else:
        evil = tmp_path / "evil_model"
        evil.mkdir()
        (evil / "modules.json").write_text("[]")
        name = str(evil)
    _name_model(saved_dense, name)
    r = run_child(_LOAD_UNTRUSTED, str(saved_dense))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:2] == ["refused True", "sentence_transformers imported: False"], r.stdout
    assert len(Index.load(saved_dense, encoder=HashEncoder()).search("dopamine", k=3, mode="dense")) == 3
    assert Index.load(saved_dense, load_encoder=False).search("dopamine", k=3)


# The packaged default model still loading offline, with no encoder passed and no
# network, is tests/test_privacy.py::test_whole_pipeline_makes_no_connection_and_writes_only_where_told
# (it builds, saves and loads the default index and watches every connection).


def test_hnsw_index_survives_copy_and_save(docs, tmp_path):
    """The FAISS file travels with an ordinary copy too."""
    ix = tmp_path / "ix"
    cfg = IndexConfig(vectors=VectorConfig(kind="hnsw", m=8, ef_construction=40, ef_search=32))
    Index.build(docs[:15], cfg, encoder=HashEncoder()).save(ix)
    subprocess.run(["cp", "-a", str(ix), str(tmp_path / "copy")], check=True)
    assert (tmp_path / "copy" / "dense" / "index.faiss").is_file()
    got = Index.load(tmp_path / "copy", encoder=HashEncoder())
    assert len(got.search("dopamine", k=5, mode="dense")) == 5


# --------------------------------------------------------------------------- verified once, recorded (issue 16)


def _hashed(caplog) -> list[str]:
    """The "verified N of M files" lines logged since the last clear."""
    out = [r.getMessage() for r in caplog.records if r.getMessage().startswith("verified ")]
    caplog.clear()
    return out


def test_a_save_records_its_verification_and_loads_skip_the_full_pass(docs, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="medrag.index")
    ix = tmp_path / "ix"
    Index.build(docs[:20], lexical()).save(ix)
    record = json.loads((ix / ".medrag-verified.json").read_text())
    manifest = json.loads((ix / "manifest.json").read_text())
    assert set(record["files"]) == set(manifest["files"])
    assert ".medrag-verified.json" not in manifest["files"]  # never listed: the manifest is immutable
    _hashed(caplog)
    Index.load(ix).close()
    assert _hashed(caplog) == []  # sizes only: the record vouches for every file
    # verify="full" and Index.verify() always hash everything
    n = len(manifest["files"])
    Index.load(ix, verify="full").close()
    assert [m.split(" (")[0] for m in _hashed(caplog)] == [f"verified {n} of {n} files"]
    got = Index.load(ix)
    info = got.verify()
    assert [m.split(" (")[0] for m in _hashed(caplog)] == [f"verified {n} of {n} files"]
    assert info["files"] == len(manifest["files"]) and info["bytes"] == sum(m["size"] for m in manifest["files"].values())
    # an ordinary copy has new inodes: its first load hashes everything and records it
    subprocess.run(["cp", "-r", str(ix), str(tmp_path / "copy")], check=True)
    caplog.clear()
    Index.load(tmp_path / "copy").close()
    assert [m.split(" (")[0] for m in _hashed(caplog)] == [f"verified {n} of {n} files"]
    assert json.loads((tmp_path / "copy" / ".medrag-verified.json").read_text())["files"] != record["files"]
    Index.load(tmp_path / "copy").close()
    assert _hashed(caplog) == []
    # the record does not stop a save over the index, nor hides a user's own file
    Index.load(ix).save(ix)
    (ix / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        Index.build(docs[:5], lexical()).save(ix)
    got.close()


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_file_rewritten_after_the_record_is_hashed_again(docs, tmp_path, keep_mtime):
    """Same size, same inode, even the old modification time restored: the change time
    moved, so the record no longer vouches for the file and the sha256 check fails."""
    ix = tmp_path / "ix"
    Index.build(docs[:20], lexical()).save(ix)
    Index.load(ix).close()
    for rel in ("chunks.jsonl", "bm25/weights.npy", "doc_year.npy"):
        p = ix / rel
        st = p.stat()
        with open(p, "r+b") as f:  # in place: the inode stays; the last byte (data, not a header)
            f.seek(st.st_size - 1)
            b = f.read(1)
            f.seek(st.st_size - 1)
            f.write(bytes([b[0] ^ 0x01]))
        if keep_mtime:
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert p.stat().st_ino == st.st_ino and p.stat().st_size == st.st_size
        with pytest.raises(IndexFormatError, match=f"{rel} fails its sha256"):
            Index.load(ix)
        Index.load(ix, verify=False).close()  # sizes only, as documented
        with open(p, "r+b") as f:
            f.seek(st.st_size - 1)
            f.write(b)
        Index.load(ix).close()


@pytest.mark.parametrize("record", ["garbage", "{}", "wrong manifest", "forged stats"])
def test_a_bad_or_stale_record_only_brings_the_full_pass_back(docs, tmp_path, record):
    ix = tmp_path / "ix"
    Index.build(docs[:20], lexical()).save(ix)
    rp = ix / ".medrag-verified.json"
    r = json.loads(rp.read_text())
    p = ix / "chunks.jsonl"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(bytes(raw))  # a corrupt file, and a record that must not hide it
    if record == "garbage":
        rp.write_bytes(b"\x00\xff not json")
    elif record == "{}":
        rp.write_text("{}")
    elif record == "wrong manifest":
        rp.write_text(json.dumps({**r, "manifest_sha256": "0" * 64}))
    else:  # stats copied from the file as it is now, but with the old clock: not older than it
        st = p.stat()
        r["files"]["chunks.jsonl"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        rp.write_text(json.dumps(r))
    with pytest.raises(IndexFormatError, match="chunks.jsonl fails its sha256"):
        Index.load(ix)


def test_verify_argument_and_a_stale_verify_are_refused(docs, tmp_path):
    import medrag.errors as errors

    with pytest.raises(ConfigError, match="verify must be"):
        Index.load(tmp_path / "nowhere", verify="yes")
    with pytest.raises(ConfigError, match="not been saved"):
        Index.build(docs[:3], lexical()).verify()
    ix = tmp_path / "ix"
    Index.build(docs[:5], lexical()).save(ix)
    old = Index.load(ix)
    Index.build(docs[5:10], lexical()).save(ix)
    with pytest.raises(errors.IndexConflictError, match="load it again"):
        old.verify()
    old.close()
