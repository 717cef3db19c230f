"""Shared test fixtures. Real data lives in ../shared/data (or $MEDRAG_DATA); tests that
need it skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("MEDRAG_DATA", REPO.parent / "shared" / "data"))


def need_data(*parts: str) -> Path:
    """The path under the data root, or skip the test when it is absent."""
    p = data_root().joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not found: {p} (set MEDRAG_DATA)")
    return p


@pytest.fixture
def data() -> Path:
    return need_data()
