"""Provider usage payloads → :class:`TokenCounts`, normalised as DESIGN.md says.

tokengov's ``input`` counts every input token, cached or not; ``cached_input``
(read from the prompt cache) and ``cache_write`` (written to it) are parts of
it; ``reasoning`` is part of ``output``. Providers report these differently:

==============================  ==========================================================
OpenAI chat completions         ``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``;
                                ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``
OpenAI responses API            ``input_tokens`` includes ``input_tokens_details.cached_tokens``;
                                ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``
Anthropic messages              ``input_tokens`` *excludes* ``cache_read_input_tokens`` and
                                ``cache_creation_input_tokens``: input = the three summed
OpenTelemetry GenAI spans       ``gen_ai.usage.input_tokens`` SHOULD include
                                ``gen_ai.usage.cache_read.input_tokens`` and
                                ``gen_ai.usage.cache_creation.input_tokens``
==============================  ==========================================================

The payloads are plain mappings (what ``response.usage.model_dump()`` or the
raw JSON gives); the provider SDKs need not be installed. Attribute-style
objects (the SDKs' pydantic models) are accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokengov.core.contracts import TokenCounts
from tokengov.core.errors import ContractError

__all__ = [
    "from_anthropic",
    "from_openai_chat",
    "from_openai_responses",
    "from_otel_attributes",
    "normalize_usage",
]


def _as_mapping(usage: Any) -> Mapping[str, Any]:
    if usage is None:
        return {}
    if isinstance(usage, Mapping):
        return usage
    dump = getattr(usage, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, Mapping):
            return result
    if hasattr(usage, "__dict__"):
        return {k: v for k, v in vars(usage).items() if not k.startswith("_")}
    raise ContractError(f"usage must be a mapping, got {type(usage).__name__}", field="usage")


def _count(mapping: Mapping[str, Any] | None, key: str, *, where: str) -> int:
    if not mapping:
        return 0
    value = mapping.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ContractError(
                f"expected a whole number of tokens, got {value!r}", field=f"{where}{key}"
            )
    if value < 0:
        raise ContractError(f"token count is negative ({value})", field=f"{where}{key}")
    return value


def _details(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _as_mapping(mapping.get(key)) if mapping.get(key) is not None else {}


def from_openai_chat(usage: Any) -> TokenCounts:
    """OpenAI chat completions ``usage``: prompt tokens include cached ones."""
    u = _as_mapping(usage)
    prompt = _details(u, "prompt_tokens_details")
    completion = _details(u, "completion_tokens_details")
    return TokenCounts(
        input=_count(u, "prompt_tokens", where="usage."),
        output=_count(u, "completion_tokens", where="usage."),
        cached_input=_count(prompt, "cached_tokens", where="usage.prompt_tokens_details."),
        reasoning=_count(completion, "reasoning_tokens", where="usage.completion_tokens_details."),
    )


def from_openai_responses(usage: Any) -> TokenCounts:
    """OpenAI responses API ``usage``: input tokens include cached ones."""
    u = _as_mapping(usage)
    inp = _details(u, "input_tokens_details")
    out = _details(u, "output_tokens_details")
    return TokenCounts(
        input=_count(u, "input_tokens", where="usage."),
        output=_count(u, "output_tokens", where="usage."),
        cached_input=_count(inp, "cached_tokens", where="usage.input_tokens_details."),
        reasoning=_count(out, "reasoning_tokens", where="usage.output_tokens_details."),
    )


def from_anthropic(usage: Any) -> TokenCounts:
    """Anthropic messages ``usage``: ``input_tokens`` excludes cache reads and writes.

    Extended-thinking tokens are billed inside ``output_tokens`` and not reported
    apart, so ``reasoning`` stays 0 (it is priced as output either way).
    """
    u = _as_mapping(usage)
    uncached = _count(u, "input_tokens", where="usage.")
    read = _count(u, "cache_read_input_tokens", where="usage.")
    write = _count(u, "cache_creation_input_tokens", where="usage.")
    return TokenCounts(
        input=uncached + read + write,
        output=_count(u, "output_tokens", where="usage."),
        cached_input=read,
        cache_write=write,
    )


_OTEL = "gen_ai.usage."


def from_otel_attributes(attributes: Mapping[str, Any]) -> TokenCounts:
    """OpenTelemetry GenAI span attributes (semantic conventions, with the older spellings).

    The conventions say cache reads and writes SHOULD be included in
    ``gen_ai.usage.input_tokens``; an instrumentation that reports them apart (as
    Anthropic does) is recognised when they exceed the input count, and summed.
    """
    a = _as_mapping(attributes)

    def first(*keys: str) -> int:
        for key in keys:
            if a.get(key) is not None:
                return _count(a, key, where="")
        return 0

    inp = first(f"{_OTEL}input_tokens", f"{_OTEL}prompt_tokens")
    out = first(f"{_OTEL}output_tokens", f"{_OTEL}completion_tokens")
    read = first(
        f"{_OTEL}cache_read.input_tokens",
        f"{_OTEL}cache_read_input_tokens",
        f"{_OTEL}input_tokens.cached",
    )
    write = first(
        f"{_OTEL}cache_creation.input_tokens",
        f"{_OTEL}cache_creation_input_tokens",
        f"{_OTEL}input_tokens.cache_write",
    )
    reasoning = first(f"{_OTEL}reasoning.output_tokens", f"{_OTEL}output_tokens.reasoning")
    if read + write > inp:
        inp += read + write
    return TokenCounts(
        input=inp, output=out, cached_input=read, cache_write=write, reasoning=reasoning
    )


def normalize_usage(provider: str, usage: Any) -> TokenCounts:
    """Pick the adapter by provider (and, for OpenAI, by the payload's shape)."""
    if isinstance(usage, TokenCounts):
        return usage
    u = _as_mapping(usage)
    name = provider.lower()
    if name in {"anthropic", "bedrock-anthropic", "vertex-anthropic", "claude"}:
        return from_anthropic(u)
    if any(str(k).startswith(_OTEL) for k in u):
        return from_otel_attributes(u)
    if "prompt_tokens" in u or "completion_tokens" in u:
        return from_openai_chat(u)
    if "input_tokens" in u or "output_tokens" in u:
        if name in {"openai", "azure-openai", "azure"} or "input_tokens_details" in u:
            return from_openai_responses(u)
        if "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:
            return from_anthropic(u)
        return from_openai_responses(u)
    # Already in tokengov's own shape: {"input": …, "output": …, "cached_input": …}
    if {"input", "output"} & set(u):
        return TokenCounts.model_validate(u)
    raise ContractError(
        f"cannot tell the shape of this {provider!r} usage payload (keys: {sorted(u)}); "
        "pass TokenCounts or use from_openai_chat / from_openai_responses / from_anthropic / "
        "from_otel_attributes",
        field="usage",
    )
