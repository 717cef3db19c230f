"""PubMedQA (Jin et al., "PubMedQA: A Dataset for Biomedical Research Question
Answering", EMNLP 2019) labelled-set files (``pqal_*.json``) into Documents and questions,
the way medrag's answer benchmarks and tests index them.

Each record becomes one ``kind="pubmed"`` :class:`~medrag.types.Document` with no title
(the question is usually the article's title, so indexing it would answer the question
by the title alone): its CONTEXTS joined by blank lines, one abstract
:class:`~medrag.types.Section` per context under its LABEL. With ``long_answer=True`` the
record's LONG_ANSWER (the abstract's conclusion, which PubMedQA removes from the
contexts) is appended as a CONCLUSIONS section.
"""

from __future__ import annotations

import json
import os
from typing import Any, Union

from ..errors import IngestError
from ..types import Document, PubDate, PubmedMetadata, Section, SourceFile

__all__ = ["read_pubmedqa"]

PathLike = Union[str, "os.PathLike[str]"]


def _document(pmid: str, rec: Any, src: SourceFile, long_answer: bool) -> Document:
    contexts, labels = rec["CONTEXTS"], rec["LABELS"]
    if not (isinstance(contexts, list) and isinstance(labels, list) and len(contexts) == len(labels)):
        raise ValueError("CONTEXTS and LABELS must be lists of the same length")
    pairs = list(zip(labels, contexts))
    if long_answer:
        pairs.append(("CONCLUSIONS", rec["LONG_ANSWER"]))
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for label, ctx in pairs:
        ctx = " ".join(str(ctx).split())
        if parts:
            pos += 2
        sections.append(Section(kind="abstract", label=label, start=pos, end=pos + len(ctx), category=label))
        parts.append(ctx)
        pos += len(ctx)
    year = int(rec["YEAR"]) if str(rec.get("YEAR", "")).isdigit() else None
    return Document(
        id=f"pmid:{pmid}", kind="pubmed", title="", text="\n\n".join(parts), sections=tuple(sections),
        source=src, year=year, pubmed=PubmedMetadata(pmid=pmid, pub_date=PubDate(year=year)),
    )  # fmt: skip


def read_pubmedqa(path: PathLike, *, long_answer: bool = False) -> tuple[list[Document], list[tuple[str, str]]]:
    """The documents of a PubMedQA ``pqal_*.json`` file and its ``(pmid, question)``
    pairs, in file order. Raises :class:`~medrag.errors.IngestError` naming the file (and
    the PMID) for a file that is not PubMedQA JSON or a record without its fields."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise IngestError(f"not a readable PubMedQA JSON file ({e})", source=p) from e
    if not isinstance(data, dict):
        raise IngestError("not PubMedQA JSON (expected an object keyed by PMID)", source=p)
    src = SourceFile(p, "")
    docs, questions = [], []
    for i, (pmid, rec) in enumerate(data.items()):
        try:
            docs.append(_document(str(pmid), rec, src, long_answer))
            questions.append((str(pmid), str(rec["QUESTION"])))
        except (KeyError, TypeError, ValueError) as e:
            raise IngestError(f"not a PubMedQA record ({type(e).__name__}: {e})", source=p, record_id=str(pmid), position=i) from e
    return docs, questions
