"""An embedded Apache Tomcat 10 running ReportServlet.java, as a real upstream for tests.

Jira and Confluence Data Center are Tomcat applications, so what a security test must
check is what Tomcat's Servlet API makes of the bytes the proxy sends: the request URI,
the query, ``getHeader("X-Forwarded-User")``, the body length, the connection. The
servlet answers every request with a JSON report of exactly that and keeps the reports;
``Tomcat.reports()`` fetches them (see ReportServlet.java for the fields and the
``/status/{code}``, ``/bytes/{n}`` and ``/chunked/{n}`` paths).

It needs a JDK and Debian's Tomcat 10 jars (``apt-get install -y default-jdk-headless
libtomcat10-java``); without them the fixtures fail, they never skip. Fixtures:

``tomcat``
    session scope: one Tomcat, compiled and started once for the whole run.
``tomcat_upstream``
    the same Tomcat, its reports and counters reset before the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).resolve().with_name("ReportServlet.java")
JAVA_DIR = Path("/usr/share/java")
# What embedded Tomcat needs at run time, found by trying: catalina and the Servlet API
# to compile; coyote (the HTTP connector), util, util-scan (web.xml descriptors), juli
# (logging), api, annotations-api and jaspic-api to start a context.
JARS = (
    "tomcat10-catalina.jar",
    "tomcat10-servlet-api.jar",
    "tomcat10-coyote.jar",
    "tomcat10-util.jar",
    "tomcat10-util-scan.jar",
    "tomcat10-juli.jar",
    "tomcat10-api.jar",
    "tomcat10-annotations-api.jar",
    "tomcat10-jaspic-api.jar",
)
INSTALL = "apt-get install -y default-jdk-headless libtomcat10-java"
START_TIMEOUT = 60.0
COMPILE_TIMEOUT = 120.0
_LISTENING = re.compile(rb"^LISTENING (\d+)\r?$", re.MULTILINE)
# Straight to 127.0.0.1, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TomcatUnavailable(RuntimeError):
    """Tomcat could not be compiled or started; the message says why."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TomcatUnavailable(f"{name} is not installed; install it with: {INSTALL}")
    return path


def classpath() -> list[Path]:
    """The Tomcat jars, all of which must be installed."""
    jars = [JAVA_DIR / name for name in JARS]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise TomcatUnavailable(
            f"Tomcat 10 jars missing: {', '.join(missing)}; install them with: {INSTALL}"
        )
    return jars


def _joined(paths: list[Path]) -> str:
    return os.pathsep.join(str(path) for path in paths)


def compile_servlet(build_dir: Path) -> Path:
    """Compile ReportServlet.java into ``build_dir/classes``; that directory."""
    javac = _tool("javac")
    classes = build_dir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    command = [
        javac, "-encoding", "UTF-8", "-Xlint:all", "-d", str(classes),
        "-cp", _joined(classpath()), str(SOURCE),
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - javac, our own source, no shell
        command, capture_output=True, timeout=COMPILE_TIMEOUT, check=False
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise TomcatUnavailable(f"javac failed ({done.returncode}):\n{output}")
    return classes


class Tomcat:
    """One running embedded Tomcat with the report servlet, on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def reports(self) -> list[dict[str, Any]]:
        """Every request Tomcat has seen since the last reset, oldest first."""
        reports: list[dict[str, Any]] = json.loads(self._call("GET", "/__reports"))
        return reports

    def reset(self) -> None:
        """Forget the reports; the request and per-connection counters start again at 1."""
        self._call("POST", "/__reset")

    def output(self) -> str:
        """What Tomcat printed so far (stdout and stderr: its log)."""
        return self.log.read_bytes().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()

    def _call(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        try:
            with _OPENER.open(request, timeout=30) as response:
                body: bytes = response.read()
                return body
        except OSError as exc:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"Tomcat has exited ({code}):\n{self.output()}") from exc
            raise


def start_tomcat(
    build_dir: Path,
    connector: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Tomcat:
    """Start Tomcat on a free port, compiling the servlet into ``build_dir`` if need be.

    ``connector`` sets attributes of the HTTP connector, as in server.xml's
    ``<Connector>`` (e.g. ``{"relaxedQueryChars": "[]|{}"}``).
    """
    classes = build_dir / "classes"
    compiled = classes / "ReportServlet.class"
    if not compiled.is_file() or compiled.stat().st_mtime < SOURCE.stat().st_mtime:
        classes = compile_servlet(build_dir)
    java = _tool("java")
    command = [
        java,
        # Quick start-up matters more here than peak speed.
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        # Exit when our end of its stdin closes: no Tomcat outlives a killed pytest.
        "-Dreportservlet.exitWithStdin=true",
        "-cp", _joined([*classpath(), classes]),
        "ReportServlet", "0",
        *(f"{name}={value}" for name, value in (connector or {}).items()),
    ]  # fmt: skip
    fd, log_name = tempfile.mkstemp(prefix="tomcat-", suffix=".log", dir=build_dir)
    log = Path(log_name)
    try:
        process = subprocess.Popen(  # noqa: S603 - java, our own class, no shell
            command, stdin=subprocess.PIPE, stdout=fd, stderr=subprocess.STDOUT
        )
    finally:
        os.close(fd)
    tomcat = Tomcat(process, 0, log)

    deadline = time.monotonic() + timeout
    while True:
        found = _LISTENING.search(log.read_bytes())
        if found:
            tomcat.port = int(found.group(1))
            tomcat.url = f"http://127.0.0.1:{tomcat.port}"
            return tomcat
        code = process.poll()
        if code is not None:
            tomcat.stop()
            raise TomcatUnavailable(
                f"Tomcat exited ({code}) before LISTENING; its output:\n{tomcat.output()}"
            )
        if time.monotonic() > deadline:
            tomcat.stop()
            raise TomcatUnavailable(
                f"Tomcat did not print LISTENING within {timeout:g} s; "
                f"its output:\n{tomcat.output()}"
            )
        time.sleep(0.02)


@pytest.fixture(scope="session")
def tomcat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tomcat]:
    """One embedded Tomcat for the whole session; see ``tomcat_upstream`` for a clean one."""
    try:
        server = start_tomcat(tmp_path_factory.mktemp("tomcat"))
    except TomcatUnavailable as exc:
        pytest.fail(f"embedded Tomcat unavailable: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tomcat_upstream(tomcat: Tomcat) -> Iterator[Tomcat]:
    """The session's Tomcat with its reports and counters reset for this test."""
    tomcat.reset()
    yield tomcat
