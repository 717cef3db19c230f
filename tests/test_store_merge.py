"""medrag.store's streaming merge and tiered merge policy: a merged segment equals a
fresh single-segment build array for array, a SIGKILL during a merge leaves the
previous generation loadable, and the policy merges runs of similar size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from medrag.errors import ConfigError
from medrag.store import StoreSearcher, StoreWriter, TieredMergePolicy
from test_store import AN, pubmed  # noqa: F401  (pubmed: the real-text fixture)

_FILES = ("docs.npy", "tf.npy", "post_ptr.npy", "term_off.npy", "terms.bin", "max_w.npy",
          "block_max.npy", "doc_len.npy", "ids_off.npy", "ids.bin")  # fmt: skip


def _only_segment(root):
    st = StoreSearcher.open(root)
    assert st.n_segments == 1
    return root / st.manifest.segments[0]["name"]


def test_streaming_merge_equals_a_fresh_build_file_for_file(pubmed, tmp_path):  # noqa: F811
    ids, toks, queries = pubmed
    with StoreWriter(tmp_path / "fresh", analyzer=AN, segment_tokens=10**9) as w:
        w.add_many(ids, toks)
    with StoreWriter(tmp_path / "m", analyzer=AN, segment_tokens=25_000) as w:
        w.add_many(ids, toks)
    assert StoreSearcher.open(tmp_path / "m").n_segments >= 6
    with StoreWriter(tmp_path / "m") as w:
        w.merge(chunk_postings=3_000)  # many chunks, terms cut across none
    a, b = _only_segment(tmp_path / "fresh"), _only_segment(tmp_path / "m")
    for f in _FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ma, mb = (json.loads((p / "segment.json").read_text()) for p in (a, b))
    assert ma["files"] == mb["files"] and ma["bound"] == mb["bound"]
    StoreSearcher.open(tmp_path / "m", verify=True)


def test_tiered_policy_plans_runs_of_one_tier(pubmed, tmp_path):  # noqa: F811
    pol = TieredMergePolicy(segments_per_tier=3, floor_postings=100)
    recs = [{"nnz": n} for n in (5000, 90, 80, 120, 70, 60, 900)]
    assert [pol.tier(r["nnz"]) for r in recs] == [3, 0, 0, 0, 0, 0, 2]
    assert pol.plan(recs) == (1, 4)
    assert pol.plan([{"nnz": 10}] * 2) is None
    assert TieredMergePolicy(segments_per_tier=3, floor_postings=100, max_postings=200).plan(recs) is None
    with pytest.raises(ConfigError):
        TieredMergePolicy(segments_per_tier=1)
    ids, toks, queries = pubmed
    root = tmp_path / "st"
    with StoreWriter(root, analyzer=AN, segment_tokens=8_000) as w:
        w.add_many(ids, toks)
    before = StoreSearcher.open(root)
    want = [before.search_rows(q, 10, engine="numpy") for q in queries[:50]]
    with StoreWriter(root) as w:
        merged = w.maybe_merge(TieredMergePolicy(segments_per_tier=4, floor_postings=50_000))
    after = StoreSearcher.open(root, verify=True)
    assert merged and after.n_segments < before.n_segments
    nnz = [int(r["nnz"]) for r in after.manifest.segments]
    pol = TieredMergePolicy(segments_per_tier=4, floor_postings=50_000)
    assert pol.plan(after.manifest.segments) is None, nnz  # nothing left to merge
    for q, (r0, s0) in zip(queries[:50], want):
        for mode in ("exact", "maxscore"):
            r1, s1 = after.search_rows(q, 10, mode=mode)
            assert np.array_equal(r0, r1) and np.array_equal(s0, s1)


_MERGE_CHILD = r"""
import sys
from medrag.store import StoreWriter
root, = sys.argv[1:]
with StoreWriter(root) as w:
    print("merging", flush=True)
    w.merge(chunk_postings=2_000)
print("merged", flush=True)
"""


def test_sigkill_during_a_merge_leaves_the_previous_generation(pubmed, tmp_path):  # noqa: F811
    ids, toks, queries = pubmed
    root = tmp_path / "st"
    with StoreWriter(root, analyzer=AN, segment_tokens=20_000) as w:
        w.add_many(ids, toks)
    with StoreWriter(root) as w:
        w.delete_rows(range(0, len(ids), 7))
    ref = StoreSearcher.open(root)
    gen0, want = ref.generation, [ref.search_rows(q, 10, engine="numpy") for q in queries[:30]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outcomes = set()
    for delay in (0.05, 0.3, 0.8, 1.5, 30.0):
        if StoreSearcher.open(root).n_segments == 1:
            break
        p = subprocess.Popen([sys.executable, "-c", _MERGE_CHILD, str(root)], stdout=subprocess.PIPE, env=env)
        assert p.stdout.readline().strip() == b"merging"
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        p.stdout.close()
        st = StoreSearcher.open(root, verify=True)
        outcomes.add("killed" if p.returncode == -signal.SIGKILL else "finished")
        assert st.generation in (gen0, gen0 + 1)
        for q, (r0, s0) in zip(queries[:30], want):
            r1, s1 = st.search_rows(q, 10, mode="maxscore")
            assert np.array_equal(r0, r1) and np.array_equal(s0, s1)
    assert "killed" in outcomes
    assert StoreSearcher.open(root).n_segments == 1  # the last, unhurried try finished
