"""Every code block in README.md runs as written, offline, on the data committed with
medrag (tests/data), in a scratch folder that has only what a fresh clone has.

Blocks are the fenced ```python and ```bash blocks. A block may be preceded by
``<!-- readme-test: instead ... -->`` naming lighter forms of its long jobs (the same
scripts with smaller inputs): each of those lines must start like a line of the block
(same program and script), so the lighter form runs the same code. ``<!-- readme-test:
network -->`` marks a block that needs NCBI; it is run against a local E-utilities
server when the command can be pointed at one, and skipped otherwise.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
_FENCE = re.compile(r"(?:<!--\s*readme-test:\s*(?P<marker>.*?)-->\s*\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    line: int  # 1-based line of the opening fence in README.md
    marker: str

    @property
    def id(self) -> str:
        return f"{self.lang}@L{self.line}"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        if m.group("lang") in ("python", "bash"):
            line = text.count("\n", 0, m.start("lang")) + 1
            out.append(Block(m.group("lang"), m.group("body"), line, (m.group("marker") or "").strip()))
    return out


def _commands(body: str) -> list[str]:
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder with what a fresh clone has for the README's relative paths (tests/data
    and examples, read-only links), and nothing else: indexes and logs go here."""
    (tmp_path / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return tmp_path


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SCRATCH=str(scratch), MEDRAG_DATA=str(scratch / "none"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `medrag`, `python`
    env.pop("MPLBACKEND", None)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    return r


def test_readme_has_the_blocks_this_test_runs():
    bs = blocks()
    assert [b.lang for b in bs].count("python") >= 1 and [b.lang for b in bs].count("bash") >= 2


def test_python_blocks_print_what_they_compute():
    """No bare expressions (they print nothing when run as a script)."""
    for b in (b for b in blocks() if b.lang == "python"):
        for node in ast.walk(ast.parse(b.body)):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call):
                pytest.fail(f"README.md line {b.line + node.lineno}: a bare expression prints nothing: "
                            f"{ast.get_source_segment(b.body, node)!r}")


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "python"], ids=lambda b: b.id)
def test_python_block_runs(block: Block, scratch: Path):
    script = scratch / "readme_block.py"
    script.write_text(block.body, encoding="utf-8")
    r = _run([sys.executable, str(script)], scratch, _env(scratch))
    assert r.stdout.strip(), "the block printed nothing"
    # it built, saved and reloaded an index where it said, inside the scratch folder
    if "index.save(" in block.body:
        assert (scratch / "indexes").is_dir()


def _instead(block: Block) -> list[str]:
    """The lighter commands of an ``instead`` marker, each checked to run a script of
    the block (same program and first argument)."""
    lines = _commands(block.marker.split("\n", 1)[1] if "\n" in block.marker else "")
    starts = {tuple(shlex.split(c)[:2]) for c in _commands(block.body)}
    for ln in lines:
        assert tuple(shlex.split(ln)[:2]) in starts, f"README line {block.line}: {ln!r} runs nothing the block runs"
    assert lines, f"README line {block.line}: an 'instead' marker without commands"
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "bash"], ids=lambda b: b.id)
def test_bash_block_runs(block: Block, scratch: Path):
    env = _env(scratch)
    if block.marker.startswith("network"):
        pytest.skip("needs NCBI E-utilities; the command has no option to point it at a local server")
    if block.marker.startswith("instead"):
        # long jobs: the same scripts with smaller inputs, from the project folder
        for cmd in _instead(block):
            _run(["bash", "-euo", "pipefail", "-c", cmd], REPO, env)
        return
    script = "set -euo pipefail\n" + block.body
    _run(["bash", "-c", script], scratch, env)
