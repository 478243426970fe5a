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
    llama.cpp's ``timings``.

    Stop strings: llama.cpp streams an entry (empty ``token`` and ``bytes``, its real ``id``)
    for every token whose text it holds back because it may begin a stop string, and its
    non-streamed reply leaves out the tokens of the stop string that ended the generation. Given
    ``stop_ids`` (the token ids of each stop string), :meth:`generation` leaves out those same
    trailing entries when the stream ended on ``stop``, and :meth:`partial` leaves out trailing
    entries that may still turn out to be a stop string: a streamed generation then has the
    tokens and logprobs of the non-streamed one, and every partial generation is a prefix of it.

    Args:
        chat: chat-completions chunks (True) or completions chunks (False).
        model: the model id recorded in the generation and named in errors.
        stop_ids: token ids of each stop string (in-process llama.cpp, whose tokenizer we can ask).
        held_stops: without ``stop_ids`` (an endpoint) but with stop strings in the request: the
            trailing entries streamed without text whose texts (named by their top_logprobs)
            spell one of ``stop_strings`` are the stop string and left out; the model's
            end-of-text token, which llama.cpp also streams without text, stays.
        stop_strings: the request's stop strings.
    """

    def __init__(self, chat: bool, model: str, stop_ids: list[list[int]] | None = None,
                 held_stops: bool = False, stop_strings: list[str] | None = None) -> None:
        self.chat, self.model, self.held_stops = chat, model, held_stops
        self.stop_strings = [x for x in (stop_strings or []) if x]
        self.stop_ids = [list(x) for x in (stop_ids or []) if x]
        self.parts: list[str] = []
        self.tokens: list[str] = []
        self.ids: list[int | None] = []
        self.held: list[bool] = []  # streamed without its text (empty token and bytes)
        self.chosen: list[str | None] = []  # each entry's text as its top_logprobs name it
        self.lps: list[float] = []
        self.tops: list[list[TokenTop]] = []
        self.any_lp = self.any_top = False
        self.usage: dict = {}
        self.timings: dict = {}
        self.finish_reason: str | None = None
        self.chunks = 0  # chunks with a choice

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
            self.usage = dict(chunk["usage"])
        if chunk.get("timings"):
            self.timings = dict(chunk["timings"])
        added = False
        for ch in chunk.get("choices") or []:
            if ch.get("index", 0) != 0:
                continue
            self.chunks += 1
            piece = (ch.get("delta") or {}).get("content") if self.chat else ch.get("text")
            if piece:
                if not isinstance(piece, str):
                    raise ModelError(f"{self.model}: malformed stream chunk: content is not a string")
                self.parts.append(piece)
                added = True
            lp = ch.get("logprobs")
            if isinstance(lp, dict):
                if lp.get("content") is not None:
                    ids = [it.get("id") for it in lp["content"]]
                    self.held += [it.get("token") == "" and it.get("bytes") == [] for it in lp["content"]]
                    # a held entry's own text, where its alternatives name it (llama.cpp lists the chosen token)
                    self.chosen += [next((a.get("token") for a in (it.get("top_logprobs") or [])
                                          if it.get("id") is not None and a.get("id") == it.get("id")), None)
                                    for it in lp["content"]]
                    tokens, lps, tops = _from_content(lp["content"])
                else:
                    tokens, lps, tops = _from_legacy(lp)
                    ids = [None] * len(tokens)
                    self.held += [False] * len(tokens)
                    self.chosen += [None] * len(tokens)
                if tokens:
                    added = True
                    self.tokens += tokens
                    self.ids += ids
                    if lps is not None:
                        self.any_lp = True
                        self.lps += lps
                    self.any_top = self.any_top or tops is not None
                    self.tops += tops if tops is not None else [[] for _ in tokens]
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return added

    def _held_run(self) -> int:
        k = len(self.held)
        while k > 0 and self.held[k - 1]:
            k -= 1
        return len(self.held) - k

    def _stop_run(self) -> int:
        """Trailing held entries that spell a stop string (the fewest whose text contains one),
        read from their top_logprobs; a held run that spells none (the model's end-of-text token)
        is kept. Without those texts, the whole held run."""
        run = self._held_run()
        texts = self.chosen[len(self.chosen) - run:]
        if not self.stop_strings or any(t is None for t in texts):
            return run
        for m in range(1, run + 1):
            if any(stop in "".join(texts[run - m:]) for stop in self.stop_strings):
                return m
        return 0

    def _kept(self, final: bool) -> int:
        """How many entries belong to the generation: at the end of a stream stopped by a stop
        string, all but that string's tokens; while streaming, all but a tail that may still
        become one. Without ``stop_ids`` (an endpoint), with ``held_stops``: the trailing run of
        held-back entries stands for the stop string."""
        n = len(self.ids)
        if not self.stop_ids and self.held_stops:
            if not final:
                return n - self._held_run()
            return n - self._stop_run() if self.finish_reason == "stop" else n
        if final:
            if self.finish_reason == "stop":
                for ids in sorted(self.stop_ids, key=len, reverse=True):
                    if n >= len(ids) and self.ids[n - len(ids):] == ids:
                        return n - len(ids)
            return n
        held = 0
        for ids in self.stop_ids:
            for k in range(min(len(ids), n), 0, -1):
                if self.ids[n - k:] == ids[:k]:
                    held = max(held, k)
                    break
        return n - held

    def held_tail(self) -> list[int]:
        """Ids of the trailing entries streamed without their text (llama.cpp held it back as a
        possible stop string; a stream that ends on ``length`` never sends it)."""
        return [i for i in self.ids[len(self.ids) - self._held_run():] if i is not None]

    def partial(self, latency_s: float) -> Generation:
        """The generation so far, less a trailing stop-string candidate (see the class docstring)."""
        return self._build(latency_s, self._kept(False), None, {**self.usage, "completion_tokens": None})

    def generation(self, latency_s: float, finish_reason: str | None = None) -> Generation:
        """The generation (complete, or ``finish_reason="early_stop"`` when the caller stopped
        reading: then the partial one, with ``completion_tokens`` the tokens read), checked as
        :func:`parse_response` checks a reply.

        Raises:
            ModelError: malformed counts in the usage or timings.
        """
        if finish_reason is not None:  # every token read was generated (and is billed)
            return self._build(latency_s, self._kept(False), finish_reason, {**self.usage, "completion_tokens": len(self.tokens)})
        return self._build(latency_s, self._kept(True), self.finish_reason, self.usage)

    def _build(self, latency_s: float, keep: int, finish_reason: str | None, usage: dict) -> Generation:
        timings = self.timings
        try:
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached is None and "cache_n" in timings:
                cached = timings["cache_n"]
            prompt = usage.get("prompt_tokens")
            if prompt is None:
                prompt = int(timings.get("prompt_n", 0)) + int(cached or 0)
            completion = usage.get("completion_tokens")
            gen = Generation(
                text=self.text,
                tokens=self.tokens[:keep],
                logprobs=self.lps[:keep] if self.any_lp and len(self.lps) == len(self.tokens) else None,
                top_logprobs=[list(t) for t in self.tops[:keep]] if self.any_top else None,
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion) if completion is not None else keep,
                cached_prompt_tokens=int(cached) if cached is not None else None,
                finish_reason=finish_reason,
                latency_s=latency_s,
                model=self.model,
                prompt_ms=timings.get("prompt_ms"),
                predicted_ms=timings.get("predicted_ms"),
            )
        except (TypeError, ValueError) as e:
            raise ModelError(f"{self.model}: malformed usage or timings in the stream ({type(e).__name__}: {e})") from None
        return checked(gen, self.model)
