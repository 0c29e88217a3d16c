"""No module imports from a layer above it: the folders are the design, and this keeps them so.

cli.py, demo.py, server.py, app.py, components.py    compose everything
proxy/   tokenapi/   pages/                           serve requests
auth/                                                 decide who calls
notify/                                               warn before expiry
store/   ops/                                         remember, record
errors.py   config/     networks.py   live.py   periodic.py   shared by all
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "apitokenproxy"

# What each part may import from the package, besides itself.
SHARED = {"errors", "config", "networks", "live", "periodic"}
ALLOWED = {
    "errors": set(),
    "networks": set(),
    # The one loop every periodic background job runs on.
    "periodic": set(),
    # Validates the networks it reads with the rule that will use them, and raises
    # the error tree's ConfigError.
    "config": {"errors", "networks"},
    # The settings a reload changes, in holders every layer reads.
    "live": {"config", "networks"},
    "store": SHARED,
    "ops": SHARED,
    "auth": SHARED | {"store", "ops"},
    # tokenapi asks proxy/client.py who the client is, and reads bodies at the pace
    # proxy/pacing.py sets: the rules both share.
    "tokenapi": SHARED | {"store", "auth", "ops", "proxy.client", "proxy.pacing"},
    "proxy": SHARED | {"auth", "ops"},
    # Expiry warnings read the store; e-mail addresses are handed in by the composition root.
    "notify": SHARED | {"store"},
    # The pages call the token API over HTTP like curl; they import only its address.
    "pages": SHARED | {"auth", "tokenapi.routes", "proxy.client"},
}


def imports(path: Path) -> set[str]:
    """Every apitokenproxy module this file imports, as dotted names."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("apitokenproxy"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("apitokenproxy"))
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if part not in ALLOWED:
        return  # the composing modules may use everything
    for target in imports(path):
        name = target.removeprefix("apitokenproxy.")
        top = name.split(".")[0]
        allowed = ALLOWED[part] | {part}
        assert (
            top in allowed or name in allowed or any(name.startswith(a + ".") for a in allowed)
        ), f"{path.relative_to(PACKAGE)} imports {target}"


def test_the_layers_cover_every_folder() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders <= set(ALLOWED), folders - set(ALLOWED)
