"""Turn an OpenAI-style (or llama.cpp-style) completion response into a :class:`Generation`.

Both llama.cpp (in-process and HTTP) and OpenAI-compatible servers answer in one of two logprob
layouts, and this module reads either:

* chat / llama.cpp: ``choices[0].logprobs.content = [{"token", "logprob", "top_logprobs": [...]}]``
* legacy completions (OpenAI, vLLM): ``choices[0].logprobs = {"tokens": [...],
  "token_logprobs": [...], "top_logprobs": [{token: logprob}, ...]}``
"""

from __future__ import annotations

from .base import Generation, ModelError, TokenTop


def _from_content(content: list[dict]) -> tuple[list[str], list[float], list[list[TokenTop]] | None]:
    tokens, lps, tops = [], [], []
    any_top = False
    for item in content:
        tokens.append(item.get("token", ""))
        lps.append(float(item.get("logprob", 0.0)))
        alts = item.get("top_logprobs") or []
        any_top = any_top or bool(alts)
        tops.append([TokenTop(a.get("token", ""), float(a.get("logprob", 0.0))) for a in alts])
    return tokens, lps, (tops if any_top else None)


def _from_legacy(lp: dict) -> tuple[list[str], list[float] | None, list[list[TokenTop]] | None]:
    tokens = list(lp.get("tokens") or [])
    raw = lp.get("token_logprobs")
    lps = [float(x) if x is not None else 0.0 for x in raw] if raw is not None else None
    raw_tops = lp.get("top_logprobs")
    tops = None
    if raw_tops:
        tops = [
            sorted((TokenTop(t, float(v)) for t, v in (d or {}).items()), key=lambda t: -t.logprob)
            for d in raw_tops
        ]
    return tokens, lps, tops


def parse_response(resp: dict, *, chat: bool, model: str, latency_s: float) -> Generation:
    """Build a Generation from one non-streaming response body (see :func:`_parse`).

    Raises:
        ModelError: the body is an error object, or malformed in any way (wrong types, missing
            fields, non-finite or positive logprobs, negative token counts), naming the model.
    """
    try:
        gen = _parse(resp, chat=chat, model=model, latency_s=latency_s)
    except ModelError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise ModelError(f"{model}: malformed reply ({type(e).__name__}: {e}): {str(resp)[:200]}") from None
    if gen.logprobs is not None and any(not (lp <= 1e-6) for lp in gen.logprobs):  # catches nan too
        raise ModelError(f"{model}: malformed reply: logprobs must be finite and <= 0")
    if min(gen.prompt_tokens, gen.completion_tokens, gen.cached_prompt_tokens or 0) < 0:
        raise ModelError(f"{model}: malformed reply: negative token counts in usage")
    if not isinstance(gen.text, str):
        raise ModelError(f"{model}: malformed reply: content is not a string")
    return gen


def _parse(resp: dict, *, chat: bool, model: str, latency_s: float) -> Generation:
    """Build a Generation from one non-streaming response body.

    Args:
        resp: the decoded JSON body.
        chat: True for a chat-completions body (``message.content``), False for completions.
        model: model id to record (the response's ``model`` field is used when present).
        latency_s: wall-clock seconds the call took.

    Raises:
        ModelError: the body is an error object or lacks ``choices``.
    """
    if not isinstance(resp, dict):
        raise ModelError(f"{model}: response is not a JSON object: {str(resp)[:200]}")
    if "error" in resp:
        err = resp["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise ModelError(f"{model}: backend error: {msg}")
    choices = resp.get("choices")
    if not choices:
        raise ModelError(f"{model}: response has no choices: {str(resp)[:200]}")
    ch = choices[0]
    text = (ch.get("message") or {}).get("content") if chat else ch.get("text")
    text = text or ""
    tokens: list[str] = []
    lps: list[float] | None = None
    tops: list[list[TokenTop]] | None = None
    lp = ch.get("logprobs")
    if isinstance(lp, dict):
        if "content" in lp and lp["content"] is not None:
            tokens, lps, tops = _from_content(lp["content"])
        elif "tokens" in lp:
            tokens, lps, tops = _from_legacy(lp)
    usage = resp.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    timings = resp.get("timings") or {}
    cached = details.get("cached_tokens")
    if cached is None and "cache_n" in timings:
        cached = timings["cache_n"]
    completion_tokens = int(usage.get("completion_tokens", len(tokens)) or 0)
    return Generation(
        text=text,
        tokens=tokens,
        logprobs=lps,
        top_logprobs=tops,
        prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
        completion_tokens=completion_tokens,
        cached_prompt_tokens=int(cached) if cached is not None else None,
        finish_reason=ch.get("finish_reason"),
        latency_s=latency_s,
        model=model,
        prompt_ms=timings.get("prompt_ms"),
        predicted_ms=timings.get("predicted_ms"),
    )
