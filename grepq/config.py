"""The configuration machinery: defaults → YAML file(s) → command-line options → ``key.sub=value`` overrides,
strict, validated and saved. Each schema (:class:`Schema`) is declared next to its code (``train/schema.py``,
``eval/schema.py``); each key names its source (:data:`SOURCES`). This module imports nothing of grepq.

* Strict: an unknown key, a wrong type or a value outside the choices is an error naming the key ("did you mean").
* Overrides ``key.sub=value`` are parsed with ``yaml.safe_load``; a float key also accepts ``1e-5``.
* A YAML file may start with ``base: other.yaml`` (relative to it, or a preset name), applied first.
* A bare name is a preset in the repository's ``configs/`` or ``grepq/configs/`` (the same files, package data).
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

__all__ = [
    "ConfigError", "Key", "Schema", "SOURCES",
    "defaults", "load_config", "set_values", "parse_override", "validate", "flatten",
    "dump_config", "resolve_config_path", "describe", "suggest",
]

PRESET_DIRS = (Path(__file__).resolve().parent.parent / "configs", Path(__file__).resolve().parent / "configs")


class ConfigError(ValueError):
    """A configuration is invalid: an unknown key, a wrong type, a bad value or an unreadable file."""


#: Where a key's default comes from: the paper, the official code, the authors' answers, or grepq's own choice
#: (where the paper and the official code are silent, or for where/how to run, which changes no result).
SOURCES = ("paper", "official", "authors", "grepq")


@dataclass(frozen=True)
class Key:
    """One configuration key: default, accepted type(s), allowed values, a note (symbol), ``source`` (one of
    :data:`SOURCES`). ``items``: a list key's item type; a string value is then split on commas ("50,100")."""

    default: Any
    type: Union[type, Tuple[type, ...]]
    doc: str
    choices: Optional[Tuple[Any, ...]] = None
    nullable: bool = False
    source: Optional[str] = None
    items: Optional[type] = None


def _schema_items(tree: Dict[str, Any], prefix: str = ""):
    for name, node in tree.items():
        full = f"{prefix}{name}"
        if isinstance(node, Key):
            yield full, node
        else:
            yield from _schema_items(node, full + ".")


class Schema:
    """A configuration schema: ``name`` (shown in errors), ``tree`` (nested dicts of :class:`Key`) and ``check(cfg)``,
    the whole-configuration checks (values that must agree) raising :class:`ConfigError`."""

    def __init__(self, name: str, tree: Dict[str, Any], check: Optional[Callable[[Dict[str, Any]], None]] = None):
        self.name, self.tree, self.check = name, tree, check
        self.flat: Dict[str, Key] = dict(_schema_items(tree))
        bad = [k for k, v in self.flat.items() if v.source is not None and v.source not in SOURCES]
        if bad:
            raise ValueError(f"schema {name}: keys {bad} name a source outside {SOURCES}")


def defaults(schema: Schema) -> Dict[str, Any]:
    """The default configuration (the paper's values) as a nested dict."""

    def build(node):
        return {k: (copy.deepcopy(v.default) if isinstance(v, Key) else build(v)) for k, v in node.items()}

    return build(schema.tree)


def describe(key: str, schema: Schema) -> str:
    """The note of a key (its symbol and source)."""
    spec = _key(key, schema)
    return f"[{spec.source}] {spec.doc}" if spec.source else spec.doc


def suggest(key: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the valid key closest to ``key`` (or its last dotted part), or ``""``."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if not close:  # a misspelt last part of a dotted key
        last = key.rsplit(".", 1)[-1]
        cands = {k.rsplit(".", 1)[-1]: k for k in valid}
        near = difflib.get_close_matches(last, list(cands), n=1, cutoff=0.6)
        close = [cands[near[0]]] if near else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _key(key: str, schema: Schema, where: str = "") -> Key:
    flat = schema.flat
    if key in flat:
        return flat[key]
    src = f" (in {where})" if where else ""
    if any(k.startswith(key + ".") for k in flat):
        sub = sorted(k for k in flat if k.startswith(key + "."))
        raise ConfigError(f"{key!r}{src} is a section, not a value; set one of its keys: {', '.join(sub)}")
    raise ConfigError(f"unknown configuration key {key!r}{src}{suggest(key, flat)}")


def _split_items(key: str, spec: Key, value: Any, src: str) -> Any:
    """A list key with ``items``: "8,16" -> [8, 16]; every item converted to / checked as ``items``."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        return value
    out = []
    for v in value:
        try:
            if isinstance(v, bool) or (spec.items is int and isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(spec.items(v) if isinstance(v, (str, int, float)) else v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}{src}: expected a list of {spec.items.__name__}, got the item {v!r}") from None
        if not isinstance(out[-1], spec.items):
            raise ConfigError(f"{key}{src}: expected a list of {spec.items.__name__}, got the item {v!r}")
    return out


def _coerce(key: str, spec: Key, value: Any, where: str = "") -> Any:
    """Check (and lightly convert) a value for ``key``; raise :class:`ConfigError` naming the key."""
    src = f" (in {where})" if where else ""
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{key}{src}: expected a value of type {_type_name(spec.type)}, got null")
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if spec.items is not None:
        value = _split_items(key, spec, value, src)
    if float in types and isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{key}{src}: expected {_type_name(spec.type)}, got the boolean {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{key}{src}: expected {_type_name(spec.type)}, got {type(value).__name__} {value!r}")
    if float in types and isinstance(value, int):
        value = float(value)
    if spec.choices is not None:
        wrong = [v for v in (value if isinstance(value, list) else [value]) if v not in spec.choices]
        if wrong:
            closest = suggest(str(wrong[0]), [str(c) for c in spec.choices]).replace("did you mean", "closest")
            raise ConfigError(f"{key}{src}: expected {'items in' if isinstance(value, list) else 'one of'} "
                              f"{list(spec.choices)}, got {wrong[0]!r}{closest}")
    return value


def _type_name(t) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(x.__name__ for x in types)


def flatten(cfg: Dict[str, Any], prefix: str = "", schema: Optional[Schema] = None) -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; with ``schema``, a mapping that is one key's value (e.g. a loader's
    options) stays a value."""
    out: Dict[str, Any] = {}
    leaves = schema.flat if schema is not None else {}
    for k, v in cfg.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in leaves:
            out.update(flatten(v, f"{prefix}{k}.", schema))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set(cfg: Dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def set_values(cfg: Dict[str, Any], values: Mapping[str, Any], where: str = "command line", *,
               schema: Schema) -> Dict[str, Any]:
    """Set ``{"key.sub": value}`` (dotted keys, Python values, e.g. from command-line options) strictly; returns
    ``cfg`` (modified in place)."""
    for key, value in values.items():
        key, value = _into_mapping(cfg, key, value, schema)
        _set(cfg, key, _coerce(key, _key(key, schema, where), value, where))
    return cfg


def _into_mapping(cfg: Dict[str, Any], key: str, value: Any, schema: Schema) -> Tuple[str, Any]:
    """``datasets.clive.root=/x`` where ``datasets`` is a mapping-valued key: that key, with the entry set."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        leaf = ".".join(parts[:i])
        if leaf in schema.flat and schema.flat[leaf].type is dict:
            node = cfg
            for p in parts[:i]:
                node = node[p]
            whole = copy.deepcopy(node) if isinstance(node, dict) else {}
            inner = whole
            for p in parts[i:-1]:
                if inner.get(p) is None:
                    inner[p] = {}
                if not isinstance(inner[p], dict):
                    raise ConfigError(f"{key}: {p!r} holds {inner[p]!r}, not a mapping")
                inner = inner[p]
            inner[parts[-1]] = value
            return leaf, whole
    return key, value


def _merge(cfg: Dict[str, Any], update: Dict[str, Any], where: str, schema: Schema) -> None:
    """Apply a nested dict of values onto ``cfg`` strictly (every key must exist in the schema)."""
    set_values(cfg, flatten(update, schema=schema), where, schema=schema)
    # sections given as non-dicts ("run: 3") are caught by _key via flatten: "run" is a section
    for key, value in update.items():
        if key in schema.tree and not isinstance(schema.tree[key], Key) and not isinstance(value, dict):
            raise ConfigError(f"{key!r} (in {where}) is a section: expected a mapping, got {value!r}")


def resolve_config_path(name: Union[str, os.PathLike], relative_to: Optional[Path] = None) -> Path:
    """A config file: the path as given (or relative to ``relative_to``), else a preset name in ``configs/``."""
    p = Path(name).expanduser()
    candidates = [p]
    if relative_to is not None and not p.is_absolute():
        candidates.insert(0, relative_to / p)
    for d in PRESET_DIRS:
        candidates += [d / p.name, d / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    presets = sorted({f.name for d in PRESET_DIRS if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"config file {str(name)!r} not found (presets: {', '.join(presets) or 'none found'})")


def _read_yaml(path: Path, chain: Tuple[Path, ...] = ()) -> List[Tuple[Path, Dict[str, Any]]]:
    """The chain of (file, mapping) to apply, bases first."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: circular 'base' chain: {' -> '.join(str(c) for c in chain + (path,))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the YAML file ({type(exc).__name__}: {exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of configuration keys, got {type(data).__name__}")
    base = data.pop("base", None)
    out: List[Tuple[Path, Dict[str, Any]]] = []
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
        out += _read_yaml(resolve_config_path(base, relative_to=path.parent), chain + (path,))
    out.append((path, data))
    return out


def parse_override(text: str) -> Tuple[str, Any]:
    """``"hl.lr=1e-5"`` -> ``("hl.lr", 1e-5)``; the value is parsed with ``yaml.safe_load``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value (e.g. hl.lr=1e-5)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: missing key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse the value ({exc})") from None
    return key, value


def validate(cfg: Dict[str, Any], *, schema: Schema) -> Dict[str, Any]:
    """Whole-config checks: every key present and well typed, and values that must agree with each other."""
    flat = flatten(cfg, schema=schema)
    for key in flat:
        _coerce(key, _key(key, schema), flat[key])
    missing = [k for k in schema.flat if k not in flat]
    if missing:
        raise ConfigError(f"configuration lacks keys {missing}")
    if schema.check is not None:
        schema.check(cfg)
    return cfg


def load_config(path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = (), *, schema: Schema,
                values: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Defaults, then the YAML file (and its ``base`` chain), then ``values`` (``{"key.sub": value}``, e.g. from
    command-line options), then ``key=value`` overrides; validated."""
    cfg = defaults(schema)
    if path is not None:
        for file, data in _read_yaml(resolve_config_path(path)):
            _merge(cfg, data, str(file), schema)
    set_values(cfg, dict(values or {}), "command line", schema=schema)
    for text in overrides:
        key, value = parse_override(text)
        set_values(cfg, {key: value}, f"override {text!r}", schema=schema)
    return validate(cfg, schema=schema)


def _scalar_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def dump_config(cfg: Dict[str, Any], comments: bool = True, *, schema: Schema) -> str:
    """The configuration as YAML (one key per line); with ``comments``, each key's note (source, symbol)."""
    flat = schema.flat
    lines: List[str] = []

    def emit(node: Dict[str, Any], prefix: str, indent: int) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            pad = "  " * indent
            if isinstance(v, dict) and key not in flat:
                lines.append(f"{pad}{k}:")
                emit(v, key + ".", indent + 1)
                continue
            block = isinstance(v, dict) and v
            line = f"{pad}{k}:" + ("" if block else f" {_scalar_yaml(v)}")
            if comments and key in flat:
                line += f"  # {describe(key, schema)}"
            lines.append(line)
            if block:
                sub = yaml.safe_dump(v, default_flow_style=None, sort_keys=False, width=1000).rstrip("\n")
                lines.extend(f"{pad}  {s}" for s in sub.split("\n"))

    emit(cfg, "", 0)
    return "\n".join(lines) + "\n"
