"""The command line: config checks, operator token commands, serve and demo as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import re
import signal
import socket
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

import apitokenproxy
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.cli import main
from apitokenproxy.tokenapi.validity import valid_until

from ..fakes import JIRA_USERS, FakeUpstream, basic
from ..processes import free_port, serve_config, start, stop, wait_for, write_config

API = "/rest/de.resolution.apitokenauth/latest"


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(write_config(tmp_path))]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_check_config_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstream: {url: nope, product: x}\nlisten: {port: -5}\nextra: 1\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    for key in ("upstream.url:", "upstream.product:", "listen.port:", "extra:"):
        assert key in err


def test_operator_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    assert main(["tokens", "create", "-c", config, "--user-key", "JIRAUSER10100",
                 "--user-name", "alice", "--description", "ci", "--months", "3"]) == 0  # fmt: skip
    created = json.loads(capsys.readouterr().out)
    assert created["plainTextToken"].startswith("atpx_")
    assert created["tokenForUserKey"] == "JIRAUSER10100"
    assert main(["tokens", "create", "-c", config, "--user-key", "k2",
                 "--user-name", "bob", "--description", "x"]) == 0  # fmt: skip
    capsys.readouterr()

    assert main(["tokens", "list", "-c", config]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["tokens", "list", "-c", config, "--user-key", "k2"]) == 0
    assert [t["tokenForUserKey"] for t in json.loads(capsys.readouterr().out)] == ["k2"]

    assert main(["tokens", "revoke", "-c", config, str(created["id"])]) == 0
    assert main(["tokens", "revoke", "-c", config, str(created["id"])]) == 1
    assert main(["tokens", "revoke-all", "-c", config, "--user-key", "k2"]) == 0
    assert "1 token(s)" in capsys.readouterr().out
    assert main(["tokens", "list", "-c", config]) == 0
    assert json.loads(capsys.readouterr().out) == []
    # The plaintext is nowhere in the database file.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.db*"))
    assert created["plainTextToken"].encode() not in raw
    assert created["plainTextToken"].split("_")[2][:32].encode() not in raw


def test_operator_commands_reject_bad_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    assert main(["tokens", "create", "-c", config, "--user-key", "k", "--user-name", "n",
                 "--description", "x", "--months", "0"]) == 2  # fmt: skip
    assert main(["tokens", "create", "-c", config, "--user-key", "k", "--user-name", "n",
                 "--description", "  "]) == 2  # fmt: skip
    assert main(["tokens", "create", "-c", config, "--user-key", "k", "--user-name", "n",
                 "--description", "x", "--allowed-address", "10.0.0.0/33"]) == 2  # fmt: skip
    assert "is not an IP network" in capsys.readouterr().err
    assert main(["tokens", "list", "-c", config]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_operator_creates_a_token_with_a_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    assert main(["tokens", "create", "-c", config, "--user-key", "k", "--user-name", "n",
                 "--description", "ci", "--scope", "read", "--allowed-address", "10.1.2.3/16",
                 "--allowed-address", "2001:db8::/32"]) == 0  # fmt: skip
    created = json.loads(capsys.readouterr().out)
    assert (created["scope"], created["allowedAddresses"]) == (
        "read", ["10.1.0.0/16", "2001:db8::/32"]
    )  # fmt: skip
    assert main(["tokens", "list", "-c", config]) == 0
    assert json.loads(capsys.readouterr().out)[0]["scope"] == "read"


@pytest.mark.slow  # a real process
async def test_serve_runs_until_sigterm_and_flushes_last_accessed(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    config, port = await serve_config(
        aiohttp_server, tmp_path, proxy={"last_accessed_flush_seconds": 3600}
    )
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            resp = await http.post(
                f"{API}/user/token",
                json={"tokenDescription": "t"},
                headers=basic("alice", "alice-pw"),
            )
            token = (await resp.json())["plainTextToken"]
            resp = await http.get(f"{API}/user/token", headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 200
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out
    assert "shutting down" in out
    assert token not in out  # never logged
    with sqlite3.connect(tmp_path / "tokens.db") as db:
        (last_accessed,) = db.execute("SELECT last_accessed FROM tokens").fetchone()
    assert last_accessed > 0  # flushed at shutdown, long before the hourly interval


@pytest.mark.slow  # a real process
async def test_demo_serves_the_seed_flow(tmp_path: Path) -> None:
    port = free_port()
    proc = await start("demo", "--port", str(port))
    try:
        banner = await wait_for(proc, "deleteAllFor")
        assert (
            f"http://localhost:{port}/rest/de.resolution.apitokenauth/latest/user/token" in banner
        )
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            resp = await http.post(
                f"{API}/user/token",
                json={
                    "tokenDescription": "token for another user",
                    "tokenForUserKey": "JIRAUSER10105",
                },
                headers=basic("admin", "admin"),
            )
            assert resp.status == 200, await resp.text()
            created = await resp.json()
            resp = await http.get(
                f"{API}/user/token/", headers=basic("bob", created["plainTextToken"])
            )
            assert [t["id"] for t in await resp.json()] == [created["id"]]
            resp = await http.get(
                f"{API}/user/tokensByFilter?notValidAfter=-1", headers=basic("alice", "alice")
            )
            assert resp.status == 403
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out


@pytest.mark.slow  # a real process
async def test_demo_has_a_sign_in_page_for_the_browser_pages(tmp_path: Path) -> None:
    port = free_port()
    proc = await start("demo", "--port", str(port))
    try:
        banner = await wait_for(proc, "deleteAllFor")
        assert f"http://localhost:{port}/apitokens/" in banner
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address, as a browser keeps them
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
            resp = await http.get("/apitokens/", allow_redirects=False)
            assert resp.status == 302
            login = resp.headers["Location"]
            assert login.startswith("/login.jsp?os_destination=")
            assert "Log in" in await (await http.get(login)).text()
            resp = await http.post(
                "/login.jsp",
                data={
                    "os_username": "alice",
                    "os_password": "alice",
                    "os_destination": "/apitokens",
                },
                allow_redirects=False,
            )
            assert resp.status == 302 and resp.headers["Location"] == "/apitokens"
            resp = await http.get("/apitokens/")
            assert resp.status == 200 and 'data-user="alice"' in await resp.text()
            resp = await http.post(
                f"{API}/user/token",
                json={"tokenDescription": "from the demo's pages"},
                headers={"X-Atlassian-Token": "no-check"},
            )
            assert resp.status == 200, await resp.text()
            await http.get("/logout")  # the demo Jira ends the session and clears the cookie
            assert (await http.get(f"{API}/user/token")).status == 401
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out


@pytest.mark.slow  # a real process
async def test_workers_share_the_port_and_revocations(aiohttp_server: Any, tmp_path: Path) -> None:
    config, port = await serve_config(aiohttp_server, tmp_path, listen={"workers": 2})
    proc = await start("serve", "--config", str(config))
    try:
        seen = ""
        while seen.count("listening on") < 2:
            seen += await wait_for(proc, "listening on")
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(url) as http:
            resp = await http.post(
                f"{API}/user/token",
                json={"tokenDescription": "t"},
                headers=basic("alice", "alice-pw"),
            )
            made = await resp.json()
        bearer = {"Authorization": f"Bearer {made['plainTextToken']}"}

        async def statuses() -> set[int]:
            # A fresh connection each time, so the kernel spreads them over both workers.
            found = set()
            for _ in range(20):
                async with (
                    aiohttp.ClientSession(url) as http,
                    http.get("/rest/api/2/issue/X-1", headers=bearer) as resp,
                ):
                    found.add(resp.status)
            return found

        assert await statuses() == {200}
        async with (
            aiohttp.ClientSession(url) as http,
            http.delete(
                f"{API}/user/token/{made['id']}", headers=basic("alice", "alice-pw")
            ) as resp,
        ):
            assert resp.status == 204
        await asyncio.sleep(1.0)
        # Refused by both workers (after ten refusals, throttled: 429).
        assert await statuses() <= {401, 429}
        pids = {
            line.split("[")[1].split("]")[0] for line in seen.splitlines() if "listening on" in line
        }
        assert len(pids) == 2
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out


def test_migrate_prepares_a_store_without_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    assert main(["migrate", "--config", config]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "tokens.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 2


def test_copy_store_moves_every_token_both_ways_and_is_repeatable(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    for i in range(3):
        assert main(["tokens", "create", "-c", config, "--user-key", f"K{i}",
                     "--user-name", f"user{i}", "--description", f"token {i}"]) == 0  # fmt: skip
    capsys.readouterr()
    sqlite_url = f"sqlite:///{tmp_path / 'tokens.db'}"
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    for _ in range(2):  # the second run changes nothing
        assert main(["copy-store", "--from", sqlite_url, "--to", postgres_url]) == 0
        assert "copied 3 token(s)" in capsys.readouterr().out
    assert main(["copy-store", "--from", postgres_url, "--to", back_url]) == 0
    capsys.readouterr()

    def rows(path: Path) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT * FROM tokens ORDER BY id").fetchall()

    assert rows(tmp_path / "tokens.db") == rows(tmp_path / "back.db")
    assert len(rows(tmp_path / "back.db")) == 3


def test_redacted_store_urls() -> None:
    from apitokenproxy.cli import _redacted

    assert _redacted("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert _redacted("sqlite:///var/lib/t.db") == "sqlite:///var/lib/t.db"


@pytest.mark.slow  # a real process
async def test_sigterm_lets_requests_in_flight_finish(aiohttp_server: Any, tmp_path: Path) -> None:
    config, port = await serve_config(aiohttp_server, tmp_path)
    proc = await start("serve", "--config", str(config))
    await wait_for(proc, "listening on")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        # One request through the fast lane, one through aiohttp (a chunked upload).
        plain = asyncio.create_task(http.get("/_test/slow?seconds=1.5"))

        async def body() -> Any:
            yield b"x" * 10
            await asyncio.sleep(1.0)  # still uploading when SIGTERM comes
            yield b"y" * 10

        handed = asyncio.create_task(http.post("/rest/api/2/attachment", data=body()))
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        resp = await plain
        assert (resp.status, await resp.text()) == (200, "late")
        resp = await handed
        assert resp.status == 200
        assert (await resp.json())["body_length"] == 20
    async with asyncio.timeout(20):
        await proc.wait()
    assert proc.returncode == 0


def test_a_relative_store_path_means_the_same_database_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 12: the store used to be opened relative to the current directory,
    # so a revoke run elsewhere answered "no token" while the token kept working.
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "config.yaml"
    config.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\nstore: {url: 'sqlite:///data/tokens.db'}\n"
    )
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    monkeypatch.chdir(one)
    assert main(["check-config", "-c", str(config)]) == 0
    assert f"store: sqlite:///{etc / 'data' / 'tokens.db'}" in capsys.readouterr().out
    assert main(["tokens", "create", "-c", str(config), "--user-key", "K", "--user-name",
                 "alice", "--description", "ci"]) == 0  # fmt: skip
    token_id = json.loads(capsys.readouterr().out)["id"]
    monkeypatch.chdir(two)
    assert main(["tokens", "revoke", "-c", "../etc/config.yaml", str(token_id)]) == 0
    assert (etc / "data" / "tokens.db").exists()
    assert not list(one.iterdir()) and not list(two.iterdir())


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"apitokenproxy {apitokenproxy.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", apitokenproxy.__version__)


def test_pyproject_takes_its_version_from_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "apitokenproxy.__version__"}
    # What the installed distribution says, as pip and importlib.metadata see it.
    assert importlib.metadata.version("apitokenproxy") == apitokenproxy.__version__


@pytest.mark.slow  # a real process
async def test_python_m_apitokenproxy_version_prints_the_package_version() -> None:
    proc = await start("--version")
    out, _ = await proc.communicate()
    assert (proc.returncode, out.decode()) == (0, f"apitokenproxy {apitokenproxy.__version__}\n")


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("workers", [1, 2])
async def test_a_port_in_use_is_one_line_and_a_failing_exit(
    aiohttp_server: Any, tmp_path: Path, workers: int
) -> None:
    # Issue 12: a 30-line traceback per worker, and with workers: 2 the parent exited 0.
    config, port = await serve_config(aiohttp_server, tmp_path, listen={"workers": workers})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = await start("serve", "--config", str(config))
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode not in (0, None), text
    assert f"apitokenproxy: cannot listen on 127.0.0.1:{port}: Address already in use" in text
    assert "Traceback" not in text


@pytest.mark.slow  # a real process
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing-config", "cannot read"),
        ("store-under-a-file", "cannot create the folder of the token database"),
    ],
)
async def test_other_start_up_failures_are_one_line_too(
    aiohttp_server: Any, tmp_path: Path, setup: str, expected: str
) -> None:
    if setup == "missing-config":
        config = tmp_path / "absent.yaml"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        config, _ = await serve_config(
            aiohttp_server, tmp_path, store={"url": f"sqlite:///{tmp_path}/a-file/tokens.db"}
        )
    proc = await start("serve", "--config", str(config))
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode not in (0, None), text
    assert expected in text and "Traceback" not in text


@pytest.mark.slow  # real processes
async def test_a_worker_that_dies_is_replaced_and_sighup_stops_nothing(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    config, port = await serve_config(aiohttp_server, tmp_path, listen={"workers": 2})
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        await wait_for(proc, "listening on")
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
        log = await wait_for(proc, "started again")
        assert "died (signal 9); starting another" in log
        await wait_for(proc, "listening on")
        assert len(_children(proc.pid)) == 2
        proc.send_signal(signal.SIGHUP)
        await wait_for(proc, "SIGHUP: the configuration is unchanged")
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.get(f"http://127.0.0.1:{port}/__apitokenproxy/health") as resp:
                    assert resp.status == 200
        assert proc.returncode is None
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out


def _children(pid: int) -> list[int]:
    """Worker processes of ``pid`` (multiprocessing's resource tracker left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmdline:
                found.append(int(entry.name))
    return sorted(found)


@pytest.mark.slow  # a real process
async def test_health_follows_the_configured_port(
    aiohttp_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Dockerfile's and compose's health checks run this instead of assuming 8080.
    config, port = await serve_config(aiohttp_server, tmp_path)
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        assert await asyncio.to_thread(main, ["health", "--config", str(config)]) == 0
        assert f"http://127.0.0.1:{port}/__apitokenproxy/health: ok" in capsys.readouterr().out
    finally:
        await stop(proc)
    assert await asyncio.to_thread(main, ["health", "--config", str(config)]) == 1


@pytest.mark.slow  # a real process
async def test_sighup_reloads_what_it_can_and_refuses_a_broken_file(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    config, port = await serve_config(
        aiohttp_server, tmp_path, auth={"throttle": {"max_failures": 1000}}
    )
    proc = await start("serve", "--config", str(config))
    bad = {"Authorization": "Bearer " + format_token(99, "A" * 32)}
    url = f"http://127.0.0.1:{port}/rest/api/2/issue/X-1"
    try:
        await wait_for(proc, "listening on")
        # A keep-alive connection open across the reload: no connection is dropped.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        kept = b"GET /__apitokenproxy/health HTTP/1.1\r\nHost: j\r\n\r\n"
        writer.write(kept)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readexactly(len(b'{"status": "ok"}'))
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.get(url, headers=bad) as resp:
                    assert resp.status == 401
            data = yaml.safe_load(config.read_text())
            data["auth"] = {"throttle": {"max_failures": 1}}
            data["listen"]["keepalive_timeout_seconds"] = 30
            data["upstream"]["product"] = "confluence"
            config.write_text(yaml.safe_dump(data))
            proc.send_signal(signal.SIGHUP)
            log = await wait_for(proc, "SIGHUP: restart to apply")
            assert (
                "SIGHUP: applied auth.throttle.max_failures, listen.keepalive_timeout_seconds"
                in log
            )
            assert "restart to apply upstream.product" in log
            async with http.get(url, headers=bad) as resp:
                assert resp.status == 429  # the new limit holds without a restart
            writer.write(kept)  # the connection opened before the reload still serves
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.close()
            config.write_text(config.read_text() + "\nunknown_section: {}\n")
            proc.send_signal(signal.SIGHUP)
            log = await wait_for(proc, "the running configuration stays")
            assert "unknown_section" in log
            async with http.get(f"http://127.0.0.1:{port}/__apitokenproxy/health") as resp:
                assert resp.status == 200
        assert proc.returncode is None
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out


# Issue 18, item 13: `tokens create` makes tokens as the token API does ----------------


async def cli(*args: str) -> tuple[int, str]:
    """Run the command as an operator does; its exit status and everything it printed."""
    proc = await start(*args)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def stored_tokens(tmp_path: Path) -> int:
    database = tmp_path / "tokens.db"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM tokens").fetchone()[0])


async def fake_jira(aiohttp_server: Any) -> tuple[FakeUpstream, str]:
    upstream = FakeUpstream("jira", JIRA_USERS)
    server = await aiohttp_server(upstream.app())
    return upstream, str(server.make_url("")).rstrip("/")


ALICE_KEY, BOB_KEY = "JIRAUSER10100", "JIRAUSER10105"


@pytest.mark.slow  # real processes
@pytest.mark.parametrize(
    ("tokens", "owner", "extra", "status", "expected"),
    [
        ({}, (ALICE_KEY, "alice"), ["--description", "x" * 256], 2,
         "tokenDescription is longer than 255 characters"),
        ({"max_description_length": 8}, (ALICE_KEY, "alice"), ["--description", "x" * 9], 2,
         "tokenDescription is longer than 8 characters"),
        ({"allowed_groups": ["developers"]}, (BOB_KEY, "bob"), [], 1,
         "bob may not hold API tokens: only members of developers may"),
        # The groups asked for must be the owner's: the name has to be the key's.
        ({"allowed_groups": ["jira-users"]}, (ALICE_KEY, "bob"), [], 1,
         f"the user key {ALICE_KEY} is alice's, not bob's"),
        ({"allowed_groups": ["jira-users"]}, ("JIRAUSER99999", "bob"), [], 1,
         "no user has the user key 'JIRAUSER99999'"),
        ({"default_validity_months": 0, "max_validity_months": 0,
          "group_limits": [{"group": "jira-users", "max_validity_months": 0}]},
         (BOB_KEY, "bob"), [], 1, "tokens that never expire are not allowed for your groups: "
         "give tokenValidityTimeInMonths"),
    ],
    ids=["description-length", "configured-length", "allowed-groups", "name-not-the-keys",
         "unknown-key", "never-expires"],
)  # fmt: skip
async def test_tokens_create_obeys_the_token_apis_rules(
    aiohttp_server: Any,
    tmp_path: Path,
    tokens: dict[str, Any],
    owner: tuple[str, str],
    extra: list[str],
    status: int,
    expected: str,
) -> None:
    """Each row was created by the command before, whatever the site's token policy."""
    _, url = await fake_jira(aiohttp_server)
    config = str(write_config(tmp_path, url, tokens=tokens))
    key, name = owner
    code, out = await cli("tokens", "create", "-c", config, "--user-key", key,
                          "--user-name", name, *(extra or ["--description", "ci"]))  # fmt: skip
    assert (code, out.strip()) == (status, f"apitokenproxy: {expected}")
    assert stored_tokens(tmp_path) == 0


@pytest.mark.slow  # real processes
async def test_tokens_create_obeys_max_per_user(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, tokens={"max_per_user": 1}))
    create = ("tokens", "create", "-c", config, "--user-key", ALICE_KEY, "--user-name", "alice")
    code, out = await cli(*create, "--description", "first")
    assert code == 0, out
    code, out = await cli(*create, "--description", "second")
    assert (code, out.strip()) == (
        1,
        "apitokenproxy: alice already has 1 API tokens and may hold at most 1: "
        "delete one before creating another",
    )
    assert stored_tokens(tmp_path) == 1


@pytest.mark.slow  # real processes
async def test_tokens_create_asks_the_upstream_for_the_owners_groups(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """As the proxy does: as the owner, through the trusted header; the group's
    validity limit applies, and the token is still the command line's."""
    upstream, url = await fake_jira(aiohttp_server)
    limits = [{"group": "developers", "max_validity_months": 3}]
    config = str(write_config(tmp_path, url, tokens={"group_limits": limits}))
    code, out = await cli("tokens", "create", "-c", config, "--user-key", ALICE_KEY,
                          "--user-name", "alice", "--description", "ci", "--months", "12")  # fmt: skip
    assert code == 0, out
    created = json.loads(out)
    assert created["validUntil"] == valid_until(created["created"], 3)
    assert created["tokenCreatedByUserKey"] == "apitokenproxy-cli"
    asked = [r for r in upstream.received if r.path_qs == "/rest/api/2/myself?expand=groups"]
    assert [dict(r.headers).get("X-Forwarded-User") for r in asked] == ["alice"]
    assert all("Authorization" not in dict(r.headers) for r in upstream.received)
    code, out = await cli("audit", "-c", config, "--json")
    [event] = json.loads(out)
    assert (event["event"], event["actorUserKey"], event["actorAuthentication"]) == (
        "created", "apitokenproxy-cli", "cli"
    )  # fmt: skip


@pytest.mark.slow  # real processes
async def test_tokens_create_without_the_upstream_its_policy_needs_is_one_line(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 9; without a group rule the command does not ask.
    config = str(write_config(tmp_path, tokens={"allowed_groups": ["developers"]}))
    code, out = await cli("tokens", "create", "-c", config, "--user-key", ALICE_KEY,
                          "--user-name", "alice", "--description", "ci")  # fmt: skip
    assert code == 1, out
    assert len(out.strip().splitlines()) == 1, out
    assert out.startswith("apitokenproxy: cannot check the token policy for alice: ")
    assert "refused the connection" in out and "Traceback" not in out
    assert stored_tokens(tmp_path) == 0
