"""An index on the segments engine (lexical="segments", medrag.store) changed in place:
add / delete / save against a fresh build of the resulting corpus and against the
default engine, on real PubMed records; reload; tiered merges; SIGKILL mid-save."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO
from test_index import real_pubmed  # noqa: F401  (the real-records fixture: 1,103 PubMed articles)

from medrag.errors import IndexConflictError
from medrag.index import Filters, Index, IndexConfig
from medrag.store import read_current

LEX = IndexConfig(encoder=None)


@pytest.fixture(scope="module")
def corpus(real_pubmed):  # noqa: F811
    seen, out = set(), []
    for d in real_pubmed:
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out


def _changes(corpus):
    """A base corpus, the documents added, the ids deleted, one replaced document, and
    the resulting corpus in row order (what a fresh build sees)."""
    base, added = corpus[:800], corpus[800:]
    deleted = {d.id for d in base[3::7]}
    old = base[11]  # not among the deleted
    revised = dataclasses.replace(old, title=(old.title or "") + " revised edition of the record")
    result = [d for d in base if d.id not in deleted and d.id != old.id] + added + [revised]
    return base, added, deleted, revised, result


def _apply(ix, added, deleted, revised):
    """The changes; returns the number of rows (chunks) added."""
    n = ix.add(added)
    assert ix.delete(sorted(deleted)) == len(deleted)
    return n + ix.add([revised])  # replaces the document of the same id


def _queries(corpus):
    qs = [d.title for d in corpus if d.title]
    return qs[::7][:80] + ["the", "zzzz unknownterm", "dopamine receptor antagonist", "revised edition"]


def _top(passages):
    """A top-10 as (score, chunk id) best first, tied scores by chunk id, and the rows
    tied at the cut-off left out: Index.search breaks ties by row number, and an index
    changed in place numbers its rows differently from a fresh build until it is saved."""
    if not passages:
        return []
    cut = passages[-1].score
    above = [(p.score, p.chunk.id) for p in passages if p.score > cut + 1e-9 * abs(cut)]
    return sorted(above, key=lambda t: (-round(t[0], 9), t[1])) + [(cut, "tied")] * (len(passages) - len(above))


def _differ(a, b, queries, filters=(None,)):
    out = []
    for f in filters:
        for q in queries:
            ra, rb = _top(a.search(q, 10, mode="bm25", filters=f)), _top(b.search(q, 10, mode="bm25", filters=f))
            if [i for _, i in ra] != [i for _, i in rb] or not np.allclose([s for s, _ in ra], [s for s, _ in rb], rtol=1e-9, atol=0):
                out.append((q, f))
    return out


def test_add_delete_save_equal_a_fresh_build_and_the_default_engine(corpus, tmp_path):
    base, added, deleted, revised, result = _changes(corpus)
    Index.build(base, LEX, lexical="segments").save(tmp_path / "seg")
    Index.build(base, LEX).save(tmp_path / "bm25")
    Index.build(result, LEX, lexical="segments").save(tmp_path / "fresh")
    seg, ref, fresh = Index.load(tmp_path / "seg"), Index.load(tmp_path / "bm25"), Index.load(tmp_path / "fresh")
    n0 = len(seg)
    n_added = _apply(seg, added, deleted, revised)
    _apply(ref, added, deleted, revised)
    queries = _queries(corpus)
    filters = (None, Filters(year_min=1978), Filters(exclude_doc_ids=(result[0].id,)))
    # before the save: the store plus the changes, scored with the statistics of now
    assert _differ(seg, fresh, queries, filters) == []
    assert _differ(seg, ref, queries[:60]) == []
    words = ["dopamine", "the", "revised", "nonexistentword"]
    assert seg.term_weights(words) == pytest.approx(fresh.term_weights(words), rel=1e-12)
    assert len(seg) == len(fresh) and seg.n_documents == fresh.n_documents == len(result)
    seg.save(tmp_path / "seg")
    # the store grew by one segment and tombstones (the rows of the deleted and replaced documents)
    cur = read_current(tmp_path / "seg" / "lexical")
    assert len(cur.segments) == 2 and cur.segments[1]["n_docs"] == n_added
    assert cur.segments[0]["deletes"]["n"] == n0 + n_added - len(seg) > 0
    assert cur.data["stats"]["n_live"] == len(seg)
    assert _differ(seg, fresh, queries, filters) == []  # the saved store now answers (MaxScore)
    again = Index.load(tmp_path / "seg", verify="full")
    assert _differ(again, fresh, queries, filters) == []
    assert _differ(again, ref, queries[:60]) == []
    assert sorted(again.document_ids()) == sorted(d.id for d in result)
    # deleted documents are never returned, even for their own titles
    for d in base:
        if d.id in deleted and d.title:
            assert not {p.chunk.doc_id for p in again.search(d.title, 10, mode="bm25")} & deleted
    assert again.source(revised.id).title == revised.title
    # the retired generation is gone and nothing else is left beside the indexes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["seg", "bm25", "fresh", ".seg.lock", ".bm25.lock", ".fresh.lock"])


def test_a_clean_resave_and_a_save_to_another_path(corpus, tmp_path):
    base = corpus[:300]
    Index.build(base, LEX, lexical="segments").save(tmp_path / "a")
    a = Index.load(tmp_path / "a")
    before = [[p.chunk.id for p in a.search(q, 10, mode="bm25")] for q in _queries(base)[:20]]
    a.save(tmp_path / "a")  # nothing changed: the store's files are linked as they are
    a.add(corpus[300:340])
    a.delete([base[0].id])
    a.save(tmp_path / "b")  # linked from a's generation into a new index
    b, a2 = Index.load(tmp_path / "b", verify="full"), Index.load(tmp_path / "a", verify="full")
    assert a2.n_documents == 300 and b.n_documents == 339
    assert [[p.chunk.id for p in a2.search(q, 10, mode="bm25")] for q in _queries(base)[:20]] == before
    fresh = Index.build(base[1:] + corpus[300:340], LEX)
    assert _differ(b, fresh, _queries(corpus)[:60]) == []


def test_saving_after_the_loaded_generation_was_replaced_is_refused(corpus, tmp_path):
    Index.build(corpus[:100], LEX, lexical="segments").save(tmp_path / "a")
    x = Index.load(tmp_path / "a")
    y = Index.load(tmp_path / "a")
    y.add(corpus[100:110])
    y.save(tmp_path / "a")  # another writer replaces the generation x loaded
    x.add(corpus[110:120])
    with pytest.raises(IndexConflictError):
        x.save(tmp_path / "c")  # x's store files are no longer at the path it loaded from
    assert not (tmp_path / "c").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".c.") and p.is_dir()]
    assert len(x.search(corpus[115].title, 3, mode="bm25")) > 0  # x still serves what it holds


def test_repeated_saves_merge_by_the_tiered_policy(corpus, tmp_path, monkeypatch):
    from medrag.index import storelex
    from medrag.store import TieredMergePolicy

    # the policy a save merges by (a setting: 3 segments of a tier instead of 10 keeps the test short)
    monkeypatch.setattr(storelex, "MERGE_POLICY", TieredMergePolicy(segments_per_tier=3))
    path = tmp_path / "ix"
    Index.build(corpus[:100], LEX, lexical="segments").save(path)
    n_segments, live = [], [d.id for d in corpus[:100]]
    for cycle in range(5):
        ix = Index.load(path)
        new = corpus[100 + 20 * cycle : 120 + 20 * cycle]
        ix.add(new)
        gone = live[cycle * 5 : cycle * 5 + 3]
        ix.delete(gone)
        live = [i for i in live if i not in gone] + [d.id for d in new]
        ix.save(path)
        ix.close()
        n_segments.append(len(read_current(path / "lexical").segments))
    # three segments of one tier (the base or a merged one, and two appended) are merged into one
    assert n_segments == [2, 1, 2, 1, 2], n_segments
    got = Index.load(path, verify="full")
    assert got.document_ids() == live
    by_id = {d.id: d for d in corpus}
    fresh = Index.build([by_id[i] for i in live], LEX)
    assert _differ(got, fresh, _queries([by_id[i] for i in live])) == []


def test_sigkill_during_a_segments_save_leaves_a_loadable_generation(tmp_path):
    """test_crash's child in its "add" mode (load, add five documents or delete back to
    ten, save, again), on an index whose manifest names the segments engine."""
    from test_crash import _CHILD, unique_docs

    docs = unique_docs()
    ids = [d.id for d in docs]
    path = tmp_path / "ix"
    Index.build(docs[:10], LEX, lexical="segments").save(path)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    rng = random.Random(16)
    trials, killed_mid_save, t_end, prev = 0, 0, time.monotonic() + 6, 10
    while (time.monotonic() < t_end or trials < 4 or not killed_mid_save) and trials < 25:
        out_path = tmp_path / f"out{trials}.txt"
        with open(out_path, "w") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(REPO / "tests"), "add", str(path), str(trials)],
                stdout=out, stderr=subprocess.PIPE, env=env,
            )
            t0 = time.monotonic()
            while "start" not in out_path.read_text() and child.poll() is None and time.monotonic() - t0 < 60:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-3000:]
        log = out_path.read_text().split("\n")
        trials += 1
        starts = [int(ln.split()[1]) for ln in log if ln.startswith("start")]
        saves = [int(ln.split()[1]) for ln in log if ln.startswith("saved")]
        killed_mid_save += len(starts) > len(saves)
        idx = Index.load(path, verify="full")
        got = idx.document_ids()
        assert sorted(got) == sorted(ids[: len(got)]), "the index holds no version that was ever saved"
        old = saves[-1] if saves else prev
        assert len(got) in (old, starts[-1] if starts else old), (len(got), old, starts)
        prev = len(got)
        assert read_current(path / "lexical").data["stats"]["n_live"] == len(idx)
        hits = idx.search("dopamine cocaine Drosophila", k=5, mode="bm25")
        assert {p.chunk.doc_id for p in hits} <= set(got)
        idx.close()
    assert trials >= 4 and killed_mid_save >= 1, (trials, killed_mid_save)
    # the next save works over what was left and sweeps the killed saves' staging directories
    ix = Index.load(path)
    ix.add(docs[60:62])
    ix.save(path)
    ix.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ix.") and p.is_dir()] == []


@pytest.mark.parametrize("lexical", ["bm25", "segments"])
def test_a_save_hashes_the_files_it_writes_as_it_writes_them(corpus, tmp_path, monkeypatch, lexical):
    """The files a save writes itself (documents, chunks, offsets, vectors, the store's
    segments and tombstones) are hashed while written, not read back; the manifest's
    sha256 of every file is still the file's (oracle: hashlib over the bytes on disk)."""
    import hashlib
    from pathlib import Path

    from conftest import HashEncoder

    from medrag.index import persist
    from medrag.store import format as store_format

    read: list[str] = []
    for mod in (persist, store_format):
        real = mod.sha256_file
        monkeypatch.setattr(mod, "sha256_file", lambda p, real=real: read.append(Path(p).name) or real(p))
    ix = Index.build(corpus[:200], IndexConfig(encoder=None), encoder=HashEncoder(), lexical=lexical)
    ix.save(tmp_path / "ix")
    written = {"docs.jsonl", "chunks.jsonl", "doc_ids.bin", "doc_sha256.npy", "chunk_offsets.npy", "chunk_doc.npy", "vectors.npy"}
    written |= {"docs.npy", "tf.npy", "terms.bin", "ids.bin"} if lexical == "segments" else set()
    assert not written & set(read), read
    ix.add(corpus[200:230])
    ix.delete([corpus[0].id])
    ix.save(tmp_path / "ix")  # on the segments engine: a new segment, tombstones, links
    assert not written & set(read), read
    files = Index.load(tmp_path / "ix", encoder=HashEncoder()).manifest["files"]
    assert {"chunks.jsonl", "dense/vectors.npy"} <= set(files)
    for rel, meta in files.items():
        data = (tmp_path / "ix" / rel).read_bytes()
        assert (meta["size"], meta["sha256"]) == (len(data), hashlib.sha256(data).hexdigest()), rel


def test_an_empty_or_emptied_segments_index_saves_and_grows(corpus, tmp_path):
    Index.build([], LEX, lexical="segments").save(tmp_path / "e")  # a store of no rows still opens
    e = Index.load(tmp_path / "e")
    assert len(e) == 0 and e.search("dopamine", 3, mode="bm25") == []
    e.add(corpus[:20])
    e.save(tmp_path / "e")
    e = Index.load(tmp_path / "e", verify="full")
    e.delete(e.document_ids())
    assert e.search(corpus[3].title, 3, mode="bm25") == []
    e.save(tmp_path / "e")
    e = Index.load(tmp_path / "e", verify="full")
    assert len(e) == 0 and e.n_documents == 0 and read_current(tmp_path / "e" / "lexical").data["stats"]["n_live"] == 0
    e.add(corpus[20:25])
    assert _differ(e, Index.build(corpus[20:25], LEX), [d.title for d in corpus[20:25] if d.title]) == []


def test_the_first_load_after_an_in_place_save_hashes_nothing(corpus, tmp_path, caplog):
    """Retiring the previous generation unlinks the store files hard-linked into the new
    one (their status-change time moves); the save records them again, so the next
    default load does not hash the whole store, while a file altered afterwards (size
    and mtime kept) is still hashed and caught."""
    import logging

    from medrag.errors import IndexFormatError

    caplog.set_level(logging.INFO, logger="medrag.index")
    Index.build(corpus[:200], LEX, lexical="segments").save(tmp_path / "ix")
    ix = Index.load(tmp_path / "ix")
    ix.add(corpus[200:220])
    ix.save(tmp_path / "ix")
    ix.close()
    caplog.clear()
    Index.load(tmp_path / "ix").close()
    assert not [r for r in caplog.records if r.getMessage().startswith("verified ")]
    seg = read_current(tmp_path / "ix" / "lexical").segments[0]["name"]
    victim = tmp_path / "ix" / "lexical" / seg / "docs.npy"  # linked from the first generation
    st = victim.stat()
    with open(victim, "r+b") as f:
        f.seek(st.st_size - 1)
        b = f.read(1)
        f.seek(st.st_size - 1)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(IndexFormatError, match="fails its sha256"):
        Index.load(tmp_path / "ix")


def _fast_equals_exhaustive(ix, queries):
    """With changes pending, the fast path (block-max MaxScore over the restated store,
    the added rows exhaustively, merged) returns the exhaustive pass's rows and scores,
    for several k, with no mask, a read-only mask and a writable one; ``scores`` agrees."""
    lex = ix._bm25
    assert lex.dirty
    rng = np.random.default_rng(5)
    ro = rng.random(lex.n_rows) < 0.6
    ro.flags.writeable = False
    masks = (None, ro, ro.copy(), np.zeros(lex.n_rows, bool))
    n_hits = 0
    for q in queries:
        toks = ix.config.analyzer.tokenize(q)
        if not toks:
            continue
        for m in masks:
            for k in (1, 10, 40):
                fr, fs = lex.search(toks, k, mask=m)
                er, es = lex._search_exhaustive(toks, k, mask=m)
                assert fr.tolist() == er.tolist(), (q, k)
                np.testing.assert_allclose(fs, es, rtol=1e-12, atol=0)
                n_hits += fr.size
        full = lex.scores(toks)
        # the rows hybrid fusion asks for: stored, added and deleted ones, repeated
        pick = np.concatenate([lex.search(toks, 20)[0], rng.integers(0, lex.n_rows, 60), np.flatnonzero(~lex.alive)[:5]])
        assert np.array_equal(lex.scores_of(toks, pick), full[pick]), q
        top = np.sort(full)[::-1][: min(10, int(np.count_nonzero(full)))]
        np.testing.assert_allclose(top, lex.search(toks, 10)[1][: top.size], rtol=1e-12, atol=0)
        assert not full[~np.asarray(lex.alive)].any()  # deleted rows score 0
    assert n_hits > 0 and lex._stats is not None and lex._stats.view is not None  # the store answered by MaxScore


def test_pending_changes_are_searched_by_maxscore_exactly(corpus, tmp_path):
    """Issue 16's fast path: after adds, deletes and a replace (pending, then again on a
    store that already has tombstones and two segments), its top-k equals the exhaustive
    pass's and a fresh build's (filters too)."""
    base, added, deleted, revised, result = _changes(corpus)
    Index.build(base, LEX, lexical="segments").save(tmp_path / "seg")
    seg = Index.load(tmp_path / "seg")
    _apply(seg, added, deleted, revised)
    queries = _queries(corpus)[::3]
    _fast_equals_exhaustive(seg, queries)
    fresh = Index.build(result, LEX)
    filters = (None, Filters(year_min=1990), Filters(exclude_doc_ids=tuple(d.id for d in result[:5])))
    assert _differ(seg, fresh, queries, filters) == []
    # second round: a store with tombstones in two segments, and more pending changes
    seg.save(tmp_path / "seg")
    again = Index.load(tmp_path / "seg")
    gone = {d.id for d in result[1::5]} | {added[2].id}
    assert again.delete(sorted(gone)) == len(gone)
    back = [d for d in base if d.id in deleted][:40]  # deleted in round one, added again
    again.add(back)
    result2 = [d for d in result if d.id not in gone] + back
    _fast_equals_exhaustive(again, queries)
    assert _differ(again, Index.build(result2, LEX), queries, filters) == []


@pytest.mark.parametrize("compiled", [True, False])
def test_pending_changes_with_negative_idf_terms_use_the_live_idf_floor(corpus, tmp_path, monkeypatch, compiled):
    """A corpus so small that common terms have a negative rank-bm25 idf: the floor
    (epsilon x mean idf over the live vocabulary, after the pending changes) is used by
    the fast path as by a fresh build; with the compiled kernels and with the numpy
    paths (numba switched off: the searcher's numpy MaxScore, numpy's binary search
    for the pending-deleted rows)."""
    from medrag.store import kernel

    if not compiled:
        monkeypatch.setattr(kernel, "HAVE_NUMBA", False)
    docs = [d for d in corpus if d.title][:6]
    Index.build(docs[:4], LEX, lexical="segments").save(tmp_path / "s")
    s = Index.load(tmp_path / "s")
    s.delete([docs[0].id, docs[2].id])
    s.add(docs[4:6])
    live = [docs[1], docs[3], docs[4], docs[5]]
    fresh = Index.build(live, LEX)
    fb = fresh._bm25
    df = np.diff(np.asarray(fb._indptr))
    words = [fb._vocab[j] for j in np.flatnonzero(df * 2 > fb.n_docs)]  # in over half the rows: idf < 0, floored
    assert words and all(s._bm25.idf(w) == pytest.approx(fresh._bm25.idf(w), rel=1e-12) for w in words)
    assert fresh._bm25.idf(words[0]) > 0  # the floor (positive here), not the raw negative idf
    queries = [" ".join(words[:3]), words[0]] + [d.title for d in docs]
    _fast_equals_exhaustive(s, queries)
    assert _differ(s, fresh, queries) == []
