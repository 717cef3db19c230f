"""medrag.ingest.parallel: a process pool over input files yields exactly what the serial
readers yield (same documents, deletions, order, report), with the same error policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medrag.errors import ConfigError, IngestError
from medrag.ingest import IngestReport, iter_guideline_pdf, iter_medline, iter_parallel, iter_pubmed_events
from medrag.types import Deletion, Document

from conftest import FIXTURES, need_data


def _serial(path, on_error="skip"):
    report = IngestReport()
    return list(iter_pubmed_events(path, on_error=on_error, report=report)), report


def test_pubmed_folder_equals_serial():
    folder = need_data("pubmed")  # excerpts of the 2021 update file + ~170 efetch responses
    want, want_report = _serial(folder)
    report = IngestReport()
    got = list(iter_parallel(folder, "pubmed", workers=2, on_error="skip", report=report))
    assert len(want) > 100 and any(isinstance(e, Deletion) for e in want)
    assert got == want
    assert report == want_report
    assert report.files > 100


def test_mixed_formats_in_input_order():
    xml = need_data("pubmed", "efetch", "biopython", "pubmed1.xml")
    nbib = need_data("pubmed", "medline_text", "biopython", "pubmed_result1.txt")
    pdf = FIXTURES / "guidelines" / "cdc_what_you_need_to_know_about_tb_2023.pdf"
    if not pdf.exists():
        pytest.skip("the CDC TB fact sheet fixture is absent")
    want_report = IngestReport()
    want = (
        list(iter_medline(nbib, on_error="skip", report=want_report))
        + list(iter_pubmed_events(xml, on_error="skip", report=want_report))
        + list(iter_guideline_pdf(pdf, on_error="skip", report=want_report))
    )
    report = IngestReport()
    seen = []
    got = list(iter_parallel(
        [(nbib, "medline"), (xml, "pubmed"), (pdf, "pdf")], workers=2, on_error="skip", report=report,
        on_file=lambda p, f, n, s: seen.append((Path(p).name, f, n, s)),
    ))
    assert got == want
    assert report == want_report
    assert [d.kind for d in got if isinstance(d, Document)][-1] == "guideline"
    assert [s[:2] for s in seen] == [(nbib.name, "medline"), (xml.name, "pubmed"), (pdf.name, "pdf")]
    assert sum(s[2] for s in seen) == report.documents


@pytest.fixture
def folder_with_a_bad_file(tmp_path):
    src = need_data("pubmed", "efetch", "biopython")
    shutil.copy(src / "pubmed1.xml", tmp_path / "a.xml")
    raw = (src / "pubmed2.xml").read_bytes()
    (tmp_path / "b.xml").write_bytes(raw[: len(raw) * 2 // 3])  # cut mid-record
    shutil.copy(src / "pubmed4.xml", tmp_path / "c.xml")
    return tmp_path


def test_skip_policy_equals_serial(folder_with_a_bad_file):
    want, want_report = _serial(folder_with_a_bad_file)
    assert want_report.skipped, "the truncated file must be reported"
    report = IngestReport()
    got = list(iter_parallel(folder_with_a_bad_file, "pubmed", workers=2, on_error="skip", report=report))
    assert got == want
    assert report == want_report


def test_raise_policy_equals_serial(folder_with_a_bad_file):
    def until_error(it):
        out = []
        with pytest.raises(IngestError) as exc:
            for ev in it:
                out.append(ev)
        return out, exc.value

    want_report = IngestReport()
    want, want_err = until_error(iter_pubmed_events(folder_with_a_bad_file, on_error="raise", report=want_report))
    report = IngestReport()
    got, err = until_error(iter_parallel(folder_with_a_bad_file, "pubmed", workers=2, on_error="raise", report=report))
    assert got == want and len(got) > 0
    assert str(err) == str(want_err) and "b.xml" in str(err)
    assert (err.source, err.record_id, err.position) == (want_err.source, want_err.record_id, want_err.position)
    assert report == want_report


def test_cli_workers_same_report_and_documents(tmp_path, capsys):
    from medrag.cli.app import main

    folder = need_data("pubmed", "efetch")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"docs{workers}.jsonl"
        assert main(["ingest", str(folder), "--workers", workers, "--json", "--out", str(out)]) == 0
        summary = json.loads(capsys.readouterr().out)
        summary.pop("out")
        outs.append((summary, out.read_text()))
    assert outs[0] == outs[1]
    assert len(outs[0][0]["files"]) > 100


def test_bad_arguments():
    with pytest.raises(ConfigError):
        list(iter_parallel(["x.xml"], "word"))
    with pytest.raises(ConfigError):
        list(iter_parallel(["x.xml"], "pubmed", workers="2"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        list(iter_parallel(["x.xml"]))  # pairs needed without format=
    with pytest.raises(ConfigError):
        list(iter_parallel([("x.xml", "pubmed")], readers={"pubmed": "no_such_module_xyz:f"}, workers=1))


def test_refused_fifo_keeps_its_place(folder_with_a_bad_file):
    import os

    (folder_with_a_bad_file / "b.xml").unlink()
    fifo = folder_with_a_bad_file / "b2.xml"
    os.mkfifo(fifo)
    want, want_report = _serial([folder_with_a_bad_file / "a.xml", fifo, folder_with_a_bad_file / "c.xml"])
    assert len(want_report.skipped) == 1 and "FIFO" in want_report.skipped[0].reason
    report = IngestReport()
    paths = [folder_with_a_bad_file / "a.xml", fifo, folder_with_a_bad_file / "c.xml"]
    got = list(iter_parallel(paths, "pubmed", workers=2, on_error="skip", report=report))
    assert got == want and report == want_report
    # raise: the documents of a.xml come first, then the refusal, as in a serial read
    seen = []
    with pytest.raises(IngestError, match="FIFO"):
        for ev in iter_parallel(paths, "pubmed", workers=2, on_error="raise"):
            seen.append(ev)
    assert seen == list(iter_pubmed_events(folder_with_a_bad_file / "a.xml"))


def _plain(value) -> bool:
    """True when ``value`` is built of plain values only (no class instances)."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (str, int, float, bool)


def test_rows_rebuild_the_same_records_from_plain_values():
    """The compact form the workers send: every real record, PubMed articles, books,
    deletions and guideline pages, comes back equal, through plain values only."""
    from medrag._record import from_row, to_row

    events, _ = _serial(need_data("pubmed"))
    pdfs = list(iter_guideline_pdf(FIXTURES / "guidelines" / "cdc_what_you_need_to_know_about_tb_2023.pdf"))
    records = events + pdfs
    assert any(isinstance(e, Deletion) for e in records)
    assert any(e.kind == "pubmed_book" for e in records if isinstance(e, Document))
    assert any(e.guideline is not None for e in records if isinstance(e, Document))
    for rec in records:
        row = to_row(rec)
        assert _plain(row), rec
        back = from_row(type(rec), row)
        assert back == rec and back == type(rec).from_dict(rec.to_dict())
    with pytest.raises(ValueError, match="expected 11"):
        from_row(Document, to_row(records[0])[:-1])


def test_a_reader_that_fails_in_a_worker_raises_its_error_in_order():
    """A reader that raises something other than IngestError (here: a function that does
    not take the reader's arguments) fails the iteration with that error, after the
    events of the files before it, and leaves no worker waiting."""
    excerpts = need_data("pubmed", "excerpts") / "pubmed21n1298_feature_sample.xml"
    want, _ = _serial(excerpts)
    got = []
    with pytest.raises(TypeError):
        for ev in iter_parallel([(excerpts, "pubmed"), (excerpts, "boom")], workers=2,
                                readers={"boom": "json:loads"}):
            got.append(ev)
    assert got == want
