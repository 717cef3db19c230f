"""Live fetch through Bio.Entrez, tested without the network: the real efetch responses in
../shared/data/pubmed/efetch/metapub are served from a local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import need_data

from medrag.errors import ConfigError, IngestError
from medrag.ingest import fetch_pubmed, iter_pubmed


@pytest.fixture
def eutils():
    folder = need_data("pubmed", "efetch", "metapub")
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep test output quiet
            pass

        def _reply(self, params):
            seen.append(params)
            path = urlparse(self.path).path
            if path.endswith("esearch.fcgi"):
                ids = "".join(f"<Id>{p}</Id>" for p in ["32051057", "11618220", "32160763"])
                body = f"<eSearchResult><Count>3</Count><IdList>{ids}</IdList></eSearchResult>".encode()
            elif path.endswith("efetch.fcgi"):
                parts = []
                for pmid in params["id"][0].split(","):
                    xml = (folder / f"{pmid}.xml").read_text(encoding="utf-8")
                    start = xml.index("<PubmedArticleSet>") + len("<PubmedArticleSet>")
                    parts.append(xml[start : xml.rindex("</PubmedArticleSet>")])
                body = ('<?xml version="1.0" ?>\n<PubmedArticleSet>' + "".join(parts) + "</PubmedArticleSet>").encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._reply(parse_qs(urlparse(self.path).query))

        def do_POST(self):
            n = int(self.headers["Content-Length"])
            self._reply(parse_qs(self.rfile.read(n).decode()))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/entrez/eutils/", seen
    server.shutdown()


def test_fetch_by_query_writes_raw_xml_and_manifest(eutils, tmp_path):
    base, seen = eutils
    result = fetch_pubmed(query="covid", pmids=["24084238"], out_dir=tmp_path, email="a@example.org",
                          base_url=base, batch_size=2)
    assert result.pmids == ("24084238", "32051057", "11618220", "32160763")
    assert [p.name for p in result.files] == ["pubmed-0001.xml", "pubmed-0002.xml"]
    docs = list(iter_pubmed(result.files))
    assert [d.pmid for d in docs] == list(result.pmids)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["query"] == "covid" and len(manifest["files"]) == 2
    assert "a@example.org" not in result.manifest.read_text()  # contact details stay out of the corpus
    # NCBI's rules: e-mail and tool with every request
    assert all(p["email"] == ["a@example.org"] and p["tool"] == ["medrag"] for p in seen)
    assert not list(tmp_path.glob(".*.tmp"))


def test_email_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("NCBI_EMAIL", raising=False)
    with pytest.raises(ConfigError, match="e-mail"):
        fetch_pubmed(pmids=["1"], out_dir=tmp_path)


def test_bad_pmid_and_batch_size(tmp_path):
    for bad in ["12a", "²", "-5", "0", "1234567890"]:
        with pytest.raises(ConfigError):
            fetch_pubmed(pmids=[bad], out_dir=tmp_path, email="a@example.org")
    with pytest.raises(ConfigError):
        fetch_pubmed(pmids=["1"], out_dir=tmp_path, email="a@example.org", batch_size=500)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_with_one_short_line(tmp_path):
    import time

    base = f"http://127.0.0.1:{_closed_port()}/entrez/eutils/"
    t0 = time.monotonic()
    with pytest.raises(IngestError, match="cannot reach E-utilities at 127.0.0.1") as info:
        fetch_pubmed(query="covid", out_dir=tmp_path, email="a@example.org", base_url=base)
    took = time.monotonic() - t0
    msg = str(info.value)
    # Bio.Entrez's own retry loop took 31 s here and printed the whole request URL.
    assert took < 3, took
    assert "\n" not in msg and len(msg) < 160, msg
    assert "a@example.org" not in msg and "esearch.fcgi?" not in msg  # no URL with the e-mail


def test_http_5xx_is_retried_then_reported(tmp_path, monkeypatch):
    import medrag.ingest.entrez as entrez

    monkeypatch.setattr(entrez, "_BACKOFF", 0.01)  # the back-off length is not under test
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            calls.append(self.path)
            self.send_error(503)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(IngestError, match="HTTP 503"):
            fetch_pubmed(query="x", out_dir=tmp_path, email="a@example.org",
                         base_url=f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
    assert len(calls) == 3  # NCBI's transient errors are retried, a bounded number of times


def test_timeout_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="timeout"):
        fetch_pubmed(pmids=["1"], out_dir=tmp_path, email="a@example.org", timeout=0)
