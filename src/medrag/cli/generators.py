"""``ask --generator``: a small factory from command-line options to the generator
classes of :mod:`medrag.answer` (whichever this installation has). Every default shown
in ``--help`` is read from the class itself."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..errors import ConfigError
from ._common import CommandError, default_of, nonneg_float, positive_int

#: ``--generator`` choice -> (module, class) in medrag.answer
GENERATORS = {
    "openai": ("medrag.answer.generate", "OpenAIChatGenerator"),
    "llama": ("medrag.answer.local_llm", "LocalLlamaGenerator"),
}


def _class(choice: str) -> type | None:
    import importlib

    module, name = GENERATORS[choice]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _default(choice: str, name: str, fallback: str = "see the class") -> Any:
    cls = _class(choice)
    if cls is None or not dataclasses.is_dataclass(cls):
        return fallback
    try:
        return default_of(cls, name)
    except KeyError:
        return fallback


def add_generator_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "generation (optional; the default answer is extractive and offline)",
        "With --generator, a language model writes the answer and every sentence is\n"
        "verified against the passages it cites. 'openai' calls an OpenAI-compatible\n"
        "endpoint (vLLM, llama.cpp, Ollama...): the only network use of 'ask'. 'llama'\n"
        "runs a local GGUF file on 127.0.0.1 (pip install 'medrag[local-llm]').",
    )
    g.add_argument("--generator", choices=tuple(GENERATORS), help="who writes the answer")
    g.add_argument("--llm-url", metavar="URL", help="openai: the endpoint, e.g. http://localhost:8000/v1")
    g.add_argument("--llm-model", metavar="NAME", help="openai: the model name the server expects")
    g.add_argument("--llm-api-key-env", metavar="VAR", help="openai: read the API key from this environment variable")
    g.add_argument("--gguf", metavar="FILE", help="llama: the GGUF model file")
    g.add_argument("--gguf-sha256", metavar="HEX", help="llama: refuse the file unless its sha256 is this")
    g.add_argument("--llm-max-tokens", type=positive_int, metavar="N",
                   help=f"tokens generated at most (default: openai {_default('openai', 'max_tokens')}, "
                        f"llama {_default('llama', 'max_tokens')})")
    g.add_argument("--llm-temperature", type=nonneg_float, metavar="T",
                   help=f"sampling temperature (default: {_default('openai', 'temperature')})")
    g.add_argument("--llm-timeout", type=nonneg_float, metavar="SECONDS",
                   help=f"per request (default: openai {_default('openai', 'timeout')}, "
                        f"llama {_default('llama', 'timeout')})")
    from ..answer.generated import CITE_PROMPTS, PROMPT_VERSION

    g.add_argument("--answer-prompt", choices=tuple(CITE_PROMPTS), metavar="VERSION",
                   help=f"the generation prompt's version, named in the answer's prompt_id and the audit log "
                        f"({', '.join(CITE_PROMPTS)}; default: {PROMPT_VERSION})")


def make_generator(args: argparse.Namespace) -> Any:
    """The generator the options describe, or None (extractive answers)."""
    choice = getattr(args, "generator", None)
    llm_only = ("llm_url", "llm_model", "llm_api_key_env", "gguf", "gguf_sha256", "llm_max_tokens",
                "llm_temperature", "llm_timeout", "answer_prompt")
    if choice is None:
        given = [f"--{n.replace('_', '-')}" for n in llm_only if getattr(args, n, None) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} need(s) --generator")
        return None
    cls = _class(choice)
    if cls is None:
        module, name = GENERATORS[choice]
        raise CommandError(f"--generator {choice} is not available in this installation ({module}.{name})")
    common = {k: v for k, v in (("max_tokens", args.llm_max_tokens), ("temperature", args.llm_temperature),
                                ("timeout", args.llm_timeout)) if v is not None}
    if choice == "openai":
        if not args.llm_url or not args.llm_model:
            raise ConfigError("--generator openai needs --llm-url and --llm-model")
        if args.gguf or args.gguf_sha256:
            raise ConfigError("--gguf goes with --generator llama")
        return cls(base_url=args.llm_url, model=args.llm_model, api_key_env=args.llm_api_key_env, **common)
    if not args.gguf:
        raise ConfigError("--generator llama needs --gguf FILE")
    if args.llm_url or args.llm_model or args.llm_api_key_env:
        raise ConfigError("--llm-url / --llm-model / --llm-api-key-env go with --generator openai")
    return cls(model_path=args.gguf, sha256=args.gguf_sha256, **common)
