"""The public API is exactly __all__, and importing medrag has no side effects."""

from __future__ import annotations

import subprocess
import sys

import medrag


def test_all_is_exactly_the_public_api():
    public = {n for n in dir(medrag) if not n.startswith("_")}
    # submodules Python binds on import are not API unless listed
    modules = {"answer", "audit", "chunking", "index", "retrieve", "sentences", "tokens", "errors", "ingest", "types"}
    assert set(medrag.__all__) - {"__version__"} <= public
    assert public - set(medrag.__all__) <= modules
    for name in medrag.__all__:
        assert getattr(medrag, name) is not None


def test_error_tree():
    from medrag import errors as e

    for cls in (e.ConfigError, e.MissingDependencyError, e.IngestError, e.IndexNotFoundError,
                e.IndexFormatError, e.IndexVersionError, e.GenerationError):
        assert issubclass(cls, e.MedragError)
    assert issubclass(e.ConfigError, ValueError) and issubclass(e.IndexNotFoundError, FileNotFoundError)
    assert issubclass(e.IndexVersionError, e.IndexFormatError)
    assert issubclass(e.MissingDependencyError, ImportError)


def test_import_has_no_side_effects():
    code = (
        "import logging, os; before = dict(os.environ); "
        "import medrag; "
        "assert dict(os.environ) == before, 'environment changed'; "
        "h = logging.getLogger('medrag').handlers; "
        "assert all(isinstance(x, logging.NullHandler) for x in h), h; "
        "assert logging.getLogger().handlers == [], 'root logger touched'; "
        "import sys; assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
