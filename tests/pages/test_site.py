"""The pages' pure parts: the expiry and rotation-grace choices offered, and escaping every
filled-in value."""

from __future__ import annotations

import pytest

from apitokenproxy.pages.site import expiry_choices, grace_choices, preselected_grace, render
from apitokenproxy.tokenapi.service import grace_seconds
from apitokenproxy.tokenapi.validity import effective_months


@pytest.mark.parametrize(
    ("default", "maximum", "choices"),
    [
        (6, 12, [1, 3, 6, 12]),  # the shipped defaults
        (6, 6, [1, 3, 6]),
        (2, 5, [1, 2, 3, 5]),  # the default and the maximum are always offered
        (1, 1, [1]),
        (6, 0, [1, 3, 6, 12, 24, 36]),  # no maximum, but a request cannot ask for "never"
        (0, 0, [1, 3, 6, 12, 24, 36, 0]),  # "never" is the default: offered, last
        (48, 0, [1, 3, 6, 12, 24, 36, 48]),
    ],
)
def test_expiry_choices(default: int, maximum: int, choices: list[int]) -> None:
    assert expiry_choices(default, maximum) == choices
    # Every choice is granted as chosen: the page never offers what the API would cap.
    for months in choices:
        requested = None if months == 0 else months
        assert effective_months(requested, default, maximum) == months


@pytest.mark.parametrize(
    ("maximum", "choices"),
    [
        (86_400, [0, 600, 3_600, 21_600, 86_400]),  # the shipped default: up to a day
        (10_800, [0, 600, 3_600, 10_800]),  # the maximum itself is offered
        (30 * 86_400, [0, 600, 3_600, 21_600, 86_400, 604_800, 2_592_000]),
        (300, [0, 300]),
        (0, [0]),  # graces are off: only "at once"
    ],
)
def test_grace_choices(maximum: int, choices: list[int]) -> None:
    assert grace_choices(maximum) == choices
    # Every choice is granted as chosen, and the API's default is among them.
    for seconds in choices:
        assert grace_seconds(seconds, maximum) == seconds
    assert preselected_grace(maximum) == grace_seconds(None, maximum)
    assert preselected_grace(maximum) in choices


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        ('"><script>alert(1)</script>', "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("o'brien & co", "o&#x27;brien &amp; co"),
        ("{{user}}", "{{user}}"),  # a value is never filled in again
    ],
)
def test_render_escapes_every_value(value: str, expected: str) -> None:
    assert render('<body data-user="{{user}}">{{user}}</body>', {"user": value}) == (
        f'<body data-user="{expected}">{expected}</body>'
    )


def test_every_static_file_ships_as_package_data() -> None:
    """`pip install .` (not editable, as .ci/run installs) must carry the pages."""
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    from apitokenproxy.pages.site import ASSETS

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["apitokenproxy.pages"]
    static = root / "apitokenproxy" / "pages" / "static"
    needed = {*ASSETS, "tokens.html", "manager.html", "forbidden.html"}
    assert needed <= {p.name for p in static.iterdir()}
    for name in needed:
        assert any(fnmatch(f"static/{name}", pattern) for pattern in patterns), name
