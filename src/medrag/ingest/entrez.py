"""Fetch PubMed records live through NCBI E-utilities (Bio.Entrez) into ``corpora/``.

This is the only part of :mod:`medrag.ingest` that touches the network, and only when a
caller calls :func:`fetch_pubmed`. The raw ``efetch`` XML is written unchanged, one file
per batch, with a ``fetch.json`` that records the query, the PMIDs and each file's
sha256, so a corpus can be re-read (with :func:`~medrag.ingest.iter_pubmed`) and
reproduced without asking NCBI again.

NCBI's rules are kept: an e-mail address with every request (NCBI contacts it before
blocking), at most 3 requests/s without an API key and 10/s with one (Bio.Entrez
spaces the requests and retries on HTTP 429/5xx), and batches of at most 200 PMIDs
per ``efetch``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

from lxml import etree

from .._io import atomic_write_bytes
from ..errors import ConfigError, IngestError

__all__ = ["fetch_pubmed", "FetchResult", "EUTILS_URL"]

logger = logging.getLogger(__name__)

EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
_MAX_BATCH = 200
_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What :func:`fetch_pubmed` wrote: the XML files (in order) and the PMIDs asked for."""

    files: tuple[Path, ...]
    pmids: tuple[str, ...]
    manifest: Path


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _request(base_url: str, utility: str, params: dict[str, object]) -> bytes:
    from Bio import Entrez

    # Bio.Entrez builds the request (tool, email, api_key; POST for long id lists) and
    # opens it with NCBI's rate limit and retries. Its public functions are bound to
    # NCBI's host; the builder lets a caller (or a test) name another base URL.
    request = Entrez._build_request(base_url.rstrip("/") + "/" + utility, dict(params))
    url = request.full_url
    try:
        with Entrez._open(request) as handle:
            data = handle.read()
    except (URLError, OSError) as exc:
        raise IngestError(f"E-utilities request failed: {exc}", source=url) from exc
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _parse(data: bytes, source: str) -> etree._Element:
    try:
        return etree.fromstring(data, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise IngestError(f"E-utilities answered with something that is not XML: {exc}", source=source) from exc


def _esearch(base_url: str, query: str, max_records: int, auth: dict[str, object]) -> list[str]:
    data = _request(
        base_url, "esearch.fcgi", {"db": "pubmed", "term": query, "retmax": max_records, **auth}
    )
    root = _parse(data, "esearch")
    err = root.findtext("ERROR")
    if err:
        raise IngestError(f"esearch error: {err}", source="esearch")
    return [i.text.strip() for i in root.findall("IdList/Id") if i.text and i.text.strip()]


def fetch_pubmed(
    *,
    query: str | None = None,
    pmids: Iterable[str | int] | None = None,
    out_dir: str | os.PathLike[str] = "corpora/pubmed",
    email: str | None = None,
    api_key: str | None = None,
    tool: str = "medrag",
    max_records: int = 10_000,
    batch_size: int = _MAX_BATCH,
    base_url: str = EUTILS_URL,
) -> FetchResult:
    """Fetch PubMed records by query or PMIDs and write the raw XML under ``out_dir``.

    Args:
        query: a PubMed search (``"sepsis[mh] AND procalcitonin"``); its first
            ``max_records`` PMIDs are fetched.
        pmids: PMIDs to fetch (with or instead of ``query``).
        out_dir: where ``pubmed-0001.xml``, ... and ``fetch.json`` are written.
        email: required by NCBI; defaults to ``$NCBI_EMAIL``.
        api_key: optional; defaults to ``$NCBI_API_KEY`` (raises the limit to 10 req/s).
        batch_size: PMIDs per ``efetch`` request, at most 200.
        base_url: the E-utilities root (a mirror, or a local server in tests).

    Returns:
        a :class:`FetchResult`. Files are written atomically; a failed request raises
        :class:`~medrag.errors.IngestError` and leaves earlier batches in place.
    """
    email = email or os.environ.get("NCBI_EMAIL")
    api_key = api_key or os.environ.get("NCBI_API_KEY")
    if not email:
        raise ConfigError(
            "NCBI requires an e-mail address with every E-utilities request: pass email= "
            "or set NCBI_EMAIL"
        )
    if not 1 <= batch_size <= _MAX_BATCH:
        raise ConfigError(f"batch_size must be between 1 and {_MAX_BATCH}, not {batch_size}")
    if query is None and pmids is None:
        raise ConfigError("give a query, PMIDs, or both")
    auth: dict[str, object] = {"email": email, "tool": tool, "api_key": api_key}

    wanted: list[str] = []
    if pmids is not None:
        wanted.extend(str(p).strip() for p in pmids)
    bad = [p for p in wanted if not p.isdigit()]
    if bad:
        raise ConfigError(f"not PMIDs: {bad[:5]}")
    if query:
        wanted.extend(_esearch(base_url, query, max_records, auth))
    seen: set[str] = set()
    unique = [p for p in wanted if not (p in seen or seen.add(p))]

    out = Path(out_dir)
    files: list[Path] = []
    entries = []
    for n, start in enumerate(range(0, len(unique), batch_size), start=1):
        batch: Sequence[str] = unique[start : start + batch_size]
        data = _request(
            base_url, "efetch.fcgi", {"db": "pubmed", "id": ",".join(batch), "retmode": "xml", **auth}
        )
        root = _parse(data, f"efetch batch {n}")
        if root.tag != "PubmedArticleSet":
            raise IngestError(f"efetch answered <{root.tag}>, not <PubmedArticleSet>", source=f"efetch batch {n}")
        got = len(root)
        if got < len(batch):
            logger.warning("efetch batch %d: asked for %d PMIDs, got %d records", n, len(batch), got)
        path = out / f"pubmed-{n:04d}.xml"
        _atomic_write(path, data)
        files.append(path)
        entries.append({"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "pmids": list(batch)})
        logger.info("fetched %d record(s) into %s", got, path)
    manifest = out / "fetch.json"
    record = {
        "query": query,
        "pmids": unique,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_url": base_url,
        "files": entries,
    }
    _atomic_write(manifest, json.dumps(record, indent=2).encode("utf-8"))
    return FetchResult(files=tuple(files), pmids=tuple(unique), manifest=manifest)
