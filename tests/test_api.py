"""The public API is exactly __all__, and importing medrag has no side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def test_every_missing_dependency_error_names_package_and_extra():
    """Each ``MissingDependencyError(...)`` in the library passes the package and the pip
    extra (its signature): a call with a message only raised TypeError in place of the
    error it meant, which CI hit when the test model was not installed."""
    import ast

    from medrag import errors as e

    src = Path(e.__file__).resolve().parent
    extras = _extras()
    calls = 0
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MissingDependencyError":
                calls += 1
                where = f"{path.relative_to(src)}:{node.lineno}"
                assert len(node.args) + len(node.keywords) >= 2, where
                extra = node.args[1] if len(node.args) > 1 else None
                if isinstance(extra, ast.Constant):
                    assert extra.value in extras, f"{where}: no extra {extra.value!r} in pyproject.toml"
    assert calls >= 20
    err = e.MissingDependencyError("numba", "fast", "engine='numba'")
    assert str(err) == "numba is required for engine='numba'; install it with: pip install 'medrag[fast]'"


def _extras() -> set[str]:
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    return set(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"])


def test_a_missing_model_part_raises_missing_dependency(tmp_path, monkeypatch):
    from medrag.answer import local_llm
    from medrag.errors import MissingDependencyError

    fake = local_llm.PackagedModel(
        "no-such-model", "parts that are not installed", "medrag_no_such_part", "medrag-no-such-part",
        "0.0.1", 2, 10, "0" * 64, "test-model",
    )
    monkeypatch.setitem(local_llm.PACKAGED_MODELS, fake.name, fake)
    with pytest.raises(MissingDependencyError, match=r"medrag-no-such-part1==0\.0\.1.*medrag\[test-model\]"):
        local_llm.packaged_model(fake.name, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    assert {m.extra for m in local_llm.PACKAGED_MODELS.values() if m is not fake} <= _extras()


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
