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
    return checked(gen, model)


def checked(gen: Generation, model: str) -> Generation:
    """``gen`` when its values are sane; ModelError naming ``model`` otherwise (non-finite or
    positive logprobs, negative token counts, content that is not a string)."""
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


class StreamAssembler:
    """Builds one :class:`Generation` from the chunks of a streamed (``stream: true``) reply.

    Reads the chunk layouts of OpenAI-compatible servers: chat ``choices[0].delta.content`` or
    completions ``choices[0].text``, per-token logprobs in either layout of this module (per
    chunk), ``finish_reason``, the final ``usage`` chunk (``stream_options.include_usage``) and
    llama.cpp's ``timings``. llama.cpp streams the token that matched a stop string as an entry
    with empty ``token`` and ``bytes``; the non-streamed reply leaves it out, and so does this
    (a streamed generation has the same tokens and logprobs as the non-streamed one).

    Args:
        chat: chat-completions chunks (True) or completions chunks (False).
        model: the model id recorded in the generation and named in errors.
    """

    def __init__(self, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.parts: list[str] = []
        self.tokens: list[str] = []
        self.lps: list[float] = []
        self.tops: list[list[TokenTop]] = []
        self.any_lp = self.any_top = False
        self.usage: dict = {}
        self.timings: dict = {}
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return "".join(self.parts)

    def add(self, chunk: dict) -> bool:
        """Take one decoded chunk; True when it added text or tokens.

        Raises:
            ModelError: an error object, or a malformed chunk (naming the model).
        """
        try:
            return self._add(chunk)
        except ModelError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
            raise ModelError(f"{self.model}: malformed stream chunk ({type(e).__name__}: {e}): {str(chunk)[:200]}") from None

    def _add(self, chunk: dict) -> bool:
        if not isinstance(chunk, dict):
            raise ModelError(f"{self.model}: stream chunk is not a JSON object: {str(chunk)[:200]}")
        if "error" in chunk:
            err = chunk["error"]
            raise ModelError(f"{self.model}: backend error: {err.get('message', err) if isinstance(err, dict) else err}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("timings"):
            self.timings = chunk["timings"]
        added = False
        for ch in chunk.get("choices") or []:
            if ch.get("index", 0) != 0:
                continue
            piece = (ch.get("delta") or {}).get("content") if self.chat else ch.get("text")
            if piece:
                if not isinstance(piece, str):
                    raise ModelError(f"{self.model}: malformed stream chunk: content is not a string")
                self.parts.append(piece)
                added = True
            lp = ch.get("logprobs")
            if isinstance(lp, dict):
                if lp.get("content") is not None:
                    items = [it for it in lp["content"] if not (it.get("token") == "" and it.get("bytes") == [])]
                    tokens, lps, tops = _from_content(items)
                else:
                    tokens, lps, tops = _from_legacy(lp)
                if tokens:
                    added = True
                    self.tokens += tokens
                    if lps is not None:
                        self.any_lp = True
                        self.lps += lps
                    self.any_top = self.any_top or tops is not None
                    self.tops += tops if tops is not None else [[] for _ in tokens]
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return added

    def generation(self, latency_s: float, finish_reason: str | None = None) -> Generation:
        """The generation so far (or complete), checked as :func:`parse_response` checks a reply.

        Args:
            latency_s: seconds since the request was sent.
            finish_reason: overrides the streamed one (``"early_stop"`` when the caller stopped
                reading).
        """
        usage, timings = self.usage, self.timings
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is None and "cache_n" in timings:
            cached = timings["cache_n"]
        gen = Generation(
            text=self.text,
            tokens=list(self.tokens),
            logprobs=list(self.lps) if self.any_lp and len(self.lps) == len(self.tokens) else None,
            top_logprobs=[list(t) for t in self.tops] if self.any_top else None,
            prompt_tokens=int(usage.get("prompt_tokens", timings.get("prompt_n", 0) + (cached or 0)) or 0),
            completion_tokens=int(usage.get("completion_tokens", len(self.tokens)) or 0),
            cached_prompt_tokens=int(cached) if cached is not None else None,
            finish_reason=finish_reason or self.finish_reason,
            latency_s=latency_s,
            model=self.model,
            prompt_ms=timings.get("prompt_ms"),
            predicted_ms=timings.get("predicted_ms"),
        )
        return checked(gen, self.model)
