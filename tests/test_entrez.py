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
    with pytest.raises(ConfigError):
        fetch_pubmed(pmids=["12a"], out_dir=tmp_path, email="a@example.org")
    with pytest.raises(ConfigError):
        fetch_pubmed(pmids=["1"], out_dir=tmp_path, email="a@example.org", batch_size=500)


def test_unreachable_server_is_an_ingest_error(tmp_path, monkeypatch):
    import Bio.Entrez

    monkeypatch.setattr(Bio.Entrez, "max_tries", 1)
    with pytest.raises(IngestError, match="request failed"):
        fetch_pubmed(pmids=["1"], out_dir=tmp_path, email="a@example.org", base_url="http://127.0.0.1:9/")
