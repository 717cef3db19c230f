"""scripts/install_torch_cpu.py (called by scripts/setup.sh): the CPU wheel index
first with a quick probe, and a fallback that refuses any CUDA build."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import install_torch_cpu as itc  # noqa: E402


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_cpu_index_is_detected_quickly():
    t0 = time.monotonic()
    assert not itc.reachable(f"http://127.0.0.1:{_closed_port()}/whl/cpu", timeout_s=3)
    assert time.monotonic() - t0 < 5


def test_setup_script_installs_cpu_torch_first():
    text = (REPO / "scripts" / "setup.sh").read_text()
    # the torch step comes before the package install that would pull a plain `torch`
    assert text.index("install_torch_cpu.py") < text.index('pip install -q -e ".[')
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "setup.sh")]).returncode == 0


def test_an_installed_torch_is_left_alone():
    pytest.importorskip("torch")
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "install_torch_cpu.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "already installed; left alone" in r.stderr


def _report(req: str) -> dict:
    try:
        return itc.dry_run(req)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"the package index cannot resolve {req}: {exc}")


@pytest.mark.slow
def test_fallback_guard_on_real_resolutions():
    """Real `pip install --dry-run --report` output from the configured index: the
    pinned torch here is a CPU build (accepted); an nvidia-* package is refused."""
    assert itc.cuda_packages(_report("torch==2.13.0")) == []
    flagged = itc.cuda_packages(_report("nvidia-cuda-runtime"))
    assert flagged and flagged[0].startswith("nvidia-cuda-runtime==")
