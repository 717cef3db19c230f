"""The public API is exactly __all__, and importing medrag has no side effects."""

from __future__ import annotations

import subprocess
import sys

import medrag


def test_all_is_exactly_the_public_api():
    import types as pytypes

    public = {n for n in dir(medrag) if not n.startswith("_")}
    # submodules that Python binds on import (any test may import them) are not API
    # unless listed; anything else public must be in __all__
    extra = {
        n for n in public - set(medrag.__all__)
        if not (isinstance(getattr(medrag, n), pytypes.ModuleType) and getattr(medrag, n).__name__ == f"medrag.{n}")
    }
    assert set(medrag.__all__) - {"__version__"} <= public
    assert extra == set()
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
        "import sys; assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules; "
        # optional extras stay unimported until used (notebook views, adapters, progress bars)
        "import medrag.display, medrag.progress, medrag.integrations; "
        "heavy = {m.split('.')[0] for m in sys.modules} & {'pandas', 'langchain_core', 'llama_index', 'nbclient', 'IPython', 'tqdm', 'matplotlib'}; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
