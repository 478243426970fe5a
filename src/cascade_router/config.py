"""Explicit, serialisable configuration of a cascade: two tiers, a router, and options.

The same file is accepted by ``ask``, ``eval`` and ``serve`` (TOML or YAML)::

    [slm]
    model = "smollm2-135m"          # embedded name, GGUF path, or MODEL@BASE_URL
    threads = 2
    [slm.price]                     # dollars; per million tokens
    per_call = 0.0
    prompt_per_mtok = 0.05
    completion_per_mtok = 0.05

    [llm]
    model = "gpt-4o-mini@https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"  # the variable's NAME, never the key
    timeout_s = 30
    retries = 2
    [llm.price]
    prompt_per_mtok = 0.15
    completion_per_mtok = 0.60

    [router]
    name = "seed-v1"                # or: path = "router.json"; or: kind + params (see routers)

    [cascade]
    max_tokens = 24
    on_llm_error = "degrade"        # or "fail" (serve answers 503)
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .evaluation.costs import TierPrice
from .models.registry import DEFAULT_LLM, DEFAULT_SLM, load_model
from .routers import Router, get_router, router_from_dict

#: Illustrative default prices for the embedded local models, in proportion to their parameter
#: counts (135M vs 270M); set real prices for real endpoints in the config file.
DEFAULT_PRICES = {
    "smollm2-135m": TierPrice(prompt_per_mtok=0.05, completion_per_mtok=0.05),
    "gemma3-270m": TierPrice(prompt_per_mtok=0.10, completion_per_mtok=0.10),
}


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the field."""


@dataclass
class TierConfig:
    """One tier: the model spec and how to open it (see :func:`cascade_router.models.registry.load_model`)."""

    model: str
    family: str | None = None
    threads: int | None = None
    n_ctx: int = 4096
    top_k: int = 5
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 30.0
    retries: int = 2
    price: TierPrice | None = None

    def price_or_default(self) -> TierPrice:
        """The configured price, else the illustrative default for embedded models, else free."""
        return self.price or DEFAULT_PRICES.get(self.model, TierPrice())

    def open(self):
        """Open the backend (loads a local model; seconds)."""
        return load_model(
            self.model, family=self.family, threads=self.threads, n_ctx=self.n_ctx, top_k=self.top_k,
            api_key_env=self.api_key_env, timeout_s=self.timeout_s, retries=self.retries,
        )


@dataclass
class CascadeConfig:
    """The whole cascade configuration. ``router`` is a name/path string or a router dict."""

    slm: TierConfig = field(default_factory=lambda: TierConfig(DEFAULT_SLM))
    llm: TierConfig = field(default_factory=lambda: TierConfig(DEFAULT_LLM))
    router: str | dict = "seed-v1"
    max_tokens: int = 24
    on_llm_error: str = "degrade"

    def build_router(self, seed: int = 0) -> Router:
        """The router this config names. Raises ValueError listing valid names."""
        if isinstance(self.router, dict):
            if "name" in self.router:
                return get_router(self.router["name"], seed=seed)
            if "path" in self.router:
                return get_router(str(self.router["path"]), seed=seed)
            return router_from_dict(self.router, source="config [router]")
        return get_router(self.router, seed=seed)

    @property
    def router_label(self) -> str:
        """A short name for the configured router (its name, file, or kind)."""
        r = self.router
        if isinstance(r, str):
            return r
        return str(r.get("name") or r.get("path") or r.get("kind") or "custom")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/TOML-ready)."""
        return asdict(self)


def _check_tier_types(d: dict, where: str) -> None:
    def bad(field: str, want: str) -> None:
        raise ConfigError(f"{where} {field} must be {want}, got {d[field]!r}")

    if not isinstance(d.get("model"), str) or not d["model"].strip():
        bad("model", "a non-empty string (embedded name, .gguf path or MODEL@URL)")
    for key, lo, hi in (("threads", 1, 1024), ("n_ctx", 64, 10_000_000), ("top_k", 1, 20), ("retries", 0, 20)):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            bad(key, f"an integer in [{lo}, {hi}]")
    v = d.get("timeout_s")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e6):
        bad("timeout_s", "a number of seconds > 0")
    if d.get("family") not in (None, "chat", "base"):
        bad("family", "'chat' or 'base'")
    if d.get("api_key_env") is not None and not isinstance(d["api_key_env"], str):
        bad("api_key_env", "the NAME of an environment variable (a string)")


def _tier(d: Any, name: str, src: str) -> TierConfig:
    if isinstance(d, str):
        return TierConfig(d)
    if not isinstance(d, Mapping) or "model" not in d:
        raise ConfigError(f"{src}: [{name}] needs a 'model' field (embedded name, .gguf path or MODEL@URL)")
    known = {f.name for f in fields(TierConfig)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"{src}: [{name}] unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
    d = dict(d)
    _check_tier_types(d, f"{src}: [{name}]")
    if d.get("price") is not None:
        p = d["price"]
        pk = {f.name for f in fields(TierPrice)}
        if not isinstance(p, Mapping):
            raise ConfigError(f"{src}: [{name}.price] must be a table of {sorted(pk)}")
        if set(p) - pk:
            raise ConfigError(f"{src}: [{name}.price] unknown field(s) {sorted(set(p) - pk)}; valid: {sorted(pk)}")
        try:
            d["price"] = TierPrice(**{k: float(v) for k, v in p.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{src}: [{name}.price] {e}") from None
    return TierConfig(**d)


def config_from_dict(d: Mapping[str, Any], source: str = "config") -> CascadeConfig:
    """Validate and build a :class:`CascadeConfig` from a parsed file.

    Raises:
        ConfigError: unknown sections or fields, bad values; the message names ``source``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: top level must be a table/mapping")
    unknown = set(d) - {"slm", "llm", "router", "cascade"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; valid: slm, llm, router, cascade")
    cfg = CascadeConfig()
    if "slm" in d:
        cfg.slm = _tier(d["slm"], "slm", source)
    if "llm" in d:
        cfg.llm = _tier(d["llm"], "llm", source)
    if "router" in d:
        r = d["router"]
        if isinstance(r, Mapping):
            extra = set(r) - {"name", "path", "kind", "params", "state"}
            if extra:
                raise ConfigError(f"{source}: [router] unknown field(s) {sorted(extra)}; valid: name, path, or kind + params")
            for key in ("name", "path"):
                if key in r and not isinstance(r[key], str):
                    raise ConfigError(f"{source}: [router] {key} must be a string, got {r[key]!r}")
            r = dict(r)
        elif not isinstance(r, str):
            raise ConfigError(f"{source}: router must be a name, a path or a table, got {r!r}")
        cfg.router = r
    casc = d.get("cascade") or {}
    if not isinstance(casc, Mapping):
        raise ConfigError(f"{source}: [cascade] must be a table with max_tokens and/or on_llm_error")
    bad = set(casc) - {"max_tokens", "on_llm_error"}
    if bad:
        raise ConfigError(f"{source}: [cascade] unknown field(s) {sorted(bad)}; valid: max_tokens, on_llm_error")
    if "max_tokens" in casc:
        mt = casc["max_tokens"]
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise ConfigError(f"{source}: [cascade] max_tokens must be a positive integer, got {mt!r}")
        cfg.max_tokens = mt
    if "on_llm_error" in casc:
        if casc["on_llm_error"] not in ("degrade", "fail"):
            raise ConfigError(f"{source}: [cascade] on_llm_error must be 'degrade' or 'fail'")
        cfg.on_llm_error = casc["on_llm_error"]
    try:
        cfg.build_router()
    except ValueError as e:
        raise ConfigError(f"{source}: [router] {e}") from None
    return cfg


def load_config(path: str | Path) -> CascadeConfig:
    """Read a ``.toml``, ``.yaml``/``.yml`` or ``.json`` config file.

    Raises:
        ConfigError: missing file, parse error or invalid content, naming the file.
    """
    if path is None:
        raise ConfigError("no config path given")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        if path.suffix == ".toml":
            d = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            d = json.loads(text)
        else:
            raise ConfigError(f"{path}: config must be .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: cannot parse: {e}") from None
    except Exception as e:  # yaml.YAMLError
        raise ConfigError(f"{path}: cannot parse: {e}") from None
    return config_from_dict(d, source=str(path))


def build_cascade(cfg: CascadeConfig, seed: int = 0):
    """Open both tiers and return a ready :class:`cascade_router.cascade.Cascade`."""
    from .cascade import Cascade

    router = cfg.build_router(seed=seed)
    slm = cfg.slm.open()
    try:
        llm = cfg.llm.open()
    except Exception:
        slm.close()
        raise
    return Cascade(
        slm, llm, router, slm_price=cfg.slm.price_or_default(), llm_price=cfg.llm.price_or_default(),
        max_tokens=cfg.max_tokens, on_llm_error="raise" if cfg.on_llm_error == "fail" else "degrade",
    )
