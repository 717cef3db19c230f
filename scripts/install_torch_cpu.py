"""Install torch's CPU build into the running Python, never a CUDA build.

1. PyTorch's CPU wheel index first (probed with a short timeout, so an unreachable
   index costs seconds, not minutes): it holds CPU builds only.
2. When it cannot be reached (an air-gapped site, a local mirror), the configured
   index: a ``pip install --dry-run --report`` first, and the install only when the
   report holds no ``nvidia-*`` package and no ``+cu`` torch. Otherwise exit 1 with
   what to do (PyPI's Linux torch wheels are CUDA builds).

Usage: python scripts/install_torch_cpu.py [--version 2.13.0] [--index URL]
Exit 0 when torch is already importable (any build: the user's choice) or installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def log(msg: str) -> None:
    print(f"setup: {msg}", file=sys.stderr, flush=True)


def reachable(index: str, timeout_s: float = 8.0) -> bool:
    """True when ``<index>/torch/`` answers within ``timeout_s`` seconds."""
    try:
        urllib.request.urlopen(index.rstrip("/") + "/torch/", timeout=timeout_s).close()
        return True
    except Exception as exc:  # DNS, refused, timeout, HTTP error
        log(f"the CPU wheel index {index} is unreachable ({type(exc).__name__}: {exc})")
        return False


def cuda_packages(report: dict) -> list[str]:
    """The CUDA parts a ``pip install --report`` would install: ``nvidia-*``
    packages, a torch whose version carries ``+cu``, or one that requires nvidia-*."""
    out = []
    for item in report.get("install", []):
        meta = item["metadata"]
        name, version = meta["name"].lower(), meta["version"]
        needs_nvidia = name == "torch" and any(r.lower().startswith("nvidia") for r in meta.get("requires_dist") or [])
        if name.startswith("nvidia") or "+cu" in version or needs_nvidia:
            out.append(f"{meta['name']}=={version}")
    return out


def dry_run(requirement: str) -> dict:
    """What ``pip install requirement`` would install (nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--report", str(path), requirement],
            check=True,
        )
        return json.loads(path.read_text(encoding="utf-8"))


def pip_install(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="2.13.0")
    ap.add_argument("--index", default=CPU_INDEX)
    ap.add_argument("--probe-timeout", type=float, default=8.0, help="seconds (default 8)")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401

        log(f"torch {torch.__version__} is already installed; left alone")
        return 0
    except ImportError:
        pass
    req = f"torch=={args.version}"
    if reachable(args.index, args.probe_timeout):
        log(f"installing {req} from {args.index}")
        pip_install(req, "--index-url", args.index)
        return 0
    log(f"falling back to the configured index for {req}, if it is a CPU build")
    cuda = cuda_packages(dry_run(req))
    if cuda:
        log(
            f"the configured index offers a CUDA build ({', '.join(cuda[:4])}); not installing it. "
            f"Install the CPU build yourself (pip install torch --index-url {CPU_INDEX}) and run setup again."
        )
        return 1
    pip_install(req)
    return 0


if __name__ == "__main__":
    sys.exit(main())
