"""``search`` and ``ask``: retrieval and cited answers, over a saved index or, with
``ask --docs FOLDER``, over an index built once per folder content and cached."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._common import (
    CommandError,
    add_boost_option,
    add_filter_options,
    add_index_option,
    add_key_options,
    add_mode_option,
    audit_key,
    boost_from,
    check_text,
    default_arg,
    default_of,
    dump_json,
    effective_mode,
    filters_from,
    fraction,
    load_index,
    logger,
    positive_int,
    write_text,
)
from .generators import add_generator_options, make_generator


def _snippet(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + " ..."


# --------------------------------------------------------------------------- search


def cmd_search(args: argparse.Namespace) -> int:
    check_text("query", args.query)
    boost = boost_from(args)
    index = load_index(args)
    filters = filters_from(args)
    mode = effective_mode(index, args.mode)
    passages = index.search(args.query, k=args.k, filters=filters, mode=mode, boost=boost)
    if args.json:
        out = {"query": args.query, "mode": mode, "index_id": index.id, "passages": [p.to_dict() for p in passages]}
        if boost:
            out["boost"] = boost
        dump_json(out)
        return 0
    if not passages:
        write_text("no passages found\n")
        return 0
    lines = []
    for p in passages:
        s = p.source
        year = f" ({s.year})" if s.year else ""
        flag = " [RETRACTED]" if s.retracted else ""
        lines.append(f"{p.rank:>2}. {p.score:.4f}  {p.chunk.doc_id}{year}{flag}  {_snippet(s.title, 100)}")
        where = [f"chunk {p.chunk.id}"]
        if p.chunk.section:
            where.append(f"section {_snippet(p.chunk.section, 80)}")
        if p.chunk.pages:
            where.append("pages " + ",".join(str(x) for x in p.chunk.pages))
        where.extend(f"{name} {v:.4f}" for name, v in sorted(p.scores.items()))
        lines.append("    " + " | ".join(where))
        lines.append("    " + _snippet(p.chunk.text))
    write_text("".join(line + "\n" for line in lines))  # control characters stripped
    return 0


def add_search(sub: Any, add: Any) -> None:
    p = add("search", "retrieve the passages that best match a query", cmd_search)
    add_index_option(p)
    p.add_argument("query", metavar="QUERY", help="the query (quote it)")
    from ..index import Index

    k = default_arg(Index.search, "k")
    p.add_argument("-k", type=positive_int, default=k, help=f"how many passages (default: {k})")
    add_mode_option(p)
    add_filter_options(p)
    add_boost_option(p)
    p.add_argument("--json", action="store_true", help="print the passages as JSON")


# --------------------------------------------------------------------------- ask


class _InMode:
    """The index as :func:`medrag.answer` sees it, searching in one mode and with one
    grade boost (``answer`` itself has neither parameter)."""

    def __init__(self, index: Any, mode: str, boost: dict[str, float] | None = None) -> None:
        self._index = index
        self._mode = mode
        self._boost = boost

    def search(self, query: str, k: int = 10, *, filters: Any = None, mode: str | None = None) -> Any:
        return self._index.search(query, k=k, filters=filters, mode=mode or self._mode, boost=self._boost)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def _cache_root(args: argparse.Namespace) -> Path:
    if args.cache_dir:
        return Path(args.cache_dir)
    if os.environ.get("MEDRAG_CACHE"):
        return Path(os.environ["MEDRAG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medrag" / "indexes"


def docs_key(paths: list[str], config: Any) -> str:
    """A key for the index of these inputs: the sha256 of every input file's relative
    path and content, the build configuration and the library version."""
    from .. import __version__
    from .._io import sha256_file
    from .inputs import resolve_inputs

    inputs, _ = resolve_inputs(paths)
    h = hashlib.sha256()
    h.update(f"medrag {__version__}\n".encode())
    h.update(repr(config).encode("utf-8", "backslashreplace") + b"\n")
    for path, fmt in sorted(inputs):
        h.update(f"{os.fsencode(path).hex()} {fmt} {sha256_file(path)}\n".encode())
    return h.hexdigest()


def _docs_index(args: argparse.Namespace) -> tuple[Any, Path, bool]:
    """The cached index of ``--docs`` (built and saved when not cached yet)."""
    from .corpus import build_index, index_config_from

    args.paths = list(args.docs)
    config = index_config_from(args)
    key = docs_key(args.paths, config)
    where = _cache_root(args) / key[:32]
    if (where / "manifest.json").is_file():
        logger.info("using the cached index %s", where)
        return load_index(args, path=where), where, True
    logger.info("building an index of %s into the cache %s", ", ".join(args.paths), where)
    index, _ = build_index(args, config)
    where.parent.mkdir(parents=True, exist_ok=True)
    index.save(where)
    return index, where, False


def answer_config_from(args: argparse.Namespace) -> Any:
    from ..answer import AnswerConfig

    kw = {name: getattr(args, name) for name in ("k", "threshold", "max_sentences") if getattr(args, name) is not None}
    return AnswerConfig(**kw)


def cmd_ask(args: argparse.Namespace) -> int:
    try:
        from ..answer import answer
    except ImportError as exc:
        raise CommandError(f"answering is not available: cannot import medrag.answer ({exc})") from exc
    check_text("question", args.question)
    if bool(args.index) == bool(args.docs):
        raise ConfigError("give either --index DIR or --docs FOLDER")
    boost = boost_from(args)
    cached = None
    if args.docs:
        index, where, cached = _docs_index(args)
    else:
        index, where = load_index(args), Path(args.index)
    config = answer_config_from(args)
    mode = effective_mode(index, args.mode)
    audit = None
    if args.audit_log:
        from ..audit import AuditLog

        audit = AuditLog(args.audit_log, redact_question=args.redact, key=audit_key(args))
    generator = make_generator(args)
    try:
        result = answer(args.question, _InMode(index, mode, boost), config=config, filters=filters_from(args),
                        generator=generator, audit=audit, prompt=getattr(args, "answer_prompt", None))
    finally:
        close = getattr(generator, "close", None)
        if callable(close):
            close()
    if args.json:
        out = result.to_dict()
        if args.docs:
            out["index_path"] = str(where)
            out["index_cached"] = cached
        dump_json(out)
        return 0
    text = result.to_markdown()
    head = f"status: {result.status} (support {result.support:.2f}; mode {mode}"
    if args.docs:
        head += f"; {'cached' if cached else 'new'} index {where}"
    write_text(head + ")\n\n" + (text if text.endswith("\n") else text + "\n"))
    return 0


def add_ask(sub: Any, add: Any) -> None:
    from ..answer import AnswerConfig
    from .corpus import add_build_options

    p = add("ask", "answer a question with cited sentences, or abstain", cmd_ask)
    add_index_option(p, required=False)
    p.add_argument("question", metavar="QUESTION", help="the question (quote it)")
    g = p.add_argument_group("answering")
    g.add_argument("-k", type=positive_int, metavar="N",
                   help=f"passages retrieved (default: {default_of(AnswerConfig, 'k')})")
    g.add_argument("--threshold", type=fraction, metavar="P",
                   help=f"abstain below this support probability (default: {default_of(AnswerConfig, 'threshold')})")
    g.add_argument("--max-sentences", type=positive_int, metavar="N",
                   help=f"quotes in an extractive answer (default: {default_of(AnswerConfig, 'max_sentences')})")
    add_mode_option(p)
    add_filter_options(p)
    add_boost_option(p)
    add_generator_options(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    g = p.add_argument_group("audit trail")
    g.add_argument("--audit-log", metavar="LOG", help="append the answer to this audit log")
    g.add_argument("--redact", action="store_true", help="with --audit-log: keep only hashes of the question and sentences")
    add_key_options(p)
    g = p.add_argument_group("answering over a folder (--docs): built once, then cached by content")
    g.add_argument("--docs", action="append", metavar="PATH",
                   help="a source folder or file to answer from instead of --index (repeatable); its index is "
                   "built into the cache once and reused while the content is unchanged")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="where --docs indexes are kept (default: $MEDRAG_CACHE, else ~/.cache/medrag/indexes)")
    g.add_argument("--strict", action="store_true", help="with --docs: stop at the first bad record")
    add_build_options(p)


def validate_ask(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.redact and not args.audit_log:
        parser.error("--redact applies to the audit log: give --audit-log LOG too")
    if (args.audit_key_file or args.audit_key_env) and not args.audit_log:
        parser.error("--audit-key-file / --audit-key-env apply to the audit log: give --audit-log LOG too")


__all__ = ["cmd_search", "cmd_ask", "add_search", "add_ask", "validate_ask", "docs_key"]
