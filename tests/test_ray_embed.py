"""medrag.store.ray_embed on a real local Ray cluster (2 CPUs) with the packaged MiniLM:
vectors embedded by actors equal the single-process encoder's, row for row with the
lexical store built from the same files; the disk-backed IVF-PQ index built from the
parts finds what exact search finds; a failed run leaves the previous run intact."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import real_pubmed_parts

ray = pytest.importorskip("ray", reason="Ray is the optional extra medrag[ray]")

from medrag.errors import IndexFormatError, IngestError  # noqa: E402
from medrag.ingest import iter_pubmed  # noqa: E402
from medrag.retrieve import Analyzer  # noqa: E402
from medrag.retrieve.dense import DEFAULT_MODEL  # noqa: E402
from medrag.store import StoreSearcher  # noqa: E402
from medrag.store.build import build_pubmed, pubmed_text  # noqa: E402
from medrag.store.ray_embed import MANIFEST, build_ann, embed_pubmed, iter_parts  # noqa: E402


@pytest.fixture
def encoder(minilm):
    """The packaged MiniLM (conftest's session-wide one: the default model)."""
    assert minilm.config.model == DEFAULT_MODEL
    return minilm


def _first(path, n, dest):
    """The first ``n`` articles of a real PubMed file, cut verbatim at a record boundary."""
    text = path.read_text(encoding="utf-8")
    end = [m.end() for m in re.finditer("</PubmedArticle>", text)][n - 1]
    dest.write_text(text[:end] + "\n</PubmedArticleSet>\n", encoding="utf-8")
    return dest


def _files(tmp):
    excerpt, part0, _ = real_pubmed_parts(tmp)
    # 30 articles with abstracts (2021 update file) and 60 title-only ones (1976-80 baseline)
    return [_first(excerpt, 30, tmp / "update_30.xml"), _first(part0, 60, tmp / "baseline_60.xml")]


def test_actor_embedding_row_aligned_equal_and_failure_safe(ray_cluster, encoder, tmp_path):
    files = _files(tmp_path)
    m = embed_pubmed(files, tmp_path / "emb", encoder, n_actors=2, dtype="float32", batch=64, on_error="skip")
    docs = list(iter_pubmed(files, on_error="skip"))
    assert m["rows"] == len(docs) == 90
    assert m["encoder"] == encoder.describe()
    ids, vecs = zip(*iter_parts(tmp_path / "emb"))
    assert [i for part in ids for i in part] == [d.id for d in docs]
    got = np.concatenate([np.asarray(v) for v in vecs])
    want = encoder.encode_documents([pubmed_text(d) for d in docs])
    assert np.abs(got - want).max() < 1e-4
    # the same rows as the lexical store built from the same files
    build_pubmed(files, tmp_path / "lex", workers=1, analyzer=Analyzer(), on_error="skip")
    lex = StoreSearcher.open(tmp_path / "lex")
    assert [lex.doc_id(r) for r in range(lex.n_rows)] == [d.id for d in docs]
    # the IVF-PQ index from the parts (exact below its training size) finds the exact top 5
    ann = build_ann(tmp_path / "emb", tmp_path / "ann")
    assert len(ann) == len(docs)
    q = encoder.encode_queries([docs[5].title, "risk factors for asthma in children"])
    for row in range(len(q)):
        rows, scores = ann.search(q[row], 5)
        exact = np.argsort(-(want @ q[row]), kind="stable")[:5]
        assert set(rows.tolist()) == set(exact.tolist())

    # a failed run (a record without a PMID, on_error="raise") keeps the previous run
    out = tmp_path / "emb"
    before = json.loads((out / MANIFEST).read_text())
    names = sorted(p.name for p in out.iterdir())
    bad = tmp_path / "bad.xml"
    text = files[1].read_text(encoding="utf-8")
    cut = text.index("<PMID", text.index("<PubmedArticle>", 1000))
    bad.write_text(text[:cut] + '<PMID Version="1"></PMID>' + text[text.index("</PMID>", cut) + 7 :], encoding="utf-8")
    with pytest.raises(IngestError) as ei:
        embed_pubmed([files[0], bad], out, encoder, n_actors=1, batch=64)  # file 0 is written, then bad fails
    assert str(bad) in str(ei.value)
    assert json.loads((out / MANIFEST).read_text()) == before
    assert sorted(p.name for p in out.iterdir()) == names  # the failed run's parts are gone, the old ones kept
    assert sum(len(i) for i, _ in iter_parts(out)) == before["rows"]
    # a damaged part is refused by name
    part = out / before["parts"][0]["vectors"]
    raw = bytearray(part.read_bytes())
    raw[-1] ^= 0xFF
    part.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match=part.name):
        list(iter_parts(out))
