"""The package reaches into no private state of aiohttp or prometheus_client.

Issue 19: the seams where the proxy wrote aiohttp's private flags
(``_force_close``, ``_close``, ``_request_in_progress``), read its ``_kwargs``
and ``_server`` or reset ``output_size`` are where its bugs came from, and a
new aiohttp release could break them silently. The lanes now use only
aiohttp's public extension points (``proxy/handoff.py``), the metrics only
prometheus_client's collector API (``ops/histograms.py``). This reads the
source, so a private name coming back fails here, not in production.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import apitokenproxy

PACKAGE = Path(apitokenproxy.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

# What the package once touched, and what else of the two libraries is private.
PRIVATE = [
    "_force_close", "_close", "_request_in_progress", "_request_count", "_kwargs",
    "_server", "_manager", "_runner", "_sites", "_make_server", "output_size",
    "_buckets", "_sum", "_value", "_metrics", "_created", "_lock",
]  # fmt: skip
# ``self._x = ...`` of the package's own classes are its own business: only an
# attribute read or written on something else (``request.writer.output_size``,
# ``handler._force_close``) counts.
_NAMES = "|".join(map(re.escape, PRIVATE))
_FOREIGN = re.compile(r"(?<!self)(?<!cls)\.(" + _NAMES + r")\b")


def test_the_scan_reads_the_package() -> None:
    assert len(SOURCES) > 50
    # Would it see a private read? (The check must be able to fail.)
    assert _FOREIGN.search("if request.writer.output_size > 0:")
    assert _FOREIGN.search("handler._force_close = True")
    assert not _FOREIGN.search("self._server = server")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_state_of_a_library_is_touched(source: Path) -> None:
    found = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if _FOREIGN.search(line.split("#", 1)[0])
    ]
    assert found == []
