"""From YAML text to a checked ``Config``: parse, interpolate, build, check.

``load_config`` reads a file, ``parse_config`` YAML text, ``config_from_dict``
a mapping. Building (``_build``, ``_convert``) follows the dataclasses of
``config/model.py``: unknown keys are rejected, every type and range is checked
(each key's rule from ``config/checks.py``), then the rules between keys
(``_cross_checks``), and all problems are reported at once, each with its key
path (``upstream.product: ...``), in one ``ConfigError``. Strings may use
``${ENV_VAR}`` so secrets stay out of the file; ``$$`` is a literal dollar sign.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import ConfigError
from .checks import rule_of
from .model import Config


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML file; raise ConfigError listing every problem.

    A relative SQLite path is resolved against the file's folder, so every
    command given the same file opens the same database, wherever it runs.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return parse_config(text, environ, base=Path(path).resolve().parent)


def parse_config(
    text: str, environ: Mapping[str, str] | None = None, *, base: Path | None = None
) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from exc
    return config_from_dict({} if data is None else data, environ, base=base)


def config_from_dict(
    data: Any, environ: Mapping[str, str] | None = None, *, base: Path | None = None
) -> Config:
    """Validate a mapping; relative SQLite paths resolve against ``base`` (default:
    the current directory)."""
    problems: list[str] = []
    env = os.environ if environ is None else environ
    config = _build(Config, data, "", problems, env)
    if config is not None:
        problems.extend(_cross_checks(config))
    if problems or config is None:
        raise ConfigError(problems)
    built = typing.cast(Config, config)
    url = resolve_store_url(built.store.url, base or Path.cwd())
    return dataclasses.replace(built, store=dataclasses.replace(built.store, url=url))


def resolve_store_url(url: str, base: Path) -> str:
    """SQLAlchemy's convention: ``sqlite:////abs`` is absolute, ``sqlite:///rel`` is
    relative, here to ``base``; the answer is always absolute (or ``:memory:``)."""
    if not url.startswith("sqlite:///"):
        return url
    path = url.removeprefix("sqlite:///")
    if path == ":memory:" or path.startswith("/"):
        return url
    return "sqlite:///" + str((base / path).resolve())


def _cross_checks(config: Config) -> list[str]:
    problems = []
    tokens = config.tokens
    if tokens.max_validity_months and not (
        0 < tokens.default_validity_months <= tokens.max_validity_months
    ):
        problems.append(
            "tokens.default_validity_months: must be between 1 and "
            f"tokens.max_validity_months ({tokens.max_validity_months})"
        )
    up = config.upstream
    if bool(up.shared_secret_header) != bool(up.shared_secret):
        problems.append(
            "upstream.shared_secret: shared_secret and shared_secret_header must be set together"
        )
    if up.user_header.lower() in ("authorization", "host", "cookie", "connection"):
        problems.append(f"upstream.user_header: {up.user_header} cannot carry the user name")
    smtp = config.notify.smtp
    if bool(smtp.user) != bool(smtp.password):
        problems.append("notify.smtp: user and password must be set together")
    webhook = config.notify.webhook
    if webhook.url and not webhook.secret:
        problems.append("notify.webhook.secret: is required with notify.webhook.url")
    if config.metrics.port and config.metrics.port == config.listen.port:
        problems.append("metrics.port: must differ from listen.port (or be 0 to share it)")
    tls = config.listen.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        problems.append("listen.tls: cert_file and key_file must be set together")
    for key, path in (
        ("listen.tls.cert_file", tls.cert_file),
        ("listen.tls.key_file", tls.key_file),
        ("upstream.ca_file", up.ca_file),
        ("notify.smtp.ca_file", smtp.ca_file),
    ):
        if path and not os.access(path, os.R_OK):
            problems.append(f"{key}: cannot read {path}")
    return problems


_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate(value: str, path: str, problems: list[str], env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in env:
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return env[name]

    return _ENV.sub(replace, value)


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _build(
    cls: type[Any], data: Any, path: str, problems: list[str], env: Mapping[str, str]
) -> Any:
    """Build dataclass ``cls`` from ``data``; record problems instead of stopping at the first."""
    where = path or "the top level"
    if not isinstance(data, dict):
        problems.append(f"{where}: must be a mapping, not {_describe(data)}")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            choices = ", ".join(sorted(known))
            problems.append(f"{path + '.' if path else ''}{key}: unknown key (known: {choices})")
    values: dict[str, Any] = {}
    for name, fld in known.items():
        key_path = f"{path}.{name}" if path else name
        if name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                problems.append(f"{key_path}: is required")
            continue
        reported = len(problems)
        value = _convert(hints[name], data[name], key_path, problems, env)
        if value is _INVALID or len(problems) > reported:
            continue
        rule = rule_of(fld)
        message = rule(value) if rule else None
        if message:
            problems.append(f"{key_path}: {message}")
            continue
        values[name] = value
    try:
        return cls(**values)
    except TypeError:
        return None  # a required key is missing; already reported


_INVALID = object()


def _convert(hint: Any, value: Any, path: str, problems: list[str], env: Mapping[str, str]) -> Any:
    if dataclasses.is_dataclass(hint):
        built = _build(typing.cast(type[Any], hint), value, path, problems, env)
        return _INVALID if built is None else built
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        problems.append(f"{path}: must be one of {', '.join(map(str, choices))}, not {value!r}")
        return _INVALID
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        items = [value] if isinstance(value, str | int | dict) else value
        if not isinstance(items, list):
            problems.append(f"{path}: must be a list, not {_describe(value)}")
            return _INVALID
        out = []
        for i, item in enumerate(items):
            if item_hint is str and not isinstance(item, str):
                problems.append(f"{path}[{i}]: must be a string, not {_describe(item)}")
                return _INVALID
            converted = _convert(item_hint, item, f"{path}[{i}]", problems, env)
            if converted is _INVALID:
                return _INVALID
            out.append(converted)
        return tuple(out)
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{path}: must be true or false, not {value!r}")
        return _INVALID
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{path}: must be a whole number, not {value!r}")
        return _INVALID
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        problems.append(f"{path}: must be a number, not {value!r}")
        return _INVALID
    if hint is str:
        if isinstance(value, str):
            return _interpolate(value, path, problems, env)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{path}: must be a string, not {_describe(value)}")
        return _INVALID
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a bug in this module
