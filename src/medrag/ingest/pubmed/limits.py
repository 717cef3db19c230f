"""Bounds on memory while a file is read: the per-record limits
(:class:`~medrag.ingest.RecordLimits`, bytes and elements of XML) and the pruning of
finished elements from the parser's tree."""

from __future__ import annotations

from lxml import etree

from .._common import RecordLimits


def _prune(root: etree._Element, keep: etree._Element | None) -> None:
    """Delete every finished element that is not needed any more.

    The parser's open elements form the chain of last children from the root; every
    earlier sibling along that chain is finished (and, when a record, already read).
    Those are deleted, level by level, down to ``keep`` (the record being read, whose
    content is still needed) or to the bottom of the chain. The chain is at most 256
    deep: libxml2 refuses deeper documents unless ``huge_tree`` is set, and it is not.
    """
    node = root
    while node is not keep:
        n = len(node)
        if n == 0:
            return
        if n > 1:
            del node[: n - 1]
        node = node[-1]


def _limit_breach(limits: RecordLimits, n_bytes: int, n_elements: int) -> str | None:
    if n_bytes > limits.max_record_bytes:
        return (
            f"record is over {limits.max_record_bytes:,} bytes of XML "
            "(RecordLimits.max_record_bytes); refused"
        )
    if n_elements > limits.max_record_elements:
        return (
            f"record has over {limits.max_record_elements:,} elements "
            "(RecordLimits.max_record_elements); refused"
        )
    return None
