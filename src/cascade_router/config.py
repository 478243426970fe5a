"""Explicit, serialisable configuration of a cascade: tiers, the gate after each, and options.

The same file is accepted by ``ask``, ``eval`` and ``serve`` (TOML, YAML or JSON). Two tiers keep
their historical shape (tier names ``slm`` and ``llm``; ``[router]`` is the gate after ``slm``)::

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
    timeout_s = 30                  # seconds for a reply
    connect_timeout_s = 3           # seconds to connect
    retries = 2
    parallel = 4                    # calls at once on this tier (llama.cpp slots in-process)
    queue_timeout_s = 120           # seconds a call waits for a free slot, then the tier fails

    [router]
    name = "seed-v1"                # or: path = "router.json"; or: kind + params (see routers)

    [cascade]
    max_tokens = 24
    on_llm_error = "degrade"        # or "fail" (serve answers 503)
    early_escalation = true         # stop a tier once its gate is sure to escalate

N tiers are an array of tables; each takes ``name``, ``model``, the fields above and an
optional ``router`` (a preset, ``signal:NAME:T``, a router ``.json`` path, or a table) that is
the gate after that tier. A ``router`` on the last tier is the abstain gate::

    [[tiers]]
    name = "small"
    model = "smollm2-135m"
    router = "seed-v1"

    [[tiers]]
    name = "large"
    model = "gemma3-270m"

A tier other than the last without a ``router`` gets ``seed-v1``. Relative paths (router files,
GGUF files) resolve against the config file's folder.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .models.registry import DEFAULT_LLM, DEFAULT_SLM, LazyBackend, load_model, parse_spec
from .routers import Router, get_router, router_from_dict
from .tiers import ENDPOINT_PARALLEL, CircuitBreaker, Tier, TierPrice, TierSlots, check_tier_names

#: The gate after a tier whose config names none (the two-tier default too).
DEFAULT_ROUTER = "seed-v1"

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
    """One tier: its name, the model spec and how to open it (see
    :func:`cascade_router.models.registry.load_model`), its price, and the gate after it.

    ``router`` is the gate after this tier (a name/path string or a router table); None means
    :data:`DEFAULT_ROUTER` for a tier that is not the last, no abstain gate for the last.
    """

    model: str
    name: str | None = None
    router: str | dict | None = None
    family: str | None = None
    threads: int | None = None
    n_ctx: int = 4096
    top_k: int = 5
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 30.0
    connect_timeout_s: float = 3.0
    retries: int = 2
    parallel: int | None = None
    queue_timeout_s: float | None = 120.0
    logprobs: bool | str = "auto"
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0
    price: TierPrice | None = None

    def price_or_default(self) -> TierPrice:
        """The configured price, else the illustrative default for embedded models, else free."""
        return self.price or DEFAULT_PRICES.get(self.model, TierPrice())

    def open(self, lazy: bool = False):
        """Open the backend (loads a local model; seconds). Raises what
        :func:`~cascade_router.models.registry.load_model` raises. ``lazy``: an in-process model
        loads on its first call instead (:class:`~cascade_router.models.registry.LazyBackend`)."""
        if lazy and parse_spec(self.model)[0] != "endpoint":
            return LazyBackend(self.model, family=self.family, threads=self.threads, n_ctx=self.n_ctx, top_k=self.top_k,
                               parallel=self.parallel or 1, loader=lambda spec, **kw: load_model(spec, **kw))  # this module's (tests patch it)
        return load_model(
            self.model, family=self.family, threads=self.threads, n_ctx=self.n_ctx, top_k=self.top_k,
            api_key_env=self.api_key_env, timeout_s=self.timeout_s, retries=self.retries, logprobs=self.logprobs,
            parallel=self.parallel or 1, connect_timeout_s=self.connect_timeout_s,
        )

    def slots(self, backend=None) -> TierSlots:
        """The tier's pool of call slots: ``parallel`` (default: the opened ``backend``'s own
        llama.cpp slots, 1, for an in-process model; :data:`~cascade_router.tiers.ENDPOINT_PARALLEL`
        otherwise), ``queue_timeout_s``."""
        own = vars(backend).get("parallel") if hasattr(backend, "__dict__") else None
        n = self.parallel or (own if isinstance(own, int) and own >= 1 else ENDPOINT_PARALLEL)
        return TierSlots(n, self.queue_timeout_s)


def build_router(spec: str | dict, seed: int = 0, source: str = "router") -> Router:
    """A router from a config value: a name/path string, ``{"name"}``, ``{"path"}`` or a
    router dict (``kind`` + ``params``). Raises ValueError listing valid names."""
    if isinstance(spec, dict):
        if "name" in spec:
            return get_router(spec["name"], seed=seed)
        if "path" in spec:
            return get_router(str(spec["path"]), seed=seed)
        return router_from_dict(spec, source=source)
    return get_router(spec, seed=seed)


def router_label(spec: str | dict | None) -> str:
    """A short name for a configured router (its name, file, or kind)."""
    if spec is None:
        return ""
    if isinstance(spec, str):
        return spec
    return str(spec.get("name") or spec.get("path") or spec.get("kind") or "custom")


@dataclass
class CascadeConfig:
    """The whole cascade configuration: the tiers in order (each with the gate after it) and
    the cascade options. The default is the embedded pair ``slm`` -> ``llm`` gated by seed-v1."""

    tiers: list[TierConfig] = field(default_factory=lambda: [TierConfig(DEFAULT_SLM, name="slm"),
                                                             TierConfig(DEFAULT_LLM, name="llm")])
    max_tokens: int = 24
    on_llm_error: str = "degrade"
    chat_router: str | dict = "signal:mean_logprob:-1.0"  # the first gate for general chat (see README)
    early_escalation: bool = True  # see cascade_router.early
    cache: Any = None  # stages.cache.CacheSettings: the semantic cache, when enabled
    pregate: dict | None = None  # {"path": router .json, "to": tier name}: the pre-generation gate
    source: str | None = field(default=None, compare=False)  # the file it was read from, for messages

    def __post_init__(self) -> None:
        for i, t in enumerate(self.tiers):
            if t.name is None:
                t.name = f"tier{i + 1}"

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def first(self) -> TierConfig:
        """The first tier (the ``slm`` of a two-tier cascade)."""
        return self.tiers[0]

    @property
    def last(self) -> TierConfig:
        """The last tier (the ``llm`` of a two-tier cascade)."""
        return self.tiers[-1]

    @property
    def legacy_pair(self) -> bool:
        """True for the historical two-tier shape: tiers named ``slm`` and ``llm``, no abstain gate."""
        return self.names == ["slm", "llm"] and self.last.router is None

    def gate_spec(self, i: int) -> str | dict | None:
        """The router spec of the gate after tier ``i`` (default filled in; None: no gate)."""
        r = self.tiers[i].router
        if r is None and i < len(self.tiers) - 1:
            return DEFAULT_ROUTER
        return r

    def build_gates(self, seed: int = 0) -> list[Router | None]:
        """One router per gate (see :meth:`gate_spec`). Raises ValueError naming the tier."""
        out: list[Router | None] = []
        for i, t in enumerate(self.tiers):
            spec = self.gate_spec(i)
            if spec is None:
                continue
            try:
                r = build_router(spec, seed=seed, source=f"tier {t.name} router")
            except ValueError as e:
                raise ValueError(f"tier {t.name!r} router: {e}") from None
            if r.kind == "embedding-logistic":
                raise ValueError(f"tier {t.name!r} router {router_label(spec)!r} is a pre-generation router (it reads "
                                 "the question embedding, not a tier's signals): use it in a [pregate] section")
            out.append(r)
        return out

    def build_router(self, seed: int = 0) -> Router:
        """The gate after the first tier (the router of a two-tier cascade)."""
        return self.build_gates(seed)[0]

    @property
    def router_label(self) -> str:
        """A short name for the first gate's router."""
        return router_label(self.gate_spec(0)) if len(self.tiers) > 1 else ""

    def gate_labels(self) -> list[str]:
        """A short name for every gate, in order."""
        return [router_label(self.gate_spec(i)) for i in range(len(self.tiers)) if self.gate_spec(i) is not None]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/TOML-ready)."""
        return asdict(self)


#: Tier fields that take no null (JSON ``null``, YAML ``~``): their defaults are numbers.
_NOT_NULL = ("n_ctx", "top_k", "retries", "timeout_s", "connect_timeout_s", "breaker_failures",
             "breaker_cooldown_s", "logprobs")


def _check_tier_types(d: dict, where: str) -> None:
    def bad(field: str, want: str) -> None:
        raise ConfigError(f"{where} {field} must be {want}, got {d[field]!r}")

    for key in _NOT_NULL:
        if key in d and d[key] is None:
            raise ConfigError(f"{where} {key} must not be null (leave it out for the default)")

    if not isinstance(d.get("model"), str) or not d["model"].strip():
        bad("model", "a non-empty string (embedded name, .gguf path or MODEL@URL)")
    for key, lo, hi in (("threads", 1, 1024), ("n_ctx", 64, 10_000_000), ("top_k", 1, 20), ("retries", 0, 20),
                        ("parallel", 1, 256)):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            bad(key, f"an integer in [{lo}, {hi}]")
    for key in ("timeout_s", "connect_timeout_s", "queue_timeout_s"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e6):
            bad(key, "a number of seconds > 0")
    if d.get("family") not in (None, "chat", "base"):
        bad("family", "'chat' or 'base'")
    v = d.get("breaker_failures")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000):
        bad("breaker_failures", "an integer in [1, 1000]")
    v = d.get("breaker_cooldown_s")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 86400):
        bad("breaker_cooldown_s", "a number of seconds in (0, 86400]")
    if "logprobs" in d and d["logprobs"] not in (True, False, "auto"):
        bad("logprobs", "true, false or \"auto\"")
    if d.get("api_key_env") is not None and not isinstance(d["api_key_env"], str):
        bad("api_key_env", "the NAME of an environment variable (a string)")


def _check_router(r: Any, where: str) -> str | dict:
    if isinstance(r, Mapping):
        extra = set(r) - {"name", "path", "kind", "params", "state"}
        if extra:
            raise ConfigError(f"{where} unknown field(s) {sorted(extra)}; valid: name, path, or kind + params")
        for key in ("name", "path"):
            if key in r and not isinstance(r[key], str):
                raise ConfigError(f"{where} {key} must be a string, got {r[key]!r}")
        return dict(r)
    if not isinstance(r, str):
        raise ConfigError(f"{where} must be a name, a path or a table, got {r!r}")
    return r


def _resolve_path(value: str, base: Path | None) -> str:
    """``value`` resolved against ``base`` when it is a relative path."""
    if not value or "@" in value:
        return value
    value = str(Path(value).expanduser())
    if base is None or Path(value).is_absolute():
        return value
    return str(base / value)


def _resolve_router(r: str | dict, base: Path | None) -> str | dict:
    if isinstance(r, str) and r.strip().endswith(".json"):
        return _resolve_path(r.strip(), base)
    if isinstance(r, dict):
        for key in ("path", "name"):
            if isinstance(r.get(key), str) and (key == "path" or r[key].strip().endswith(".json")):
                return dict(r, **{key: _resolve_path(r[key].strip(), base)})
    return r


def _tier(d: Any, where: str, src: str, base: Path | None, allow: frozenset = frozenset()) -> TierConfig:
    if isinstance(d, str):
        d = {"model": d}
    if not isinstance(d, Mapping) or "model" not in d:
        raise ConfigError(f"{src}: {where} needs a 'model' field (embedded name, .gguf path or MODEL@URL)")
    known = {f.name for f in fields(TierConfig)} - {"name", "router"} | allow
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"{src}: {where} unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
    d = dict(d)
    _check_tier_types(d, f"{src}: {where}")
    if d["model"].strip().endswith(".gguf"):
        d["model"] = _resolve_path(d["model"].strip(), base)
    if d.get("router") is not None:
        d["router"] = _resolve_router(_check_router(d["router"], f"{src}: {where} router"), base)
    if "name" in d:
        try:
            check_tier_names([d["name"]], where=f"{src}: {where}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if d.get("price") is not None:
        p = d["price"]
        pk = {f.name for f in fields(TierPrice)}
        # "[slm]" -> "[slm.price]"; "[[tiers]] #2 (medium)" -> "[[tiers]] #2 (medium) price"
        pw = f"{where[:-1]}.price]" if where.startswith("[") and where.endswith("]") else f"{where} price"
        if not isinstance(p, Mapping):
            raise ConfigError(f"{src}: {pw} must be a table of {sorted(pk)}")
        if set(p) - pk:
            raise ConfigError(f"{src}: {pw} unknown field(s) {sorted(set(p) - pk)}; valid: {sorted(pk)}")
        try:
            bad = [k for k, v in p.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise ValueError(f"{bad[0]} must be a number of dollars, got {p[bad[0]]!r}")
            d["price"] = TierPrice(**{k: float(v) for k, v in p.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{src}: {pw} {e}") from None
    return TierConfig(**d)


_SECTIONS = ("tiers", "slm", "llm", "router", "cascade", "cache", "pregate")


def _cache_section(c: Any, source: str, base: Path | None):
    """The ``[cache]`` section as :class:`~cascade_router.stages.cache.CacheSettings`."""
    from .stages.cache import CacheSettings

    if not isinstance(c, Mapping):
        raise ConfigError(f"{source}: [cache] must be a table (path, threshold, ttl, max_entries, embedder, redis_url)")
    known = {f.name for f in fields(CacheSettings)}
    bad = set(c) - known
    if bad:
        raise ConfigError(f"{source}: [cache] unknown field(s) {sorted(bad)}; valid: {sorted(known)}")
    c = dict(c)
    for key in ("path", "embedder", "redis_url"):
        if key in c and not isinstance(c[key], str):
            raise ConfigError(f"{source}: [cache] {key} must be a string, got {c[key]!r}")
    for key in ("threshold", "ttl"):
        if key in c and (isinstance(c[key], bool) or not isinstance(c[key], (int, float))):
            raise ConfigError(f"{source}: [cache] {key} must be a number, got {c[key]!r}")
    if "path" in c:
        c["path"] = _resolve_path(c["path"], base)
    try:
        return CacheSettings(**c)
    except ValueError as e:
        raise ConfigError(f"{source}: [cache] {e}") from None


def _pregate_section(p: Any, source: str, base: Path | None, cfg: "CascadeConfig") -> dict:
    """The ``[pregate]`` section: ``path`` (a router saved by ``calibrate --router pregen``) and
    ``to`` (the tier a skipped question starts at; default the last)."""
    if not isinstance(p, Mapping) or not isinstance(p.get("path"), str):
        raise ConfigError(f"{source}: [pregate] must be a table with path = \"ROUTER.json\" (and optionally to = \"TIER\")")
    bad = set(p) - {"path", "to"}
    if bad:
        raise ConfigError(f"{source}: [pregate] unknown field(s) {sorted(bad)}; valid: path, to")
    to = p.get("to", cfg.last.name)
    if to not in cfg.names[1:]:
        raise ConfigError(f"{source}: [pregate] to must name a tier after the first ({', '.join(cfg.names[1:])}), got {to!r}")
    out = {"path": _resolve_path(p["path"], base), "to": to}
    try:
        r = get_router(out["path"])
    except ValueError as e:
        raise ConfigError(f"{source}: [pregate] {e}") from None
    if r.kind != "embedding-logistic":
        raise ConfigError(f"{source}: [pregate] {out['path']} is a {r.kind!r} router; a pre-generation gate needs one "
                          "made by `calibrate --router pregen`")
    if not r.get_state_dim():
        raise ConfigError(f"{source}: [pregate] {out['path']} holds no fitted state; make it with `calibrate --router pregen`")
    return out


def config_from_dict(d: Mapping[str, Any], source: str = "config", base_dir: str | Path | None = None) -> CascadeConfig:
    """Validate and build a :class:`CascadeConfig` from a parsed file.

    Args:
        d: the parsed file.
        source: the file name, for messages.
        base_dir: relative router and GGUF paths resolve against it (the config file's folder).

    Raises:
        ConfigError: unknown sections or fields, bad values, duplicate tier names, ``[[tiers]]``
            mixed with ``[slm]``/``[llm]``/``[router]``; the message names ``source`` and the field.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: top level must be a table/mapping")
    base = Path(base_dir) if base_dir is not None else None
    unknown = set(d) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; valid: {', '.join(_SECTIONS)}")
    cfg = CascadeConfig(source=source)
    if "tiers" in d:
        mixed = sorted({"slm", "llm", "router"} & set(d))
        if mixed:
            raise ConfigError(f"{source}: [[tiers]] cannot be mixed with {', '.join(f'[{m}]' for m in mixed)}; "
                              "give each tier's gate as its 'router' field")
        ts = d["tiers"]
        if not isinstance(ts, list) or not ts:
            raise ConfigError(f"{source}: tiers must be a non-empty array of tables ([[tiers]])")
        tiers = []
        for i, t in enumerate(ts):
            where = f"[[tiers]] #{i + 1}" + (f" ({t['name']})" if isinstance(t, Mapping) and isinstance(t.get("name"), str) else "")
            if not isinstance(t, Mapping) or "name" not in t:
                raise ConfigError(f"{source}: {where} needs a 'name' field")
            tiers.append(_tier(t, where, source, base, allow=frozenset({"name", "router"})))
        try:
            check_tier_names([t.name for t in tiers], where=f"{source}: [[tiers]]")
        except ValueError as e:
            raise ConfigError(str(e)) from None
        cfg.tiers = tiers
    else:
        if "slm" in d:
            cfg.tiers[0] = _tier(d["slm"], "[slm]", source, base)
            cfg.tiers[0].name = "slm"
        if "llm" in d:
            cfg.tiers[1] = _tier(d["llm"], "[llm]", source, base)
            cfg.tiers[1].name = "llm"
        if "router" in d:
            cfg.tiers[0].router = _resolve_router(_check_router(d["router"], f"{source}: [router]"), base)
    casc = d.get("cascade") or {}
    if not isinstance(casc, Mapping):
        raise ConfigError(f"{source}: [cascade] must be a table with max_tokens and/or on_llm_error")
    bad = set(casc) - {"max_tokens", "on_llm_error", "chat_router", "early_escalation"}
    if bad:
        raise ConfigError(f"{source}: [cascade] unknown field(s) {sorted(bad)}; valid: max_tokens, on_llm_error, chat_router, early_escalation")
    if "chat_router" in casc:
        cfg.chat_router = _resolve_router(_check_router(casc["chat_router"], f"{source}: [cascade] chat_router"), base)
        try:
            build_router(cfg.chat_router, source=f"{source}: [cascade] chat_router")
        except ValueError as e:
            raise ConfigError(f"{source}: [cascade] chat_router: {e}") from None
    if "max_tokens" in casc:
        mt = casc["max_tokens"]
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise ConfigError(f"{source}: [cascade] max_tokens must be a positive integer, got {mt!r}")
        cfg.max_tokens = mt
    if "early_escalation" in casc:
        if not isinstance(casc["early_escalation"], bool):
            raise ConfigError(f"{source}: [cascade] early_escalation must be true or false, got {casc['early_escalation']!r}")
        cfg.early_escalation = casc["early_escalation"]
    if "on_llm_error" in casc:
        if casc["on_llm_error"] not in ("degrade", "fail"):
            raise ConfigError(f"{source}: [cascade] on_llm_error must be 'degrade' or 'fail'")
        cfg.on_llm_error = casc["on_llm_error"]
    if "cache" in d:
        cfg.cache = _cache_section(d["cache"], source, base)
    if "pregate" in d:
        cfg.pregate = _pregate_section(d["pregate"], source, base, cfg)
    for i, t in enumerate(cfg.tiers):
        spec = cfg.gate_spec(i)
        if spec is None:
            continue
        where = "[router]" if "tiers" not in d else f"[[tiers]] {t.name} router"
        try:
            build_router(spec, source=f"{source}: {where}")
        except ValueError as e:  # a router table's message already starts with the source
            msg, prefix = str(e), f"{source}: {where}"
            raise ConfigError(msg if msg.startswith(prefix) else f"{prefix} {msg}") from None
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
    return config_from_dict(d, source=str(path), base_dir=path.resolve().parent)


def build_cascade(cfg: CascadeConfig, seed: int = 0, lazy: bool = False):
    """Open every tier and return a ready :class:`cascade_router.cascade.Cascade`.

    Two tiers with the same model spec and options share one backend (one model in memory).
    ``lazy``: in-process models load on their first call (a cache hit never loads them).

    Raises:
        ConfigError: a bad router, or a tier's model spec that is not a model (unknown name,
            missing GGUF file), naming the config file and the tier. ModelNotAvailable,
            ModelError: a model that cannot be loaded. Tiers already opened are closed first.
    """
    from .cascade import Cascade

    where = f"{cfg.source}: " if cfg.source else ""
    try:
        gates = cfg.build_gates(seed=seed)
    except ValueError as e:
        raise ConfigError(f"{where}{e}") from None
    with contextlib.ExitStack() as opened:  # on any error, whatever was opened is closed
        backends: dict[str, Any] = {}
        pools: dict[str, TierSlots] = {}  # one pool of call slots per backend
        tiers: list[Tier] = []
        for t in cfg.tiers:
            key = json.dumps({k: v for k, v in asdict(t).items() if k not in ("name", "router", "price")},
                             sort_keys=True, default=str)
            if key not in backends:
                try:
                    backends[key] = t.open(lazy=lazy)
                except (ValueError, FileNotFoundError) as e:
                    raise ConfigError(f"{where}tier {t.name!r} model {t.model!r}: {e}") from None
                opened.callback(backends[key].close)
                pools[key] = t.slots(backends[key])
            tiers.append(Tier(t.name, backends[key], t.price_or_default(),
                              {"model": t.model, "family": t.family, "threads": t.threads},
                              CircuitBreaker(t.breaker_failures, t.breaker_cooldown_s), pools[key]))
        cache = None
        if cfg.cache is not None:
            from .stages.cache import CacheError, open_cache

            try:
                cache = open_cache(cfg.cache)
            except (CacheError, ValueError) as e:
                raise ConfigError(f"{where}[cache] {e}") from None
            opened.callback(cache.close)
        pregate = None
        if cfg.pregate is not None:
            from .embeddings import EmbeddingError, load_embedder
            from .stages.pregate import PreGate

            router = get_router(cfg.pregate["path"])
            try:
                pregate = PreGate(router, load_embedder(router.embedder), cfg.pregate["to"], Path(cfg.pregate["path"]).name)
            except (EmbeddingError, ValueError) as e:
                raise ConfigError(f"{where}[pregate] {e}") from None
        cascade = Cascade(tiers, gates, max_tokens=cfg.max_tokens,
                          on_error="raise" if cfg.on_llm_error == "fail" else "degrade",
                          gate_labels=cfg.gate_labels(), cache=cache, pregate=pregate,
                          chat_gate=build_router(cfg.chat_router, seed=seed) if len(cfg.tiers) > 1 else None,
                          chat_gate_label=router_label(cfg.chat_router), early_escalation=cfg.early_escalation)
        opened.pop_all()  # success: the cascade owns them now (Cascade.close)
    return cascade
