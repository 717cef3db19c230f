"""Fetch PubMed records live through NCBI E-utilities (Bio.Entrez) into ``corpora/``.

This is the only part of :mod:`medrag.ingest` that touches the network, and only when a
caller calls :func:`fetch_pubmed`. The raw ``efetch`` XML is written unchanged, one file
per batch, with a ``fetch.json`` that records the query, the PMIDs and each file's
sha256, so a corpus can be re-read (with :func:`~medrag.ingest.iter_pubmed`) and
reproduced without asking NCBI again.

NCBI's rules are kept: an e-mail address with every request (NCBI contacts it before
blocking), at most 3 requests/s without an API key and 10/s with one (requests are
spaced accordingly and retried, with a short back-off, on HTTP 429/5xx only), and
batches of at most 200 PMIDs per ``efetch``.

Offline, it fails fast: a refused connection, a name that does not resolve or an
unreachable network is not retried, and each request has a timeout (``timeout=``,
seconds), so ``fetch_pubmed`` raises one short :class:`~medrag.errors.IngestError`
("cannot reach E-utilities at eutils.ncbi.nlm.nih.gov: ...") within seconds. The
message never carries the request URL (it holds the caller's e-mail address).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

from lxml import etree

from .._io import atomic_write_bytes
from ..errors import ConfigError, IngestError
from ._common import valid_pmid

__all__ = ["fetch_pubmed", "FetchResult", "EUTILS_URL"]

logger = logging.getLogger(__name__)

EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
_MAX_BATCH = 200
#: Seconds to wait for a connection and for each read, by default.
DEFAULT_TIMEOUT = 20.0
#: Tries of one request when NCBI answers HTTP 429 or 5xx, and the first back-off (s).
_TRIES = 3
_BACKOFF = 1.0
_rate_lock = threading.Lock()
_last_request = 0.0
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


def _where(base_url: str) -> str:
    parts = urlsplit(base_url)
    return parts.netloc or base_url


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve (no network?)"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return " ".join(str(reason).split())[:200]


def _space_requests(has_key: bool) -> None:
    # NCBI: at most 3 requests/s without an API key, 10/s with one (0.37 s, as
    # Bio.Entrez, because 1/3 s sometimes still draws HTTP 429).
    global _last_request
    delay = 0.1 if has_key else 0.37
    with _rate_lock:
        wait = _last_request + delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _last_request = time.monotonic()


def _request(
    base_url: str, utility: str, params: dict[str, object], timeout: float = DEFAULT_TIMEOUT
) -> bytes:
    from Bio import Entrez

    # Bio.Entrez builds the request (tool, email, api_key; POST for long id lists).
    # Its public functions are bound to NCBI's host and retry any failure for 30 s;
    # the request is sent here instead, with a timeout, retrying only HTTP 429/5xx.
    request = Entrez._build_request(base_url.rstrip("/") + "/" + utility, dict(params))
    where = _where(base_url)
    for attempt in range(_TRIES):
        _space_requests(bool(params.get("api_key")))
        try:
            with urlopen(request, timeout=timeout) as handle:
                data = handle.read()
            break
        except HTTPError as exc:
            if (exc.code == 429 or exc.code >= 500) and attempt < _TRIES - 1:
                time.sleep(_BACKOFF * 2**attempt)
                continue
            raise IngestError(f"E-utilities {utility} answered HTTP {exc.code} {exc.reason}", source=where) from None
        except (URLError, OSError) as exc:
            # Offline (refused, no route, no DNS) or too slow: retrying does not help.
            raise IngestError(f"cannot reach E-utilities at {where}: {_reason(exc)}", source=where) from None
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _parse(data: bytes, source: str) -> etree._Element:
    try:
        return etree.fromstring(data, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise IngestError(f"E-utilities answered with something that is not XML: {exc}", source=source) from exc


def _esearch(
    base_url: str, query: str, max_records: int, auth: dict[str, object], timeout: float
) -> list[str]:
    data = _request(
        base_url, "esearch.fcgi", {"db": "pubmed", "term": query, "retmax": max_records, **auth}, timeout
    )
    root = _parse(data, "esearch")
    err = root.findtext("ERROR")
    if err:
        raise IngestError(f"esearch error: {err}", source="esearch")
    ids = [i.text.strip() for i in root.findall("IdList/Id") if i.text and i.text.strip()]
    bad = [i for i in ids if not valid_pmid(i)]
    if bad:
        raise IngestError(f"esearch answered ids that are not PMIDs: {bad[:3]}", source="esearch")
    return ids


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
    timeout: float = DEFAULT_TIMEOUT,
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
        timeout: seconds to wait for a connection and for each read of an answer.

    Returns:
        a :class:`FetchResult`. Files are written atomically; a failed request raises
        :class:`~medrag.errors.IngestError` (one line, without the request URL) and
        leaves earlier batches in place.
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
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}")
    auth: dict[str, object] = {"email": email, "tool": tool, "api_key": api_key}

    wanted: list[str] = []
    if pmids is not None:
        wanted.extend(str(p).strip() for p in pmids)
    bad = [p for p in wanted if not valid_pmid(p)]
    if bad:
        raise ConfigError(f"not PMIDs: {bad[:5]}")
    if query:
        wanted.extend(_esearch(base_url, query, max_records, auth, timeout))
    seen: set[str] = set()
    unique = [p for p in wanted if not (p in seen or seen.add(p))]

    out = Path(out_dir)
    files: list[Path] = []
    entries = []
    for n, start in enumerate(range(0, len(unique), batch_size), start=1):
        batch: Sequence[str] = unique[start : start + batch_size]
        data = _request(
            base_url, "efetch.fcgi", {"db": "pubmed", "id": ",".join(batch), "retmode": "xml", **auth}, timeout
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
