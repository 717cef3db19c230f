"""``ingest``, ``build`` and ``fetch``: reading sources and building indexes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IngestError
from ._common import (
    default_arg,
    default_of,
    dump_json,
    fraction,
    logger,
    positive_int,
    progress_spec,
    write_text,
)
from .inputs import print_ingest_summary, read_corpus, write_jsonl


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="PubMed XML (.xml, .xml.gz), MEDLINE text (.nbib, .txt), guideline PDFs, a BEIR "
        "folder / corpus.jsonl, or documents written by 'medrag ingest --out': files, folders "
        "(read recursively) or quoted globs",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad record instead of skipping and reporting it"
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, metavar="N",
        help="read the input files in N processes, one file per task, same documents in the same order (default: 1)",
    )


# --------------------------------------------------------------------------- ingest


def cmd_ingest(args: argparse.Namespace) -> int:
    docs, summary = read_corpus(args, keep=bool(args.out))
    if args.out:
        summary["out"] = args.out
        summary["out_written"] = write_jsonl(Path(args.out), (d.to_dict() for d in docs))
    if args.json:
        dump_json(summary)
    else:
        print_ingest_summary(summary)
        if args.out:
            write_text(f"wrote {len(docs)} document(s) to {args.out}\n")
    return 0


def add_ingest(sub: Any, add: Any) -> None:
    p = add("ingest", "read source files and report what was read and skipped", cmd_ingest)
    add_source_options(p)
    p.add_argument(
        "--out",
        metavar="FILE.jsonl",
        help="also write the documents as JSON lines ('medrag build' reads them back); a FIFO or "
        "/dev/stdout is written through, a regular file replaced atomically",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


# --------------------------------------------------------------------------- build


def _check_index_target(path: Path, force: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not (path / "manifest.json").is_file():
        raise ConfigError(f"refusing to write the index to {path}: it exists and is not a medrag index")
    if not force:
        raise ConfigError(f"an index already exists at {path}; pass --force to replace it")


def index_config_from(args: argparse.Namespace) -> Any:
    """The :class:`IndexConfig` the build options describe; every unset option keeps
    the library's default."""
    from dataclasses import replace

    from ..chunking import ChunkConfig
    from ..index import FusionConfig, IndexConfig
    from ..retrieve.dense import EncoderConfig, VectorConfig

    if args.lexical_only and args.model:
        raise ConfigError("--model and --lexical-only contradict each other")
    if args.lexical_only and args.ann:
        raise ConfigError("--ann needs dense vectors; it contradicts --lexical-only")

    def given(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None}

    chunking = ChunkConfig(**given(max_tokens=args.max_tokens, overlap_sentences=args.overlap_sentences,
                                   min_section_tokens=args.min_section_tokens))
    if args.no_title_prefix:
        chunking = replace(chunking, title_prefix=False)
    encoder = None if args.lexical_only else EncoderConfig(**given(model=args.model, batch_size=args.batch_size))
    disk_only = [name for name, v in (("--rerank", args.rerank), ("--refine", args.refine), ("--opq", args.opq or None),
                                      ("--coarse", args.coarse)) if v is not None]
    if disk_only and args.ann != "ivfpq-disk":
        raise ConfigError(f"{', '.join(disk_only)} apply to --ann ivfpq-disk only")
    vectors = VectorConfig(**given(kind=args.ann, m=args.hnsw_m, ef_search=args.ef_search, nlist=args.nlist,
                                   pq_m=args.pq_m, nprobe=args.nprobe, rerank=args.rerank, refine=args.refine,
                                   opq=args.opq or None, coarse=args.coarse))
    fusion = FusionConfig(**given(method=args.fusion, bm25_weight=args.bm25_weight, dense_weight=args.dense_weight,
                                  rrf_k=args.rrf_k, candidates=args.candidates))
    return IndexConfig(chunking=chunking, encoder=encoder, vectors=vectors, fusion=fusion)


def check_skips(summary: dict[str, Any], allowed: float, source: str) -> None:
    """Refuse a build that skipped more than ``allowed`` of the records it met."""
    skipped = len(summary["skipped"])
    met = summary["documents_read"] + skipped
    if met and skipped / met > allowed:
        first = summary["skipped"][0]
        raise IngestError(
            f"{skipped} of {met} record(s) could not be read (more than {allowed:.0%}); nothing was built. "
            f"First: {first['source']}: {first['reason']}. Fix the input, or pass --max-skipped 1 to build anyway",
            source=source,
        )


def build_index(args: argparse.Namespace, config: Any) -> tuple[Any, dict[str, Any]]:
    from ..index import Index

    encoder = None
    if config.encoder is not None:  # load the model first: one that cannot load fails before any reading
        from ..retrieve.dense import SentenceTransformerEncoder

        encoder = SentenceTransformerEncoder(config.encoder)
    docs, summary = read_corpus(args)
    check_skips(summary, args.max_skipped, ", ".join(args.paths))
    if not docs:
        raise IngestError("no documents to index", source=", ".join(args.paths))
    logger.info("indexing %d document(s)", len(docs))
    return Index.build(docs, config, encoder=encoder, progress=progress_spec(args)), summary


def cmd_build(args: argparse.Namespace) -> int:
    target = Path(args.index)
    _check_index_target(target, args.force)
    index, summary = build_index(args, index_config_from(args))
    index.save(target)
    manifest = index.manifest
    dense = manifest.get("dense") or {}
    result = {
        "index": str(target),
        "index_id": index.id,
        "documents": index.n_documents,
        "chunks": len(index),
        "dense_model": (dense.get("encoder") or {}).get("model"),
        "vectors": dense.get("faiss_factory"),
        "fusion": manifest.get("fusion"),
        "chunking": manifest.get("chunking"),
        "ingest": summary,
    }
    if args.json:
        dump_json(result)
    else:
        print_ingest_summary(summary)
        kind = f"dense model {result['dense_model']}" if result["dense_model"] else "lexical only"
        write_text(
            f"built index {result['index_id']} at {target}: {result['documents']} document(s), "
            f"{result['chunks']} chunk(s), {kind}\n"
        )
    return 0


def add_build_options(p: argparse.ArgumentParser) -> None:
    """Chunking, encoder, ANN and fusion options; each help states the library default."""
    from ..chunking import ChunkConfig
    from ..index import FusionConfig
    from ..retrieve.dense import EncoderConfig, VectorConfig

    def dflt(cls: type, name: str) -> Any:
        return default_of(cls, name)

    p.add_argument("--lexical-only", action="store_true", help="BM25 only: no dense model is loaded")
    p.add_argument(
        "--model",
        metavar="SPEC",
        help="dense encoder: package:<name>, a local sentence-transformers folder, or a hub "
        f"name (default: {dflt(EncoderConfig, 'model')})",
    )
    p.add_argument("--batch-size", type=positive_int, metavar="N",
                   help=f"texts per encoder batch (default: {dflt(EncoderConfig, 'batch_size')})")
    g = p.add_argument_group("chunking")
    g.add_argument("--max-tokens", type=positive_int, metavar="N",
                   help=f"chunk size in tokens (default: {dflt(ChunkConfig, 'max_tokens')})")
    g.add_argument("--overlap-sentences", type=int, metavar="N",
                   help=f"sentences repeated between chunks (default: {dflt(ChunkConfig, 'overlap_sentences')})")
    g.add_argument("--min-section-tokens", type=int, metavar="N",
                   help=f"merge shorter sections (default: {dflt(ChunkConfig, 'min_section_tokens')})")
    g.add_argument("--no-title-prefix", action="store_true", help="do not prepend the title to each chunk's indexed text")
    g = p.add_argument_group("approximate vector search (FAISS)")
    g.add_argument("--ann", choices=("flat", "hnsw", "ivfpq", "ivfpq-disk"),
                   help=f"vector index (default: {dflt(VectorConfig, 'kind')}, exact); ivfpq-disk keeps only the "
                   "IVF-PQ codes in RAM and the vectors on disk (float16 or int8, memory-mapped) for the re-rank")
    g.add_argument("--hnsw-m", type=positive_int, metavar="M", help=f"HNSW links per node (default: {dflt(VectorConfig, 'm')})")
    g.add_argument("--ef-search", type=positive_int, metavar="N",
                   help=f"HNSW search beam (default: {dflt(VectorConfig, 'ef_search')})")
    g.add_argument("--nlist", type=positive_int, metavar="N", help=f"IVF cells (default: {dflt(VectorConfig, 'nlist')})")
    g.add_argument("--pq-m", type=positive_int, metavar="N",
                   help=f"PQ sub-quantizers (default: {dflt(VectorConfig, 'pq_m')})")
    g.add_argument("--nprobe", type=positive_int, metavar="N", help=f"IVF cells searched (default: {dflt(VectorConfig, 'nprobe')})")
    g.add_argument("--rerank", type=positive_int, metavar="R",
                   help=f"ivfpq-disk: re-score R*k PQ candidates from the stored vectors (default: {dflt(VectorConfig, 'rerank')})")
    g.add_argument("--refine", choices=("float16", "int8"),
                   help=f"ivfpq-disk: how vectors are stored on disk (default: {dflt(VectorConfig, 'refine')})")
    g.add_argument("--opq", action="store_true", help="ivfpq-disk: rotate vectors by a learned OPQ matrix before PQ")
    g.add_argument("--coarse", choices=("flat", "hnsw"),
                   help=f"ivfpq-disk: coarse quantizer over the IVF centroids (default: {dflt(VectorConfig, 'coarse')}; "
                   "hnsw: an HNSW graph, fewer distance computations with many cells)")
    g = p.add_argument_group("fusion of BM25 and dense scores")
    g.add_argument("--fusion", choices=("convex", "rrf"), help=f"method (default: {dflt(FusionConfig, 'method')})")
    g.add_argument("--bm25-weight", type=float, metavar="W",
                   help=f"convex weight of BM25 (default: {dflt(FusionConfig, 'bm25_weight')})")
    g.add_argument("--dense-weight", type=float, metavar="W",
                   help=f"convex weight of dense (default: {dflt(FusionConfig, 'dense_weight')})")
    g.add_argument("--rrf-k", type=float, metavar="K", help=f"RRF constant (default: {dflt(FusionConfig, 'rrf_k'):g})")
    g.add_argument("--candidates", type=positive_int, metavar="N",
                   help=f"rows each retriever contributes (default: {dflt(FusionConfig, 'candidates')})")
    p.add_argument("--max-skipped", type=fraction, default=0.5, metavar="FRACTION",
                   help="fail when more than this share of the records cannot be read (default: 0.5)")


def add_build(sub: Any, add: Any) -> None:
    p = add("build", "build an index from source files", cmd_build)
    add_source_options(p)
    p.add_argument("--index", required=True, metavar="DIR", help="where to save the index")
    add_build_options(p)
    p.add_argument("--force", action="store_true", help="replace an existing index at DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


# --------------------------------------------------------------------------- fetch


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..ingest import fetch_pubmed

    pmids = None
    if args.pmids:
        pmids = [p for item in args.pmids for p in re.split(r"[,\s]+", item) if p]
    result = fetch_pubmed(
        query=args.query,
        pmids=pmids,
        out_dir=args.out,
        email=args.email,
        api_key=args.api_key,
        max_records=args.max_records,
    )
    info = {
        "out": str(args.out),
        "pmids": len(result.pmids),
        "files": [str(f) for f in result.files],
        "manifest": str(result.manifest),
    }
    if args.json:
        dump_json(info)
    else:
        write_text(
            f"fetched {info['pmids']} PMID(s) into {len(info['files'])} file(s) under {args.out}"
            f" (record: {info['manifest']})\n"
        )
    return 0


def add_fetch(sub: Any, add: Any) -> None:
    p = add("fetch", "fetch PubMed records from NCBI E-utilities into a corpus folder", cmd_fetch)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", metavar="Q", help="a PubMed search")
    what.add_argument("--pmids", nargs="+", metavar="PMID", help="PMIDs (space or comma separated)")
    p.add_argument("--out", required=True, metavar="DIR", help="the corpus folder, e.g. corpora/NAME")
    p.add_argument("--email", help="your e-mail address, sent to NCBI (default: $NCBI_EMAIL)")
    p.add_argument("--api-key", help="an NCBI API key (default: $NCBI_API_KEY)")
    from ..ingest import fetch_pubmed

    most = default_arg(fetch_pubmed, "max_records")
    p.add_argument("--max-records", type=positive_int, default=most, metavar="N",
                   help=f"at most N records of a query (default: {most})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


__all__ = ["cmd_ingest", "cmd_build", "cmd_fetch", "add_ingest", "add_build", "add_fetch", "build_index",
           "index_config_from", "add_build_options"]
