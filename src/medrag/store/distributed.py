"""Ray: build a store from many PubMed files in parallel, and serve it from actors.

Install the extra (``pip install 'medrag[ray]'``). Everything here runs on the Ray
connection of the calling process: start one with ``ray.init()`` (a local cluster),
``ray.init(num_cpus=2)``, or join an existing cluster with ``ray.init(address="auto")``
on a cluster node or ``ray.init(address="ray://<head>:10001")`` from outside (Ray
Client); when none is open, :func:`build_pubmed` and :class:`RayStore` call
``ray.init(address=address)`` with the ``address`` they were given (None: a new local
cluster).

Build (:func:`build_pubmed`). One Ray task per input file parses it
(:func:`medrag.ingest.iter_pubmed`), analyzes each article's title and text and writes
the file's documents as one or more segments straight into the store directory (a
:class:`~medrag.store.writer.SegmentBuffer` per task, so a task's memory is bounded by
``segment_tokens``). The driver only receives the small segment records and commits
them as one generation, in input-file order, so global rows are the articles in file
order and every score equals the single-process build's (``StoreWriter`` over the same
files: BM25 scores do not depend on where segments are cut; tests/test_ray.py checks
it). The store directory must be reachable from every node at the same path (a shared
file system); PubMed's ~1,300 baseline files give ample parallelism per file.

Search (:class:`RayStore`). ``n_shards`` actors each open a disjoint set of the
generation's segments (round robin). A query is two rounds, as Elasticsearch's
``dfs_query_then_fetch``: every shard reports the live document frequency of the query
terms in its segments, the driver sums them (N, avgdl and the idf floor are global
already: the manifest records them), then every shard returns its exact top-k under
those global statistics and the driver merges them (ties to the lower global row). The
result is the single-process :class:`~medrag.store.StoreSearcher`'s, row for row.

Ray moves arguments and results between its processes with its own serialization
(cloudpickle); only trusted processes of your cluster take part. The store on disk holds
no pickle.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from ..retrieve.analyzer import Analyzer
from ..retrieve.bm25 import BM25Params
from .build import index_file as _index_file
from .build import pubmed_text
from .search import Hit, StoreSearcher
from .search_numpy import top_k as _top_k
from .writer import DEFAULT_SEGMENT_TOKENS, SegmentBuffer, StoreWriter

__all__ = ["build_pubmed", "RayStore", "pubmed_text"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


def _ray(address: str | None = None) -> Any:
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError("ray", "ray", "distributed build and search") from e
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return ray


def build_pubmed(
    paths: Iterable[PathLike],
    root: PathLike,
    *,
    analyzer: Analyzer | None = None,
    params: BM25Params | None = None,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    on_error: Literal["raise", "skip"] = "raise",
    address: str | None = None,
    report: Any = None,
) -> int:
    """Index PubMed XML files into the store at ``root`` with one Ray task per file
    (appending to an existing store); returns the committed generation.

    ``report`` (an :class:`~medrag.ingest.IngestReport`) receives every file's counts,
    skipped records and ``<DeleteCitation>`` PMIDs (applying deletions is the caller's:
    ``StoreWriter.delete_rows``); without one they are logged as a warning.
    """
    ray = _ray(address)
    # absolute (workers may run elsewhere), not resolved: reports name the files as the caller did
    paths = [os.path.abspath(p) for p in paths]
    if not paths:
        raise ConfigError("build_pubmed needs at least one file")
    an = analyzer if analyzer is not None else Analyzer()
    with StoreWriter(root, params=params, analyzer=an, segment_tokens=segment_tokens) as w:
        gen = w.generation + 1
        task = ray.remote(_index_file)
        refs = [
            task.remote(p, str(w.root.resolve()), gen, an.to_dict(), w.params.to_dict(), segment_tokens, on_error)
            for p in paths
        ]
        per_file = ray.get(refs)  # in input order, whatever order they finished in
        w.add_segments([rec for recs, _ in per_file for rec in recs])
    n_skip = n_del = 0
    for _, r in per_file:
        n_skip += len(r.skipped)
        n_del += len(r.deletions)
        if report is not None:
            report.files += r.files
            report.documents += r.documents
            report.skipped.extend(r.skipped)
            report.deletions.extend(r.deletions)
    if report is None and (n_skip or n_del):
        logger.warning(
            "%d record(s) skipped and %d PMID(s) withdrawn by <DeleteCitation> in the "
            "input; pass report= to build_pubmed to act on them", n_skip, n_del,
        )  # fmt: skip
    logger.info("built %d files into %s on Ray", len(paths), root)
    return gen


class _Shard:
    """Ray actor body: a StoreSearcher over some of the generation's segments."""

    def __init__(self, root: str, segments: list[int]) -> None:
        self.st = StoreSearcher.open(root, segments=segments)

    def local_df(self, tokens: list[str]) -> dict[str, int]:
        return self.st.local_df(tokens)

    def search(self, tokens: list[str], k: int, mode: str, df: dict[str, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        rows, sc = self.st.search_rows(tokens, k, mode=mode, df=df)  # type: ignore[arg-type]
        return rows, sc, [self.st.doc_id(int(r)) for r in rows.tolist()]

    def generation(self) -> int:
        return self.st.generation


class RayStore:
    """Search a store held by ``n_shards`` Ray actors (see the module docstring).

    Args:
        root: the store directory (reachable from every node at this path).
        n_shards: actors; each opens every ``n_shards``-th segment.
        address: passed to ``ray.init`` when no Ray connection is open.
        actor_options: extra ``ray.remote`` options for the actors (``num_cpus``,
            ``resources``, ``scheduling_strategy``...).
    """

    def __init__(
        self,
        root: PathLike,
        n_shards: int = 2,
        *,
        address: str | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
            raise ConfigError(f"n_shards must be a positive integer, not {n_shards!r}")
        self._ray = ray = _ray(address)
        self.root = str(Path(root).resolve())
        head = StoreSearcher.open(self.root, segments=[])  # statistics only, no segment
        self.generation = head.generation
        self.analyzer = head.analyzer
        n_seg = len(head.manifest.segments)
        groups = [list(range(i, n_seg, n_shards)) for i in range(min(n_shards, max(n_seg, 1)))]
        opts = {"num_cpus": 0, **(actor_options or {})}
        cls = ray.remote(**opts)(_Shard)
        self._actors = [cls.remote(self.root, g) for g in groups]
        gens = ray.get([a.generation.remote() for a in self._actors])
        if set(gens) != {self.generation}:
            raise ConfigError(f"{self.root}: the store changed while the shards opened ({gens})")

    def search_rows(
        self, tokens: Sequence[str], k: int = 10, *, mode: Literal["exact", "maxscore"] = "exact"
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Global top-k: ``(rows, scores, doc_ids)``, as StoreSearcher.search_rows."""
        ray = self._ray
        if isinstance(tokens, (str, bytes)):
            raise ConfigError("tokens must be a list of tokens, not a string")
        tokens = list(tokens)
        df: dict[str, int] = {}
        for part in ray.get([a.local_df.remote(tokens) for a in self._actors]):
            for t, d in part.items():
                df[t] = df.get(t, 0) + d
        parts = ray.get([a.search.remote(tokens, k, mode, df) for a in self._actors])
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        sc = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
        id_of = {int(r): i for p in parts for r, i in zip(p[0].tolist(), p[2])}
        rows, sc = _top_k(rows.astype(np.int64), sc, int(k))
        return rows, sc, [id_of[int(r)] for r in rows.tolist()]

    def search(self, tokens: Sequence[str], k: int = 10, **kw: Any) -> list[Hit]:
        rows, sc, ids = self.search_rows(tokens, k, **kw)
        return [Hit(int(r), i, float(s)) for r, i, s in zip(rows.tolist(), ids, sc.tolist())]

    def search_text(self, text: str, k: int = 10, **kw: Any) -> list[Hit]:
        if self.analyzer is None:
            raise ConfigError("this store records no analyzer; tokenize and call search()")
        return self.search(self.analyzer.tokenize(text), k, **kw)

    def close(self) -> None:
        """Stop the actors (the Ray connection stays open)."""
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
