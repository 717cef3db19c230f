"""Fuzzing the ingestors: mutated real files and hypothesis-built inputs.

The contract under test, for :func:`iter_pubmed`, :func:`iter_medline` and
:func:`iter_guideline_pdf`, whatever the bytes:

* ``on_error="raise"``: the only exception that escapes is :class:`IngestError`;
* ``on_error="skip"``: nothing escapes, and what was skipped is in the report;
* the two modes agree: when "raise" raised nothing, "skip" gives the same documents
  and skips nothing; when "raise" raised, "skip" records at least one skip;
* no input hangs (a per-input wall-clock bound, enforced by an alarm) and memory
  stays bounded (tracemalloc peak of a whole mutated file).

The mutators (byte flips, truncation, tag and element deletion, random and
"interesting" insertions, slice duplication, number replacement) and the checker are
shared with ``benchmarks/fuzz_ingest.py``, which runs the same checks for longer in a
subprocess per batch and reports inputs tried and failures found. The CI part here is
derandomized and kept small (about half a minute on two cores).
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrag.errors import IngestError
from medrag.ingest import IngestReport, iter_medline, iter_pubmed
from medrag.ingest.pdf import iter_guideline_pdf

INGESTORS: dict[str, Callable[..., Iterator]] = {
    "pubmed": iter_pubmed,
    "medline": iter_medline,
    "pdf": iter_guideline_pdf,
}
SUFFIX = {"pubmed": ".xml", "medline": ".txt", "pdf": ".pdf"}

#: A per-input wall-clock bound (seconds). Generous: two shared cores.
TIME_LIMIT = {"pubmed": 10.0, "medline": 10.0, "pdf": 30.0}


# --------------------------------------------------------------------------- inputs


def make_pdf(pages: list[list[tuple[str, float, float, float, bool]]], *, compress: bool = False) -> bytes:
    """A small, valid, uncompressed (or Flate) PDF: each page a list of
    ``(text, x, y, size, bold)`` runs in Helvetica / Helvetica-Bold. Its dictionaries
    and xref table are plain text, so mutations hit PDF structure, not just zlib."""
    objs: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    kids = []
    for runs in pages:
        ops = []
        for text, x, y, size, bold in runs:
            esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /{'F2' if bold else 'F1'} {size:g} Tf {x:g} {y:g} Td ({esc}) Tj ET")
        content = "\n".join(ops).encode("latin-1")
        if compress:
            data = zlib.compress(content)
            stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
        else:
            stream = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
        objs.append(stream)
        content_no = len(objs)
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>" % content_no
        )
        kids.append(len(objs))
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info << /Title (Fuzz guideline) /Author (World Health Organization) >> >>\n" % (
        len(objs) + 1
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def sample_pdf(compress: bool = False) -> bytes:
    """Three pages: a title, numbered bold headings, body prose, a graded
    recommendation, a running footer, two columns on page 3."""
    body = (
        "Hand hygiene is the single most important measure to prevent infection in outpatient "
        "settings and must be performed before and after every patient contact."
    )
    words = body.split()
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
    p1 = [("Guidelines on hand hygiene in outpatient care", 72, 720, 20, True)]
    p1 += [("1 Introduction", 72, 680, 14, True)]
    p1 += [(ln, 72, 660 - 14 * i, 10, False) for i, ln in enumerate(lines)]
    p1 += [("Strong recommendation, low quality of evidence", 72, 560, 10, True)]
    p1 += [("World Health Organization 2019", 72, 40, 8, False), ("1", 540, 40, 8, False)]
    p2 = [("2 Methods", 72, 720, 14, True)]
    p2 += [(ln, 72, 700 - 14 * i, 10, False) for i, ln in enumerate(lines * 3)]
    p2 += [("World Health Organization 2019", 72, 40, 8, False), ("2", 540, 40, 8, False)]
    p3 = [("3 Results", 72, 720, 14, True)]
    p3 += [(ln[:40], 72, 700 - 14 * i, 10, False) for i, ln in enumerate(lines)]
    p3 += [(ln[:40], 330, 700 - 14 * i, 10, False) for i, ln in enumerate(lines)]
    p3 += [("World Health Organization 2019", 72, 40, 8, False), ("3", 540, 40, 8, False)]
    return make_pdf([p1, p2, p3], compress=compress)


def pubmed_seeds(excerpt: Path, n_records: int = 4, n_files: int = 3) -> list[bytes]:
    """Small PubMed XML files cut from the real excerpt: its header, a run of
    ``n_records`` consecutive records, and the closing tag."""
    raw = excerpt.read_bytes()
    starts = [m.start() for m in re.finditer(rb"<PubmedArticle>|<PubmedBookArticle>|<DeleteCitation>", raw)]
    head = raw[: starts[0]]
    end = raw.rfind(b"</PubmedArticleSet>")
    out = []
    step = max(1, (len(starts) - n_records) // max(1, n_files - 1))
    for f in range(n_files):
        i = min(f * step, len(starts) - n_records)
        j = i + n_records
        stop = starts[j] if j < len(starts) else end
        out.append(head + raw[starts[i] : stop] + b"</PubmedArticleSet>\n")
    return out


# --------------------------------------------------------------------------- mutators

INTERESTING = {
    "pubmed": [
        b"<", b">", b"&", b"&amp;", b"&#0;", b"&#x110000;", b"&nosuch;", b"]]>", b"<![CDATA[", b"<!--",
        b"-->", b"<?xml version='1.0'?>", b"<?pi x?>", b"</PubmedArticle>", b"<PubmedArticle>",
        b"<MedlineCitation>", b"</MedlineCitation>", b"<PMID>", b"</PMID>", b"<Year>99999999999</Year>",
        b"<Year>\xc2\xb2\xc2\xb3</Year>", b"Version=\"\xc2\xb9\"", b"<DeleteCitation><PMID Version=\"\xc2\xb2\">1</PMID></DeleteCitation>",
        b"<i>" * 300, b"</i>" * 300, b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"\xed\xa0\x80", b"\xc0\xaf",
        b"<Abstract><AbstractText Label=\"X\"/></Abstract>", b"<Month>Foo</Month>", b"<Day>0x1</Day>",
        b"<!DOCTYPE PubmedArticleSet>", b" xmlns=\"http://example.org/\"", b" xmlns:m=\"urn:x\"",
        b"<mml:math xmlns:mml=\"http://www.w3.org/1998/Math/MathML\"><mml:mi>T</mml:mi></mml:math>",
    ],
    "medline": [
        b"\n", b"\n\n", b"      ", b"      continued\n", b"PMID- ", b"PMID- 123\n", b"AB  - ", b"TI  - ",
        b"DP  - 2020 \xc2\xb2\n", b"DP  - 99999999999999999999 Jan 1\n", b"AU  - \n", b"FAU - ,\n",
        b"MH  - *A/*b/c\n", b"RN  - (\n", b"RN  - 0 (x)\n", b"RIN - PMID: 1\n", b"LID - x [doi]\n",
        b"\r\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\t", b"-", b"AB  - BACKGROUND: x. METHODS: y.\n",
        b"MH  - ", b"AD  - ", b"\n      x\n",
    ],
    "pdf": [
        b"obj", b"endobj", b"stream\n", b"endstream", b"<<", b">>", b"[", b"]", b"(", b")", b"\\",
        b"/Length 999999999", b"/Length -1", b"/Filter /FlateDecode", b"/Filter /LZWDecode",
        b"/Filter /ASCII85Decode", b"/Filter [/FlateDecode /FlateDecode]", b"/DecodeParms << /Predictor 15 /Columns 0 >>",
        b"xref", b"trailer", b"startxref", b"%%EOF", b"1 0 R", b"999999 0 R", b"-1", b"0", b"1e308",
        b"99999999999999999999", b"/Count 2147483648", b"/Count -5", b"/Kids [1 0 R]", b"/Parent 2 0 R",
        b"/Type /Pages", b"/MediaBox [0 0 0 0]", b"/MediaBox [0 0 1e400 nan]", b"/Rotate 45",
        b" Tz ", b" 0 Tf ", b" Tj ", b" TJ ", b" Td ", b" Tm ", b" cm ", b" q ", b" Q ", b"BT", b"ET",
        b"/Encrypt << /Filter /Standard /V 9 >>", b"/Encoding /Nonexistent", b"/FontMatrix [0 0 0 0 0 0]",
        b"/Widths [nan]", b"/FirstChar -1", b"\x00", b"\xff",
    ],
}

_TAG_RE = re.compile(rb"<[^<>]{0,200}>")
_ELEM_RE = re.compile(rb"<([A-Za-z][A-Za-z0-9]*)\b[^<>]{0,200}>")
_NUM_RE = re.compile(rb"-?\d+(?:\.\d+)?")
_MEDLINE_LINE_RE = re.compile(rb"^[A-Z]{2,4} *- .*$", re.M)


def _flip(rng: random.Random, data: bytes, kind: str) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= rng.randint(1, 255)
    return bytes(b)


def _truncate(rng: random.Random, data: bytes, kind: str) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def _insert(rng: random.Random, data: bytes, kind: str) -> bytes:
    i = rng.randrange(len(data) + 1)
    if rng.random() < 0.6:
        piece = rng.choice(INTERESTING[kind])
    else:
        piece = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return data[:i] + piece + data[i:]


def _delete_slice(rng: random.Random, data: bytes, kind: str) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 64) :]


def _duplicate(rng: random.Random, data: bytes, kind: str) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    piece = data[i : i + rng.randint(1, 256)]
    j = rng.randrange(len(data) + 1)
    return data[:j] + piece * rng.randint(1, 3) + data[j:]


def _delete_tag(rng: random.Random, data: bytes, kind: str) -> bytes:
    """XML: drop one tag (``<X ...>`` or ``</X>``); MEDLINE: drop one tagged line;
    PDF: drop one ``<< ... >>``-free token run around a keyword."""
    pattern = _MEDLINE_LINE_RE if kind == "medline" else _TAG_RE
    ms = list(pattern.finditer(data))
    if not ms:
        return _delete_slice(rng, data, kind)
    m = rng.choice(ms)
    return data[: m.start()] + data[m.end() :]


def _delete_element(rng: random.Random, data: bytes, kind: str) -> bytes:
    """XML: drop one whole element ``<X ...>...</X>`` (the file stays well formed, the
    record loses a field); other kinds: a tag deletion."""
    if kind != "pubmed":
        return _delete_tag(rng, data, kind)
    ms = list(_ELEM_RE.finditer(data))
    if not ms:
        return _delete_slice(rng, data, kind)
    m = rng.choice(ms)
    close = data.find(b"</" + m.group(1) + b">", m.end())
    if close < 0:
        return data[: m.start()] + data[m.end() :]
    return data[: m.start()] + data[close + len(m.group(1)) + 3 :]


def _replace_number(rng: random.Random, data: bytes, kind: str) -> bytes:
    ms = list(_NUM_RE.finditer(data[:200_000]))
    if not ms:
        return _insert(rng, data, kind)
    m = rng.choice(ms)
    new = rng.choice([b"0", b"-1", b"1", b"2147483648", b"99999999999999999999", b"1e308", b"3.5", b"\xc2\xb2", b"0x10", b""])
    return data[: m.start()] + new + data[m.end() :]


MUTATORS: dict[str, Callable[[random.Random, bytes, str], bytes]] = {
    "flip": _flip,
    "truncate": _truncate,
    "insert": _insert,
    "delete_slice": _delete_slice,
    "duplicate": _duplicate,
    "delete_tag": _delete_tag,
    "delete_element": _delete_element,
    "replace_number": _replace_number,
}


def mutate(rng: random.Random, data: bytes, kind: str, n_ops: int | None = None) -> tuple[bytes, list[str]]:
    """Apply 1..4 random mutations; returns the bytes and the names of the mutations."""
    names = []
    for _ in range(n_ops if n_ops is not None else rng.randint(1, 4)):
        name = rng.choice(list(MUTATORS))
        data = MUTATORS[name](rng, data, kind)
        names.append(name)
    return data, names


# --------------------------------------------------------------------------- checking


class Hang(Exception):
    """An input ran past its time limit (raised by the alarm in the main thread)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM); a no-op off
    the main thread. The wall time is also checked after the fact by the caller."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class ContractViolation(AssertionError):
    pass


def _doc_key(d) -> tuple:
    return (d.id, d.title, d.text, tuple(d.sections), d.year, d.retracted)


def check_input(kind: str, path: Path, *, time_limit_s: float | None = None) -> dict:
    """Run one ingestor on one file in both error modes and check the contract.

    Returns ``{"raised": bool, "docs": int, "skipped": int, "seconds": float}``;
    raises :class:`ContractViolation` (with the escaping exception chained) or
    :class:`Hang`.
    """
    fn = INGESTORS[kind]
    limit = time_limit_s if time_limit_s is not None else TIME_LIMIT[kind]
    t0 = time.perf_counter()
    raised: IngestError | None = None
    with time_limit(limit):
        try:
            docs_raise = list(fn(path, on_error="raise"))
        except IngestError as err:
            raised = err
            docs_raise = None
        except Hang:
            raise
        except BaseException as exc:  # noqa: BLE001 - that is the point of the test
            raise ContractViolation(
                f"{kind} on_error='raise': {type(exc).__name__} escaped: {exc!r}"[:2000]
            ) from exc
    t1 = time.perf_counter()
    report = IngestReport()
    with time_limit(limit):
        try:
            docs_skip = list(fn(path, on_error="skip", report=report))
        except Hang:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise ContractViolation(
                f"{kind} on_error='skip': {type(exc).__name__} escaped: {exc!r}"[:2000]
            ) from exc
    t2 = time.perf_counter()
    if max(t1 - t0, t2 - t1) > limit:
        raise Hang(f"{kind}: took {max(t1 - t0, t2 - t1):.1f}s (limit {limit:g}s)")
    if raised is None:
        if report.skipped:
            raise ContractViolation(f"{kind}: 'raise' raised nothing but 'skip' skipped {report.skipped}")
        if [_doc_key(d) for d in docs_skip] != [_doc_key(d) for d in docs_raise]:
            raise ContractViolation(f"{kind}: 'raise' and 'skip' gave different documents")
    else:
        if not report.skipped:
            raise ContractViolation(f"{kind}: 'raise' raised {raised!r} but 'skip' recorded no skip")
        if not isinstance(raised.source, str) or not raised.reason:
            raise ContractViolation(f"{kind}: IngestError without source or reason: {raised!r}")
    return {"raised": raised is not None, "docs": len(docs_skip), "skipped": len(report.skipped), "seconds": t2 - t0}


def peak_memory(kind: str, path: Path) -> int:
    """tracemalloc peak (bytes) of ingesting ``path`` with on_error='skip', not
    counting the documents themselves (each is dropped once yielded)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in INGESTORS[kind](path, on_error="skip"):
            pass  # documents are dropped as they come: only the ingestor's memory counts
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- the tests

CI = settings(
    derandomize=True,  # CI is reproducible; benchmarks/fuzz_ingest.py explores at random
    deadline=None,  # time is bounded per input by check_input's alarm instead
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

_ops = st.lists(st.tuples(st.sampled_from(sorted(MUTATORS)), st.integers(0, 2**32 - 1)), min_size=1, max_size=4)
_SEEDS: dict[str, list[bytes]] = {}


def _seeds(kind: str) -> list[bytes]:
    if kind not in _SEEDS:
        from conftest import need_data

        if kind == "pubmed":
            cut = pubmed_seeds(need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml"))
            efetch = need_data("pubmed", "efetch")
            book = efetch / "eutils_json_samples" / "efetch.pubmedbook.xml"
            extra = [book.read_bytes()] if book.exists() else []
            _SEEDS[kind] = cut + extra
        elif kind == "medline":
            d = need_data("pubmed", "medline_text")
            _SEEDS[kind] = [p.read_bytes() for p in sorted(d.rglob("*.txt"))]
        else:
            _SEEDS[kind] = [sample_pdf(), sample_pdf(compress=True)]
    return _SEEDS[kind]


def _apply(kind: str, seed_i: int, ops: list[tuple[str, int]]) -> bytes:
    seeds = _seeds(kind)
    data = seeds[seed_i % len(seeds)]
    for name, s in ops:
        data = MUTATORS[name](random.Random(s), data, kind)
    return data


def _check_bytes(kind: str, data: bytes, tmp: Path) -> dict:
    path = tmp / f"fuzz{SUFFIX[kind]}"
    path.write_bytes(data)
    return check_input(kind, path)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_unmutated_seeds_parse_cleanly(fuzz_dir):
    """The seeds themselves are valid: the fuzz tests start from real, parseable input."""
    for kind in INGESTORS:
        for data in _seeds(kind):
            info = _check_bytes(kind, data, fuzz_dir)
            assert not info["raised"] and info["docs"] > 0, kind


@pytest.mark.parametrize(
    "kind, examples", [("pubmed", 150), ("medline", 150), ("pdf", 40)]
)
def test_mutated_inputs_only_raise_ingest_error(kind, examples, fuzz_dir):
    """Byte flips, truncations, tag/element deletions, insertions, duplications and
    number swaps of real files: only IngestError escapes, skip mode never raises, the
    modes agree, and each input finishes within its time limit."""

    @settings(CI, max_examples=examples)
    @given(seed_i=st.integers(0, 10), ops=_ops)
    def run(seed_i, ops):
        _check_bytes(kind, _apply(kind, seed_i, ops), fuzz_dir)

    run()


def test_mutated_real_guideline_pdf(fuzz_dir):
    """A few mutations of a real guideline (slow: pypdf takes ~0.5 s per pass)."""
    from conftest import need_data

    data = need_data("guidelines", "cdc_what_you_need_to_know_about_tb_2023.pdf").read_bytes()
    rng = random.Random(1298)
    for name in ("flip", "truncate", "replace_number"):
        _check_bytes("pdf", MUTATORS[name](rng, data, "pdf"), fuzz_dir)


# ---- structure-aware generation: well-formed files with hostile field values

_ARTICLE = (
    "<PubmedArticle><MedlineCitation Status=\"MEDLINE\"><PMID Version=\"{version}\">{pmid}</PMID>"
    "<Article><Journal><JournalIssue><Volume>{vol}</Volume><PubDate><Year>{year}</Year>"
    "<Month>{month}</Month><Day>{day}</Day></PubDate></JournalIssue><Title>{journal}</Title></Journal>"
    "<ArticleTitle>{title}</ArticleTitle><Pagination><StartPage>{page}</StartPage></Pagination>"
    "<Abstract><AbstractText Label=\"{label}\" NlmCategory=\"{label}\">{abstract}</AbstractText></Abstract>"
    "<AuthorList><Author ValidYN=\"{valid}\"><LastName>{last}</LastName></Author></AuthorList>"
    "<Language>{lang}</Language><PublicationTypeList><PublicationType UI=\"{ui}\">{ptype}</PublicationType>"
    "</PublicationTypeList><ArticleDate><Year>{year2}</Year></ArticleDate></Article>"
    "<CommentsCorrectionsList><CommentsCorrections RefType=\"{reftype}\"><PMID>{cpmid}</PMID>"
    "</CommentsCorrections></CommentsCorrectionsList></MedlineCitation>"
    "<PubmedData><ArticleIdList><ArticleId IdType=\"{idtype}\">{aid}</ArticleId></ArticleIdList></PubmedData>"
    "</PubmedArticle>"
    "<DeleteCitation><PMID Version=\"{dversion}\">{dpmid}</PMID></DeleteCitation>"
)
_FIELDS = [
    "version", "pmid", "vol", "year", "month", "day", "journal", "title", "page", "label", "abstract",
    "valid", "last", "lang", "ui", "ptype", "year2", "reftype", "cpmid", "idtype", "aid", "dversion", "dpmid",
]
_xml_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_hostile = st.one_of(
    st.text(_xml_char, max_size=12),
    st.sampled_from(["", " ", "0", "-1", "²", "١٢", "99999999999", "9" * 5000, "2020", "Dec", "13", "1e3", "Y", "N",
                     "RetractionIn", "Retracted Publication", "doi", "pmc", "\u202e", "\ufeff"]),
)


def _esc(s: str) -> str:
    s = "".join(c for c in s if c in "\t\n\r" or ord(c) >= 0x20)
    s = "".join(c for c in s if not 0xFFFE <= ord(c) <= 0xFFFF)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@settings(CI, max_examples=120)
@given(values=st.fixed_dictionaries({f: _hostile for f in _FIELDS}))
def test_generated_pubmed_field_values(values, tmp_path_factory):
    """Well-formed XML whose every field holds arbitrary text (superscript digits,
    Arabic-Indic digits, 5000-digit numbers, control-free Unicode)."""
    d = tmp_path_factory.getbasetemp() / "gen-pubmed"
    d.mkdir(exist_ok=True)
    body = _ARTICLE.format(**{k: _esc(v) for k, v in values.items()})
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>' + body + "</PubmedArticleSet>"
    _check_bytes("pubmed", xml.encode("utf-8"), d)


_TAGS = ["PMID", "TI", "AB", "AU", "FAU", "AD", "MH", "DP", "RN", "PT", "LID", "AID", "RIN", "CN", "OT", "LA", "IS", "PG", "XX"]
_line = st.one_of(
    st.tuples(st.sampled_from(_TAGS), _hostile).map(lambda t: f"{t[0]:<4}- {t[1]}"),
    _hostile.map(lambda v: "      " + v),  # a continuation line
    st.just(""),  # a record separator
    st.text(_xml_char, max_size=20),
)


@settings(CI, max_examples=150)
@given(lines=st.lists(_line, min_size=1, max_size=25))
def test_generated_medline_lines(lines, tmp_path_factory):
    """MEDLINE text built line by line: tags, continuation lines (also before any
    tag and right after a blank line), blank lines, free text."""
    d = tmp_path_factory.getbasetemp() / "gen-medline"
    d.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    _check_bytes("medline", text.encode("utf-8", "surrogatepass"), d)


# ---- regressions for what fuzzing found


def test_delete_citation_with_a_superscript_version(tmp_path):
    """``"²".isdigit()`` is True but ``int("²")`` fails: a ValueError escaped from the
    ``<DeleteCitation>`` branch (found by fuzzing; fixed in pubmed._int_or_none)."""
    p = tmp_path / "d.xml"
    p.write_text(
        '<PubmedArticleSet><DeleteCitation><PMID Version="²">7</PMID><PMID Version="1">8</PMID>'
        "</DeleteCitation></PubmedArticleSet>",
        encoding="utf-8",
    )
    report = IngestReport()
    assert list(iter_pubmed(p, on_error="raise", report=report)) == []
    assert [(d.pmid, d.version) for d in report.deletions] == [("7", 1), ("8", 1)]


def test_absurd_year_does_not_break_an_index(tmp_path):
    """A ``<Year>`` beyond four digits is no year (it became an int that Index.build
    could not store as int32: OverflowError)."""
    from medrag.index import Index, IndexConfig

    p = tmp_path / "y.xml"
    p.write_text(
        "<PubmedArticleSet>"
        + _ARTICLE.format(**{**{f: "x" for f in _FIELDS}, "pmid": "5", "version": "1", "year": "99999999999",
                             "year2": "9" * 5000, "dpmid": "6", "dversion": "1", "abstract": "aspirin headache"})
        + "</PubmedArticleSet>",
        encoding="utf-8",
    )
    docs = list(iter_pubmed(p))
    assert [d.year for d in docs] == [None]
    idx = Index.build(docs, IndexConfig(encoder=None))
    assert idx.search("aspirin")[0].chunk.doc_id == "pmid:5"


@pytest.mark.parametrize(
    "text",
    [
        "      a continuation line before any tag\nPMID- 1\nTI  - t\n",
        "PMID- 1\nMH  - Aspirin\n\n      continuation of MH after the record ended\nPMID- 2\n",
        "PMID- 1\nAB  - x\n\n      y\n",
    ],
)
def test_medline_continuation_without_tag_is_an_ingest_error(tmp_path, text):
    """Bio.Medline raises KeyError for these; it escaped iter_medline (found by fuzzing)."""
    p = tmp_path / "m.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(IngestError, match="not MEDLINE text"):
        list(iter_medline(p, on_error="raise"))
    report = IngestReport()
    list(iter_medline(p, on_error="skip", report=report))
    assert report.skipped


# ---- memory and time bounds


def test_memory_does_not_grow_with_file_size(tmp_path):
    """Streaming: a PubMed file ten times larger peaks at about the same memory."""
    from conftest import need_data

    raw = need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml").read_bytes()
    first, end = raw.find(b"<PubmedArticle>"), raw.rfind(b"</PubmedArticleSet>")
    records = raw[first:end]
    small, big = tmp_path / "small.xml", tmp_path / "big.xml"
    small.write_bytes(raw[:first] + records + raw[end:])
    big.write_bytes(raw[:first] + records * 10 + raw[end:])
    peak_small, peak_big = peak_memory("pubmed", small), peak_memory("pubmed", big)
    assert big.stat().st_size > 15_000_000
    assert peak_big < 2 * peak_small + (4 << 20), (peak_small, peak_big)
    assert peak_big < big.stat().st_size, "memory should not hold the whole file"


def test_mutated_excerpt_memory_is_bounded(tmp_path):
    """The whole real excerpt with 20 tags deleted (so most records break): tracemalloc
    peak stays under 64 MiB for a 1.6 MB file, and it finishes in time."""
    from conftest import need_data

    data = need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml").read_bytes()
    rng = random.Random(7)
    for _ in range(20):
        data = _delete_tag(rng, data, "pubmed")
    p = tmp_path / "m.xml"
    p.write_bytes(data)
    check_input("pubmed", p)
    assert peak_memory("pubmed", p) < 64 << 20


def test_deep_nesting_and_huge_text_are_refused_not_expanded(tmp_path):
    """libxml2's limits hold (no huge_tree): 5000 nested inline tags and a 12 MB text
    node are IngestErrors, not RecursionError or a memory blow-up."""
    head = '<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>'
    tail = "</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
    deep = tmp_path / "deep.xml"
    deep.write_text(head + "<i>" * 5000 + "x" + "</i>" * 5000 + tail)
    huge = tmp_path / "huge.xml"
    huge.write_text(head + "x" * 12_000_000 + tail)
    for p in (deep, huge):
        info = check_input("pubmed", p)
        assert info["raised"], p.name
    assert peak_memory("pubmed", huge) < 64 << 20


def test_pdf_flate_bomb_memory_is_bounded(tmp_path):
    """A 300 KB PDF whose page content inflates to 300 MB: pypdf's decompression limit
    holds, the page is an IngestError, and the peak stays far below 300 MB."""
    co = zlib.compressobj(1)
    block = b" " * (1 << 20)
    bomb = b"".join(co.compress(block) for _ in range(300)) + co.flush()
    good = make_pdf([[("Hand hygiene prevents infection", 72, 700, 12, False)], [("x", 72, 700, 12, False)]])
    m = list(re.finditer(rb"<< /Length (\d+) >>\nstream\n", good))[1]
    n = int(m.group(1))
    pdf = (
        good[: m.start()]
        + b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb)
        + bomb
        + good[m.end() + n :]
    )
    p = tmp_path / "bomb.pdf"
    p.write_bytes(pdf)
    info = check_input("pdf", p)
    assert info["raised"] and info["docs"] == 1  # page 2 skipped, page 1 kept
    assert peak_memory("pdf", p) < 200 << 20


# --------------------------------------------------------------------------- hostile XML
#
# Entity-expansion bombs, external entities, external parameter entities, remote DTDs
# and XInclude. Each is tried plainly, hidden behind a 70 KB comment in the DOCTYPE
# (past the ingestor's 64 KB byte check of the file head) and behind a fake root tag in
# a comment. Nothing may be expanded, read or fetched: a local "secret" is a FIFO whose
# opening we detect (a reader blocks on it until our watcher opens the write end), a
# remote DTD points at a local TCP server that records connections, and Python's
# socket layer is patched to record any connect.

import os  # noqa: E402
import socket  # noqa: E402

from lxml import etree  # noqa: E402

SECRET = "TOP-SECRET-7f3a"
_ART = (
    "<PubmedArticle><MedlineCitation Status=\"MEDLINE\"><PMID Version=\"1\">1</PMID><Article>"
    "<Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue><Title>J</Title></Journal>"
    "<ArticleTitle>Title {ref}</ArticleTitle><Abstract><AbstractText>Text {ref} end.</AbstractText>"
    "</Abstract></Article></MedlineCitation></PubmedArticle>"
)
_HIDERS = {
    "plain": "",
    "past-64KB": "<!--" + "x" * 70_000 + "-->",
    "fake-root": "<!-- <PubmedArticleSet> -->",
}


class OpenDetector:
    """A FIFO standing in for a secret file: records whether anything opened it."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path, self.content = path, content
        os.mkfifo(path)
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:  # succeeds only while some reader has the FIFO open
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.0005)
                continue
            self.opened += 1
            try:
                os.write(fd, self.content)
            except OSError:
                pass
            finally:
                os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class NetRecorder:
    """Records (and refuses) every Python-level connect, DNS lookup and
    create_connection, and runs a local TCP server that counts accepted connections
    (libxml2 would connect from C, bypassing Python's socket module)."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple] = []
        real_connect = socket.socket.connect

        def deny(kind):
            def f(*args, **kwargs):
                self.calls.append((kind, args[1:] if kind == "connect" else args))
                raise OSError(f"network disabled in test ({kind})")

            return f

        monkeypatch.setattr(socket.socket, "connect", deny("connect"))
        monkeypatch.setattr(socket.socket, "connect_ex", deny("connect_ex"))
        monkeypatch.setattr(socket, "create_connection", deny("create_connection"))
        monkeypatch.setattr(socket, "getaddrinfo", deny("getaddrinfo"))
        self._real_connect = real_connect
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """(secret FIFO path, secret regular file path, NetRecorder)."""
    fifo = OpenDetector(tmp_path / "secret.fifo", f'<!ENTITY leak "{SECRET}">{SECRET}'.encode())
    plain = tmp_path / "secret.txt"
    plain.write_text(f'<!ENTITY leak "{SECRET}">{SECRET}')
    net = NetRecorder(monkeypatch)
    yield fifo, plain, net
    fifo.close()
    net.close()


def _attacks(fifo: Path, plain: Path, port: int) -> dict[str, tuple[str, str]]:
    """name -> (internal/external DOCTYPE part, the reference used in the record)."""
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    return {
        "billion-laughs": (f"[{{hide}}{laughs}]", "&i;"),
        "quadratic-blowup": (f'[{{hide}}<!ENTITY a "{"A" * 50_000}">]', "&a;" * 5_000),
        "external-entity-file-url": (f'[{{hide}}<!ENTITY x SYSTEM "file://{fifo}">]', "&x;"),
        "external-entity-plain-path": (f'[{{hide}}<!ENTITY x SYSTEM "{plain}">]', "&x;"),
        "external-parameter-entity-file": (f'[{{hide}}<!ENTITY % p SYSTEM "file://{fifo}"> %p;]', "&leak;"),
        "external-parameter-entity-remote": (
            f'[{{hide}}<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %p;]', "&leak;"),
        "parameter-entity-declaring-entity": (
            f"[{{hide}}<!ENTITY % q \"<!ENTITY leak '{SECRET}'>\"> %q;]", "&leak;"),
        "nested-parameter-entities": (
            f'[{{hide}}<!ENTITY % a "<!ENTITY &#37; b SYSTEM \'file://{fifo}\'>"> %a; %b;]', "&leak;"),
        "remote-dtd": (f'SYSTEM "http://127.0.0.1:{port}/pubmed.dtd" [{{hide}}]', "&leak;"),
        "remote-dtd-by-name": ('PUBLIC "-//NLM//DTD PubMedArticle//EN" "https://dtd.nlm.nih.gov/x.dtd" [{hide}]', "ok"),
        "local-dtd": (f'SYSTEM "file://{fifo}" [{{hide}}]', "&leak;"),
        "xinclude": ("[{hide}]", f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{plain}" parse="text"/>'),
    }


def _hostile_file(tmp: Path, name: str, hide: str, doctype: str, ref: str, gz: bool = False) -> Path:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!DOCTYPE PubmedArticleSet {doctype.replace('{hide}', hide)}>\n"
        f"<PubmedArticleSet>{_ART.format(ref=ref)}</PubmedArticleSet>\n"
    ).encode()
    p = tmp / f"{name}.xml{'.gz' if gz else ''}"
    if gz:
        import gzip

        xml = gzip.compress(xml)
    p.write_bytes(xml)
    return p


@pytest.mark.parametrize("hide", sorted(_HIDERS))
def test_hostile_xml_nothing_expanded_read_or_fetched(hide, hostile, tmp_path):
    fifo, plain, net = hostile
    for name, (doctype, ref) in _attacks(fifo.path, plain, net.port).items():
        for gz in (False, True):
            p = _hostile_file(tmp_path, name, _HIDERS[hide], doctype, ref, gz)
            tracemalloc.start()
            try:
                info = check_input("pubmed", p, time_limit_s=10)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            report = IngestReport()
            docs = list(iter_pubmed(p, on_error="skip", report=report))
            seen = " ".join([d.title + " " + d.text for d in docs] + [s.reason for s in report.skipped])
            assert SECRET not in seen, (name, hide)
            assert "aaaaaaaaaaaaaaaaaaaa" not in seen and "A" * 1000 not in seen, (name, hide)
            assert peak < 16 << 20, (name, hide, peak)
            assert info["seconds"] < 5, (name, hide)
            if "entity" in name or name in ("billion-laughs", "quadratic-blowup"):
                # a DOCTYPE that declares entities is refused, wherever it hides them
                assert info["raised"] and not docs, (name, hide, docs)
    assert fifo.opened == 0, "a local file named by the document was opened"
    assert net.calls == [] and net.accepted == 0, (net.calls, net.accepted)


def test_detectors_fire_on_an_unsafe_parser(hostile, tmp_path):
    """Control: the same attacks through an lxml parser configured unsafely do open
    the FIFO and expand the secret, so the test above would catch a regression to such
    parser settings. (Python-level connects are recorded: checked with urllib.)"""
    _, _, net = hostile
    text_fifo = OpenDetector(tmp_path / "plain-secret.fifo", SECRET.encode())
    try:
        doctype, ref = _attacks(text_fifo.path, tmp_path / "unused", net.port)["external-entity-file-url"]
        p = _hostile_file(tmp_path, "control", "", doctype, ref)
        unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=True)
        with time_limit(10):
            tree = etree.parse(str(p), unsafe)
        assert SECRET in "".join(tree.getroot().itertext())
        assert text_fifo.opened >= 1
    finally:
        text_fifo.close()
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{net.port}/x", timeout=2)
    assert net.calls, "the socket patch recorded nothing"
