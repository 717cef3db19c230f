"""What every command shares: safe output (JSON any terminal can take, text without
control characters), argument checks, and the option groups built from the library's
own config dataclasses (so a default in ``--help`` is the default the library uses)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError, IndexFormatError, MedragError

logger = logging.getLogger("medrag.cli")

PROG = "medrag"


class CommandError(MedragError):
    """A failure of the command itself (not of the library), e.g. a missing feature."""


# --------------------------------------------------------------------------- output

# ANSI / VT escape sequences (CSI, OSC, other ESC sequences), then any remaining C0 or
# C1 control character, DEL, and the bidirectional overrides that reorder what a
# terminal shows ("Trojan Source", Boucher & Anderson 2021).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tabs and
    newlines kept), so that text taken from documents cannot move the cursor, retitle
    the window, hide output or reorder a line."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def write_text(text: str, out: TextIO | None = None) -> None:
    """Write terminal-safe ``text``; characters the stream's encoding cannot take are
    written as backslash escapes instead of failing."""
    out = out or sys.stdout
    text = terminal_safe(text)
    enc = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(enc)
    except (UnicodeEncodeError, LookupError):
        text = text.encode(enc, "backslashreplace").decode(enc, "replace")
    out.write(text)


def dump_json(obj: Any, out: TextIO | None = None) -> None:
    """JSON on ``out``: UTF-8 text where the stream takes it, else ``\\u`` escapes
    (``PYTHONIOENCODING=ascii``); always valid JSON of valid Unicode."""
    out = out or sys.stdout
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    enc = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(enc)
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(obj, indent=2, ensure_ascii=True)
    out.write(text + "\n")


def check_text(name: str, value: str | None) -> str | None:
    """Refuse an argument that is not valid UTF-8 (Python hands such bytes over as lone
    surrogates), so it can reach neither a log nor JSON output."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start].encode("utf-8", "surrogateescape")
        raise ConfigError(f"the {name} is not valid UTF-8 (byte 0x{bad.hex()} at character {exc.start})") from None
    return value


# --------------------------------------------------------------------------- defaults


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (one source of truth)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name}")


def default_arg(func: Any, name: str) -> Any:
    """The default of parameter ``name`` of ``func`` (e.g. ``Index.search``'s ``k``)."""
    import inspect

    return inspect.signature(func).parameters[name].default


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


# --------------------------------------------------------------------------- option groups


def add_global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    # Defined on the main parser and on every subcommand, so they may come before or
    # after the subcommand; a subcommand leaves them unset unless given there.
    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("global options")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False), help="only errors on stderr")
    g.add_argument(
        "-v", "--verbose", action="count", default=d(0), help="more log messages (-vv for debug messages)"
    )
    g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks of errors")


def add_filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--year-min", type=int, metavar="YEAR", help="published in or after YEAR")
    g.add_argument("--year-max", type=int, metavar="YEAR", help="published in or before YEAR")
    g.add_argument(
        "--type",
        action="append",
        metavar="PUBTYPE",
        help='PubMed publication type, e.g. "Randomized Controlled Trial" (repeatable: any of them)',
    )
    g.add_argument(
        "--kind",
        action="append",
        choices=("pubmed", "pubmed_book", "guideline", "text"),
        help="document kind (repeatable: any of them)",
    )
    g.add_argument("--mesh", action="append", metavar="DESCRIPTOR", help="MeSH descriptor (repeatable: any of them)")
    g.add_argument("--doc-id", action="append", metavar="ID", help="only this document, e.g. pmid:31978945 (repeatable)")
    g.add_argument("--exclude-doc-id", action="append", metavar="ID", help="never this document (repeatable)")
    g.add_argument(
        "--include-retracted", action="store_true", help="also return retracted publications (excluded by default)"
    )
    g.add_argument("--strength", action="append", choices=("strong", "conditional", "against", "good-practice", "ungraded"),
                   help="only guideline recommendations of this strength (repeatable: any of them)")
    g.add_argument("--certainty", action="append", choices=("high", "moderate", "low", "very low", "expert opinion"),
                   help="only guideline recommendations of this certainty of evidence (repeatable)")
    g.add_argument("--grade-system", action="append", choices=("GRADE", "ACC/AHA", "USPSTF", "SIGN", "NICE-wording", "other"),
                   help="only guideline recommendations graded in this system (repeatable)")
    g.add_argument("--recommendations-only", action="store_true", help="only guideline recommendations (any grade)")


def boost_pair(text: str) -> tuple[str, float]:
    """``KEY=FACTOR`` (``strong=1.2``) as ``(key, factor)``; the key and factor are
    checked against the grade vocabularies by :func:`boost_from`."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=FACTOR, e.g. strong=1.2, not {text!r}")
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the factor of {text!r} is not a number") from None
    return key, factor


def add_boost_option(p: argparse.ArgumentParser) -> None:
    from ..index.grades import CERTAINTIES, STRENGTHS, SYSTEMS

    keys = ", ".join(("recommendation", *STRENGTHS, *CERTAINTIES, *SYSTEMS))
    p.add_argument("--boost", action="append", type=boost_pair, metavar="KEY=FACTOR",
                   help="raise guideline recommendation chunks by grade: multiply the final score of the chunks "
                   f"that match KEY by FACTOR, e.g. strong=1.2 (repeatable; factors that match one chunk multiply; "
                   f"KEY: {keys})")


def boost_from(args: argparse.Namespace) -> dict[str, float] | None:
    """The ``--boost`` pairs as the mapping :meth:`medrag.Index.search` takes (checked
    there); None without any. A key given twice is an error, not a silent overwrite."""
    pairs = getattr(args, "boost", None)
    if not pairs:
        return None
    out: dict[str, float] = {}
    for key, factor in pairs:
        if key in out:
            raise ConfigError(f"--boost {key} is given twice")
        out[key] = factor
    from ..index.grades import check_boost

    check_boost(out)  # unknown keys and non-positive factors fail before the index loads
    return out


def add_index_option(p: argparse.ArgumentParser, *, verify: bool = True, required: bool = True) -> None:
    p.add_argument("--index", required=required, metavar="DIR", help="the index directory")
    if verify:
        p.add_argument(
            "--no-verify", action="store_true", help="skip the sha256 check of the index files (sizes are still checked)"
        )
    p.add_argument(
        "--trust-encoder",
        action="store_true",
        help="load the query encoder the manifest names even when it is a folder or a hub name "
        "(refused by default: an index from elsewhere must not load code or weights from outside it)",
    )


def add_mode_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=("hybrid", "bm25", "dense"),
        help="retriever (default: hybrid, or bm25 on a lexical-only index)",
    )


def add_key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("audit key (HMAC-SHA256; kept outside the log)")
    k = g.add_mutually_exclusive_group()
    k.add_argument("--audit-key-file", metavar="FILE", help="read the audit key from FILE")
    k.add_argument("--audit-key-env", metavar="VAR", help="read the audit key from the environment variable VAR")


def audit_key(args: argparse.Namespace) -> bytes | None:
    from ..audit import audit_key_from_env, audit_key_from_file

    if getattr(args, "audit_key_file", None):
        return audit_key_from_file(args.audit_key_file)
    if getattr(args, "audit_key_env", None):
        return audit_key_from_env(args.audit_key_env)
    return None


# --------------------------------------------------------------------------- shared steps


def progress_spec(args: argparse.Namespace) -> str | None:
    """What long work shows: a bar on a terminal, progress log lines (``medrag.progress``,
    INFO) otherwise, nothing with ``--quiet``."""
    if getattr(args, "quiet", False):
        return None
    return "tqdm" if getattr(args, "progress", False) else "log"


def load_index(args: argparse.Namespace, *, load_model: bool = True, path: str | Path | None = None) -> Any:
    from ..index import Index

    where = path if path is not None else args.index
    verify = not getattr(args, "no_verify", False)
    try:
        return Index.load(
            where, verify=verify, load_encoder=load_model, trust_encoder=bool(getattr(args, "trust_encoder", False))
        )
    except IndexFormatError as exc:
        raise IndexFormatError(f"the index at {where} cannot be used: {exc}") from exc
    except ConfigError as exc:
        if "trust_encoder" not in str(exc):
            raise
        raise ConfigError(f"{exc} (in the CLI: --trust-encoder)") from exc


def filters_from(args: argparse.Namespace) -> Any:
    from ..index import Filters

    if args.year_min is not None and args.year_max is not None and args.year_min > args.year_max:
        raise ConfigError(f"--year-min {args.year_min} is after --year-max {args.year_max}")
    return Filters(
        year_min=args.year_min,
        year_max=args.year_max,
        publication_types=tuple(args.type or ()),
        kinds=tuple(args.kind or ()),
        mesh=tuple(args.mesh or ()),
        doc_ids=tuple(args.doc_id or ()),
        exclude_doc_ids=tuple(args.exclude_doc_id or ()),
        include_retracted=args.include_retracted,
        strength=tuple(getattr(args, "strength", None) or ()),
        certainty=tuple(getattr(args, "certainty", None) or ()),
        grade_systems=tuple(getattr(args, "grade_system", None) or ()),
        recommendations_only=bool(getattr(args, "recommendations_only", False)),
    )


def effective_mode(index: Any, asked: str | None) -> str:
    """The retrieval mode a search really runs: ``asked``, else hybrid, or bm25 on an
    index without dense vectors."""
    if asked is not None:
        return asked
    return "hybrid" if getattr(index, "encoder", None) is not None else "bm25"


def count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def year_range(docs: Sequence[Any]) -> list[int] | None:
    years = [d.year for d in docs if d.year is not None]
    return [min(years), max(years)] if years else None


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
