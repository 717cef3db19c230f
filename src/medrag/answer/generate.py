"""Language-model generators for :func:`~medrag.answer.generated.compose_generated`.

Nothing here sends anything anywhere unless the caller constructs a generator with an
endpoint. :class:`OpenAIChatGenerator` speaks the chat-completions protocol that
vLLM, llama.cpp's server, Ollama, Azure OpenAI and OpenAI all serve, over ``httpx``
(timeouts per request, retries with exponential backoff on connection errors, 429 and
5xx, and a :class:`~medrag.errors.GenerationError` naming the endpoint otherwise).
Local GGUF models: :mod:`medrag.answer.local_llm`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, GenerationError

__all__ = ["Generator", "OpenAIChatGenerator", "check_output"]

logger = logging.getLogger(__name__)

#: Generated text longer than this (characters) is refused, not verified: verifying a
#: 10 MB output took 296 s, and no answer of a few sentences comes near it.
MAX_OUTPUT_CHARS = 20_000


@runtime_checkable
class Generator(Protocol):
    """Turns chat messages into text."""

    @property
    def name(self) -> str: ...

    def generate(self, messages: list[dict[str, str]]) -> str: ...


def check_output(output: object, source: str, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """``output`` when it is text of at most ``max_chars`` characters, else
    :class:`GenerationError` saying what ``source`` returned instead."""
    if output is None:
        raise GenerationError(f"{source} returned nothing (None)")
    if isinstance(output, (bytes, bytearray)):
        raise GenerationError(f"{source} returned bytes, not text ({len(output)} bytes)")
    if not isinstance(output, str):
        raise GenerationError(f"{source} returned {type(output).__name__}, not text")
    if len(output) > max_chars:
        raise GenerationError(f"{source} returned {len(output):,} characters, over the cap of {max_chars:,}")
    return output


@dataclass(frozen=True)
class OpenAIChatGenerator:
    """A chat-completions endpoint: ``POST {base_url}/chat/completions``.

    Attributes:
        base_url: e.g. ``http://localhost:8000/v1`` (vLLM), ``http://localhost:11434/v1``
            (Ollama); required: there is no default endpoint.
        model: the model name the server expects.
        api_key: sent as a Bearer token when given; ``api_key_env`` names an
            environment variable to read it from instead (never logged).
        temperature / max_tokens: sampling settings.
        timeout: seconds allowed for one request (connect, each read, write).
        retries: further attempts after a connection error, HTTP 429 or 5xx, waiting
            ``backoff * 2**attempt`` seconds before each.
        max_output_chars: longer output is a :class:`GenerationError`.
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    max_output_chars: int = MAX_OUTPUT_CHARS

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ConfigError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if not (isinstance(self.retries, int) and 0 <= self.retries <= 10):
            raise ConfigError(f"retries must be an integer in 0..10, not {self.retries!r}")
        if not (isinstance(self.max_tokens, int) and self.max_tokens > 0):
            raise ConfigError(f"max_tokens must be a positive integer, not {self.max_tokens!r}")

    @property
    def name(self) -> str:
        return f"openai-chat:{self.model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = self.api_key or (os.environ.get(self.api_key_env) if self.api_key_env else None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def chat(self, messages: list[dict[str, str]], **params: Any) -> dict:
        """The raw chat-completions response (a dict) for ``messages``; ``params``
        (``max_tokens``, ``logprobs``, ``top_logprobs``...) override the defaults."""
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, **params}
        url = self.base_url.rstrip("/") + "/chat/completions"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = httpx.post(url, json=body, headers=self._headers(), timeout=self.timeout)
            except httpx.TimeoutException as exc:
                # a slow model will be as slow again: a timeout is not retried
                raise GenerationError(f"{url}: no answer within {self.timeout:g} s") from exc
            except httpx.HTTPError as exc:
                last = GenerationError(f"{url}: {type(exc).__name__}: {exc}")
                last.__cause__ = exc
                logger.warning("generator request failed (attempt %d): %s", attempt + 1, exc)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = GenerationError(f"{url} answered HTTP {resp.status_code}")
                logger.warning("generator answered HTTP %d (attempt %d)", resp.status_code, attempt + 1)
                continue
            if resp.status_code != 200:
                raise GenerationError(f"{url} answered HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                payload = resp.json()
            except ValueError as exc:
                raise GenerationError(f"{url}: the response is not JSON: {resp.text[:200]!r}") from exc
            if not isinstance(payload, dict):
                raise GenerationError(f"{url}: unexpected response shape: {str(payload)[:200]}")
            return payload
        raise last if last is not None else GenerationError(f"{url}: no attempt was made")

    def generate(self, messages: list[dict[str, str]]) -> str:
        url = self.base_url.rstrip("/") + "/chat/completions"
        payload = self.chat(messages)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"{url}: unexpected response shape: {str(payload)[:200]}") from exc
        return check_output(content, url, self.max_output_chars)
