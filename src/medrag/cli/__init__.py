"""The ``medrag`` command: a thin layer over the public API.

Subcommands: ``ingest``, ``build``, ``search``, ``ask``, ``inspect``, ``fetch``,
``evaluate`` and ``audit``; ``medrag <command> --help`` shows each one's options and an
example. One module per command group: :mod:`.corpus` (ingest, build, fetch),
:mod:`.query` (search, ask), :mod:`.admin` (inspect, evaluate), :mod:`.audit_cmd`;
:mod:`.app` holds the parser and :func:`main`. Option defaults are read from the
library's config dataclasses, so ``--help`` states the defaults the library uses.

Exit codes: 0 success; 1 an error the library reports on purpose (any
:class:`~medrag.errors.MedragError`) or an operating-system error (a missing file, a
full disk), printed as one line ``medrag: error: ...`` (``--debug`` shows the
traceback); 2 a usage error; 130 interrupted. Logging is configured here and only here;
the library itself never configures logging.
"""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["main", "build_parser"]
