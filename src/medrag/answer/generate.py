"""Language-model generators for :func:`~medrag.answer.generated.compose_generated`.

Nothing here sends anything anywhere unless the caller constructs a generator with an
endpoint. :class:`OpenAIChatGenerator` speaks the chat-completions protocol that
vLLM, llama.cpp's server, Ollama, Azure OpenAI and OpenAI all serve, over the standard
library's HTTP client (no extra dependency).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import ConfigError, GenerationError

__all__ = ["Generator", "OpenAIChatGenerator"]

logger = logging.getLogger(__name__)


@runtime_checkable
class Generator(Protocol):
    """Turns chat messages into text."""

    @property
    def name(self) -> str: ...

    def generate(self, messages: list[dict[str, str]]) -> str: ...


@dataclass(frozen=True)
class OpenAIChatGenerator:
    """A chat-completions endpoint: ``POST {base_url}/chat/completions``.

    Attributes:
        base_url: e.g. ``http://localhost:8000/v1`` (vLLM), ``http://localhost:11434/v1``
            (Ollama); required: there is no default endpoint.
        model: the model name the server expects.
        api_key: sent as a Bearer token when given; ``api_key_env`` names an
            environment variable to read it from instead (never logged).
        temperature / max_tokens / timeout: request settings (timeout in seconds).
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, not {self.base_url!r}")

    @property
    def name(self) -> str:
        return f"openai-chat:{self.model}"

    def generate(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = self.api_key or (os.environ.get(self.api_key_env) if self.api_key_env else None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise GenerationError(f"{url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise GenerationError(f"{url}: {exc}") from exc
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"{url}: unexpected response shape: {str(payload)[:200]}") from exc
