"""The one error tree (apitokenproxy/errors.py): every exception of the package is in it,
and every upstream failure names its metrics label."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import aiohttp
import pytest

import apitokenproxy
from apitokenproxy import errors
from apitokenproxy.errors import (
    ApitokenproxyError,
    BadRequest,
    TooManyInFlight,
    UpstreamBusy,
    UpstreamError,
    UpstreamInvalid,
    UpstreamRefused,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from apitokenproxy.live import Live, Settings, UpstreamLimits
from apitokenproxy.proxy.pool import UpstreamPool
from apitokenproxy.proxy.upstream import translate

PACKAGE = Path(apitokenproxy.__file__).resolve().parent


def _modules() -> list[str]:
    found = pkgutil.walk_packages(apitokenproxy.__path__, "apitokenproxy.")
    # __main__ runs the command line when imported.
    return sorted(m.name for m in found if not m.name.endswith(".__main__"))


def _exceptions() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for name in _modules():
        for _, value in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("apitokenproxy"):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return [classes[k] for k in sorted(classes)]


EXCEPTIONS = _exceptions()


def test_the_walk_finds_the_exceptions_outside_errors_py() -> None:
    # Without these the walk could find only errors.py and the checks below prove nothing.
    found = {f"{e.__module__}.{e.__name__}" for e in EXCEPTIONS}
    assert {"apitokenproxy.proxy.fastlane._Stop", "apitokenproxy.proxy.upstream._Stop"} <= found
    assert len(EXCEPTIONS) > 30


@pytest.mark.parametrize("exception", EXCEPTIONS, ids=lambda e: e.__qualname__)
def test_every_exception_descends_from_the_root(exception: type[BaseException]) -> None:
    assert issubclass(exception, ApitokenproxyError)


@pytest.mark.parametrize("exception", EXCEPTIONS, ids=lambda e: e.__qualname__)
def test_every_public_exception_lives_in_errors_py(exception: type[BaseException]) -> None:
    # Private ones are signals a module raises and catches itself.
    assert exception.__module__ == "apitokenproxy.errors" or exception.__name__.startswith("_")


@pytest.mark.parametrize(
    ("exception", "label", "status"),
    [
        (TooManyInFlight, "client_limit", 429),
        (UpstreamBusy, "pool_exhausted", 503),
        (UpstreamRefused, "refused", 502),
        (UpstreamReset, "reset", 502),
        (UpstreamInvalid, "invalid", 502),
        (UpstreamTimeout, "timeout", 504),
    ],
)
def test_each_upstream_error_has_its_label(
    exception: type[UpstreamError], label: str, status: int
) -> None:
    error = exception("x")
    assert (error.label, error.status) == (label, status)


@pytest.mark.parametrize(
    ("foreign", "label"),
    [
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(), "refused"),
        (aiohttp.ServerDisconnectedError(), "reset"),
        (aiohttp.ClientOSError(), "reset"),
        (aiohttp.ClientPayloadError("cut"), "invalid"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v,
)
def test_a_foreign_failure_becomes_the_upstream_error_of_its_label(
    foreign: BaseException, label: str
) -> None:
    error = translate(foreign)
    assert isinstance(error, UpstreamError) and error.label == label


async def test_the_pool_counts_failures_by_label() -> None:
    limits = UpstreamLimits(connect_timeout=1, read_timeout=1)
    pool = UpstreamPool("127.0.0.1", 9, limit=1, live=Live(Settings(upstream=limits)))
    for error in (
        UpstreamReset("r"),
        UpstreamReset("r"),
        UpstreamTimeout("t"),
        TooManyInFlight("c"),
        BadRequest("a sink refused a head"),  # not the upstream's own: counted as invalid
    ):
        pool.failed(error)
    assert pool.failures == {"reset": 2, "timeout": 1, "client_limit": 1, "invalid": 1}


def _labelled() -> set[type[UpstreamError]]:
    found: set[type[UpstreamError]] = set()
    todo: list[type[UpstreamError]] = [UpstreamError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "label" in vars(cls):
            found.add(cls)
    return found


def test_the_label_table_names_every_labelled_upstream_error() -> None:
    assert _labelled() == {
        TooManyInFlight,
        UpstreamBusy,
        UpstreamRefused,
        UpstreamReset,
        UpstreamInvalid,
        UpstreamTimeout,
    }


def _raised_names(path: Path) -> set[str]:
    """Names of the package's upstream errors this file calls (builds an error of)."""
    upstream = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, UpstreamError)
    }
    return {
        node.func.id
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id in upstream
    }


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_only_labelled_upstream_errors_are_raised(path: Path) -> None:
    # UpstreamError and UpstreamUnavailable are groups: an instance would have no label.
    unlabelled = {n for n in _raised_names(path) if "label" not in dir(getattr(errors, n))}
    assert not unlabelled, f"{path.relative_to(PACKAGE)} builds {unlabelled}"


def test_an_unlabelled_group_has_no_label() -> None:
    # What the check above relies on: the groups declare the label but set none.
    assert "label" not in dir(UpstreamUnavailable)
    assert "label" not in dir(UpstreamError)


def test_the_json_shape_is_unchanged() -> None:
    response = UpstreamRefused("no").to_response()
    assert response.status == 502
    assert response.body == (
        b'{"status": 502, "error": "upstream_unavailable", "message": "no", "errorMessages": ["no"]}'
    )
