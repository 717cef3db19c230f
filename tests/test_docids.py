"""Document ids as flat, memory-mapped arrays (index format 2, medrag._docids): lookups,
replacements, compaction, the old doc_ids.json format still loading, and damage found."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import need_data
from test_crash import resign

from medrag._docids import DocIds, digest
from medrag.errors import ConfigError, IndexFormatError
from medrag.index import Filters, Index, IndexConfig
from medrag.ingest import iter_pubmed

LEX = IndexConfig(encoder=None)


@pytest.fixture(scope="module")
def docs():
    """The real excerpt's articles, one per PMID (its last version, as an index keeps)."""
    raw = iter_pubmed(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))
    return list({d.id: d for d in raw}.values())


def _old_fingerprint(ids, shas) -> str:
    """How format 1 computed the corpus fingerprint (one joined string)."""
    return hashlib.sha256("\n".join(f"{i} {h}" for i, h in zip(ids, shas)).encode("utf-8")).hexdigest()


def test_lookup_tail_take_and_fingerprint(tmp_path):
    ids = [f"pmid:{i}" for i in range(1, 2001)] + ["doi:10.1/é", "guideline:who-salt"]
    shas = [hashlib.sha256(i.encode()).hexdigest() if k % 3 else None for k, i in enumerate(ids)]
    t = DocIds.from_lists(ids, shas)
    assert len(t) == len(ids) and list(t) == ids and t[-1] == ids[-1]
    assert all(t.row(i) == k for k, i in enumerate(ids))
    assert t.row("pmid:0") is None and "pmid:0" not in t and 5 not in t
    assert [t.sha(k) for k in range(len(ids))] == shas
    assert t.fingerprint() == _old_fingerprint(ids, shas)
    t.write(tmp_path)
    back = DocIds.load(tmp_path, len(ids), mmap=True)
    assert isinstance(back._blob, np.memmap)  # nothing per document parsed at load
    assert list(back) == ids and back.row("doi:10.1/é") == len(ids) - 2
    back.extend(["pmid:7", "pmid:9999"], [None, "ab" * 32])  # a new version of pmid:7, a new id
    assert back.row("pmid:7") == len(ids) and back.row("pmid:9999") == len(ids) + 1
    assert back.sha(len(ids) + 1) == "ab" * 32
    with pytest.raises(ConfigError, match="pmid:7.*two rows"):
        back.write(tmp_path / "x")
    added = DocIds.load(tmp_path, len(ids), mmap=True)  # ids added since the load, then saved
    added.extend(["pmid:90001", "pmid:90002"], ["cd" * 32, None])
    (tmp_path / "y").mkdir()
    added.write(tmp_path / "y")
    both = DocIds.load(tmp_path / "y", len(ids) + 2, mmap=False, deep=True)
    assert list(both) == ids + ["pmid:90001", "pmid:90002"] and both.row("pmid:90001") == len(ids)
    assert both.sha(len(ids)) == "cd" * 32 and both.sha(len(ids) + 1) is None
    assert all(both.row(i) == k for k, i in enumerate(ids[::97]) for k in [ids.index(i)])
    keep = np.asarray([r for r in range(len(back)) if r != 6])
    kept = back.take(keep)
    assert kept.row("pmid:7") == len(ids) - 1 and kept.sha(kept.row("pmid:7")) is None
    with pytest.raises(IndexError):
        back[len(back)]
    with pytest.raises(ConfigError, match="64 ASCII"):
        DocIds.from_lists(["a"], ["x" * 65])


def test_an_index_saves_ids_as_arrays_and_finds_documents(docs, tmp_path):
    ix = Index.build(docs, LEX)
    ix.save(tmp_path / "ix")
    files = set(json.loads((tmp_path / "ix" / "manifest.json").read_text())["files"])
    assert "doc_ids.json" not in files and {"doc_ids.bin", "doc_id_hash.npy", "doc_sha256.npy"} <= files
    back = Index.load(tmp_path / "ix")
    assert back.document_ids() == ix.document_ids() == [d.id for d in docs]
    assert back.source(docs[5].id) == ix.source(docs[5].id)
    assert back.manifest["corpus_fingerprint"] == _old_fingerprint(
        [d.id for d in docs], [d.source.sha256 for d in docs]
    )
    # a replaced document: its new version wins, before and after the save
    old = docs[3]
    new = dataclasses.replace(old, title="A new version of this record, revised")
    back.add([new])
    assert back.source(old.id).title == new.title
    back.delete([docs[0].id])
    assert docs[0].id not in back.document_ids()
    ex = Filters(exclude_doc_ids=(docs[1].id,))
    assert all(p.source.doc_id != docs[1].id for p in back.search(docs[1].title, 10, filters=ex))
    back.save(tmp_path / "ix")
    again = Index.load(tmp_path / "ix")
    assert again.source(old.id).title == new.title and len(again.document_ids()) == len(docs) - 1
    assert again.document_ids() == back.document_ids()
    with pytest.raises(KeyError):
        again.source(docs[0].id)


def test_a_format_1_index_loads_and_saves_as_format_2(docs, tmp_path):
    ix = Index.build(docs, LEX)
    d = tmp_path / "ix"
    ix.save(d)
    queries = [x.title for x in docs[:20]]
    want = [[p.chunk.id for p in ix.search(q, 5)] for q in queries]
    # what a format-1 save wrote: the ids and hashes as one JSON document
    m = json.loads((d / "manifest.json").read_text())
    ids = [x.id for x in docs]
    (d / "doc_ids.json").write_text(json.dumps({"ids": ids, "sha256": [x.source.sha256 for x in docs]}))
    for rel in ("doc_ids.bin", "doc_id_offsets.npy", "doc_id_hash.npy", "doc_id_order.npy", "doc_sha256.npy"):
        (d / rel).unlink()
        del m["files"][rel]
    m["files"]["doc_ids.json"] = {}
    m["format_version"] = 1
    (d / "manifest.json").write_text(json.dumps(m))
    resign(d)
    old = Index.load(d)
    assert old.document_ids() == ids and [[p.chunk.id for p in old.search(q, 5)] for q in queries] == want
    old.delete([ids[0]])
    old.save(d)
    new = Index.load(d)
    assert new.manifest["format_version"] == 2 and "doc_ids.json" not in new.manifest["files"]
    assert new.document_ids() == ids[1:]


@pytest.mark.parametrize("damage", ["unsorted digests", "duplicate id", "offsets past the end", "sha dtype"])
def test_damaged_id_arrays_are_format_errors(docs, tmp_path, damage):
    d = tmp_path / "ix"
    Index.build(docs[:30], LEX).save(d)
    if damage == "unsorted digests":
        h = np.load(d / "doc_id_hash.npy")
        np.save(d / "doc_id_hash.npy", h[::-1].copy())
    elif damage == "duplicate id":  # row 1 gets row 0's id (same length: offsets unchanged)
        blob = (d / "doc_ids.bin").read_bytes()
        off = np.load(d / "doc_id_offsets.npy")
        ids = [blob[off[i] : off[i + 1]] for i in range(len(off) - 1)]
        j = next(k for k in range(1, len(ids)) if len(ids[k]) == len(ids[0]))
        ids[j] = ids[0]
        (d / "doc_ids.bin").write_bytes(b"".join(ids))
        h = np.asarray([digest(i.decode()) for i in ids], np.uint64)
        order = np.argsort(h, kind="stable")
        np.save(d / "doc_id_hash.npy", h[order])
        np.save(d / "doc_id_order.npy", order.astype(np.int64))
    elif damage == "offsets past the end":
        off = np.load(d / "doc_id_offsets.npy")
        off[-1] += 3
        np.save(d / "doc_id_offsets.npy", off)
    else:
        np.save(d / "doc_sha256.npy", np.zeros(30, "S32"))
    resign(d)
    with pytest.raises(IndexFormatError, match="doc_id|doc_sha256"):
        Index.load(d)


def test_documents_with_one_id_in_one_add_keep_the_last(docs, tmp_path):
    a, b = docs[0], dataclasses.replace(docs[0], title="second version")
    ix = Index.build([a, docs[1], b], LEX)
    assert ix.document_ids() == [docs[1].id, a.id] or ix.document_ids() == [a.id, docs[1].id]
    assert ix.source(a.id).title == "second version"
    ix.save(tmp_path / "ix")
    assert Index.load(tmp_path / "ix").source(a.id).title == "second version"


def test_ids_in_memory_are_not_a_python_list_of_the_corpus(docs, tmp_path):
    d = tmp_path / "ix"
    Index.build(docs, LEX).save(d)
    t = Index.load(d)._docs.ids
    assert isinstance(t, DocIds) and not t._tail and isinstance(t._hash, np.ndarray)
    assert Path(d / "doc_ids.bin").stat().st_size == sum(len(x.id.encode()) for x in docs)


def test_a_save_after_deletions_copies_lines_without_parsing_them(docs, tmp_path, monkeypatch):
    """Compaction keeps the loaded rows as views of chunks.jsonl / docs.jsonl (a save
    copies their bytes: at PubMed scale parsing every line would not fit memory), and the
    result equals a fresh build of the documents left, file for file."""
    from medrag._indexparts import ChunkStore, DocTable

    d = tmp_path / "ix"
    Index.build(docs, LEX).save(d)
    ix = Index.load(d)
    gone = [x.id for x in docs[2::4]]
    extra = dataclasses.replace(docs[0], id="pmid:99999999", title="An added record, saved after the deletions")
    ix.add([extra])
    ix.delete(gone)

    def refuse(*a, **k):
        raise AssertionError("a loaded line was parsed during the save")

    parse_doc = DocTable.__getitem__

    def only_added(self, i):  # added documents are held parsed; loaded ones must not be read
        if int(i) not in self._parsed:
            refuse()
        return parse_doc(self, i)

    monkeypatch.setattr(ChunkStore, "get", refuse)
    monkeypatch.setattr(DocTable, "__getitem__", only_added)
    ix.save(d)
    monkeypatch.undo()
    left = [x for x in docs if x.id not in set(gone)] + [extra]
    Index.build(left, LEX).save(tmp_path / "fresh")
    for rel in ("chunks.jsonl", "docs.jsonl", "doc_ids.bin", "doc_id_hash.npy", "doc_id_order.npy", "chunk_doc.npy"):
        assert (d / rel).read_bytes() == (tmp_path / "fresh" / rel).read_bytes(), rel
    again = Index.load(d, verify="full")
    assert again.document_ids() == [x.id for x in left]
    assert again.source(extra.id).title == extra.title
