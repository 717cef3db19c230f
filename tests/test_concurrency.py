"""Threads and one index.

* Many threads searching one index get exactly the results of running the same queries
  one by one, for a loaded index and for a freshly built one (whose BM25 weights and
  FAISS HNSW graph are computed lazily by the first searches).
* A search running while another thread adds, deletes or saves sees a consistent index:
  its results equal either those of the index before the change or those after it,
  never a mixture (never an exception, never a half-updated state).

The interpreter's thread switch interval is shortened to make interleavings likely.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from medrag.index import Filters, Index, IndexConfig
from medrag.retrieve.dense import VectorConfig
from conftest import HashEncoder
from test_crash import unique_docs

QUERIES = [
    "dopamine cocaine response in Drosophila",
    "retracted microRNA lung cancer proliferation",
    "deep learning echocardiography",
    "procalcitonin bowel obstruction surgery",
    "eyelid fibers blepharoplasty",
    "randomized trial of aspirin",
    "covid-19 pneumonia mortality",
    "the of and",
]
MODES = ("hybrid", "bm25", "dense")


@pytest.fixture(scope="module")
def docs():
    return unique_docs()


@pytest.fixture(autouse=True)
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def key(passages) -> tuple:
    return tuple((p.chunk.id, round(p.score, 6), p.rank) for p in passages)


def run_all(idx: Index, k: int = 8) -> dict[tuple[str, str], tuple]:
    return {(q, m): key(idx.search(q, k=k, mode=m)) for q in QUERIES for m in MODES}


def _hammer(idx: Index, n_threads: int, rounds: int) -> list[dict]:
    barrier = threading.Barrier(n_threads)

    def work(seed: int) -> dict:
        barrier.wait()
        out: dict[tuple[str, str], set] = {}
        order = [(q, m) for q in QUERIES for m in MODES]
        for r in range(rounds):
            for q, m in order[seed % len(order):] + order[: seed % len(order)]:
                out.setdefault((q, m), set()).add(key(idx.search(q, k=8, mode=m)))
        return out

    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(work, range(n_threads)))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_concurrent_searches_equal_sequential_on_a_loaded_index(docs, tmp_path, kind):
    cfg = IndexConfig(vectors=VectorConfig(kind=kind, m=8, ef_construction=40, ef_search=64))
    Index.build(docs[:60], cfg, encoder=HashEncoder()).save(tmp_path / "ix")
    expected = run_all(Index.load(tmp_path / "ix", encoder=HashEncoder()))
    idx = Index.load(tmp_path / "ix", encoder=HashEncoder())
    for res in _hammer(idx, n_threads=8, rounds=3):
        for qm, seen in res.items():
            assert seen == {expected[qm]}, qm


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_first_searches_on_a_fresh_index_race_safely(docs, kind):
    """BM25 weights (after add) and the HNSW graph are built by whichever search comes
    first; many threads arriving together must still all get the sequential answer."""
    cfg = IndexConfig(vectors=VectorConfig(kind=kind, m=8, ef_construction=40, ef_search=64))
    expected = run_all(Index.build(docs[:60], cfg, encoder=HashEncoder()))
    for _ in range(3):
        idx = Index.build(docs[:60], cfg, encoder=HashEncoder())
        for res in _hammer(idx, n_threads=6, rounds=1):
            for qm, seen in res.items():
                assert seen == {expected[qm]}, (kind, qm)


def _searches_during(idx: Index, change, before: dict, after: dict) -> int:
    """Run ``change()`` in this thread while 4 threads search; every result must be
    the before- or the after-answer for its query. Returns how many were checked."""
    stop = threading.Event()
    bad: list = []
    errors: list = []
    seen_after = []

    def work(seed: int) -> int:
        n = 0
        order = list(before)
        i = seed
        while not stop.is_set() or n < 2 * len(order):
            qm = order[i % len(order)]
            i += 1
            try:
                got = key(idx.search(qm[0], k=8, mode=qm[1]))
            except Exception as exc:  # noqa: BLE001 - any exception is a failure here
                errors.append(repr(exc))
                return n
            if got == after[qm] and got != before[qm]:
                seen_after.append(qm)
            elif got != before[qm]:
                bad.append((qm, got))
            n += 1
            # A pause, so that the writer finds a moment with no reader: the index's
            # lock lets new readers overtake a waiting writer (see the starvation test).
            time.sleep(0.002)
        return n

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, s) for s in range(4)]
        change()
        stop.set()
        total = sum(f.result() for f in futures)
    assert not errors, errors[:3]
    assert not bad, bad[:2]
    assert seen_after, "no search ran after the change"
    return total


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_while_searching_is_atomic(docs, kind):
    cfg = IndexConfig(vectors=VectorConfig(kind=kind, m=8, ef_construction=40, ef_search=64))

    def fresh():
        return Index.build(docs[:40], cfg, encoder=HashEncoder())

    before = run_all(fresh())
    ref = fresh()
    ref.add(docs[40:70])
    after = run_all(ref)
    assert before != after
    idx = fresh()
    run_all(idx)  # warm: lazy structures built
    assert _searches_during(idx, lambda: idx.add(docs[40:70]), before, after) > 0
    assert run_all(idx) == after


def test_delete_while_searching_is_atomic(docs):
    victims = [d.id for d in docs[:40:3]]

    def fresh():
        return Index.build(docs[:50], IndexConfig(), encoder=HashEncoder())

    before = run_all(fresh())
    ref = fresh()
    ref.delete(victims)
    after = run_all(ref)
    assert before != after
    idx = fresh()
    run_all(idx)
    _searches_during(idx, lambda: idx.delete(victims), before, after)
    assert run_all(idx) == after


def test_save_while_searching_keeps_answers(docs, tmp_path):
    """save() compacts deleted rows and swaps the in-memory store for the saved files:
    searches running meanwhile keep getting the same answers."""
    idx = Index.build(docs[:50], IndexConfig(), encoder=HashEncoder())
    idx.delete([d.id for d in docs[:10]])
    before = run_all(idx)
    _searches_during_same(idx, lambda: idx.save(tmp_path / "ix"), before)
    assert run_all(Index.load(tmp_path / "ix", encoder=HashEncoder())) == before


def _searches_during_same(idx: Index, change, expected: dict) -> None:
    stop = threading.Event()
    bad: list = []

    def work(seed: int) -> None:
        order = list(expected)
        i = seed
        while not stop.is_set():
            qm = order[i % len(order)]
            i += 1
            try:
                got = key(idx.search(qm[0], k=8, mode=qm[1]))
            except Exception as exc:  # noqa: BLE001
                bad.append(repr(exc))
                return
            if got != expected[qm]:
                bad.append((qm, got))
            time.sleep(0.002)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, s) for s in range(4)]
        for _ in range(3):
            change()
        stop.set()
        for f in futures:
            f.result()
    assert not bad, bad[:2]


def test_filters_under_concurrency(docs):
    """The row mask is built per search: threads with different filters do not see
    each other's."""
    idx = Index.build(docs[:60], IndexConfig(), encoder=HashEncoder())
    filters = [None, Filters(year_min=2021), Filters(include_retracted=True), Filters(kinds=("pubmed_book",))]
    expected = {(q, i): key(idx.search(q, k=8, filters=f)) for q in QUERIES for i, f in enumerate(filters)}

    def work(seed: int) -> list:
        wrong = []
        for r in range(3):
            for (q, i), exp in expected.items():
                got = key(idx.search(q, k=8, filters=filters[(i + seed + r) % len(filters)]))
                if got != expected[(q, (i + seed + r) % len(filters))]:
                    wrong.append((q, i))
        return wrong

    with ThreadPoolExecutor(6) as pool:
        assert all(not w for w in pool.map(work, range(6)))


def test_a_waiting_writer_is_not_overtaken_by_new_readers(docs):
    """Deterministic: reader 1 holds the read lock; a writer (add) starts and waits;
    reader 2 arrives. With writer preference reader 2 waits for the writer and sees the
    added documents; without it, reader 2 runs first, and a steady stream of readers
    like it can hold the writer off for ever. (Uses the index's private lock to hold
    reader 1 in place.)"""
    idx = Index.build(docs[:40], IndexConfig(encoder=None))
    before = key(idx.search("dopamine cocaine Drosophila", k=50))
    release = threading.Event()
    holding = threading.Event()

    def reader1():
        with idx._rw.read():
            holding.set()
            release.wait(10)

    r1 = threading.Thread(target=reader1)
    r1.start()
    holding.wait(5)
    writer = threading.Thread(target=lambda: idx.add(docs[40:80]))
    writer.start()
    time.sleep(0.5)  # the writer has chunked its documents and waits for the lock
    result = {}
    r2 = threading.Thread(target=lambda: result.setdefault("r2", key(idx.search("dopamine cocaine Drosophila", k=50))))
    r2.start()
    r2.join(1.0)
    overtook = not r2.is_alive()
    release.set()
    for t in (r1, writer, r2):
        t.join(10)
    assert not overtook, "a new reader overtook the waiting writer"
    assert result["r2"] != before
