"""Start ``reasonrank serve`` as a real process on 127.0.0.1 and stop it (SIGTERM) afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: IO[str]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM, wait, and check the shutdown was clean (uvicorn re-raises the signal on exit,
        so the exit status is -SIGTERM); returns the server's log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout) in (0, -signal.SIGTERM)
        output = self.output()
        assert "Application shutdown complete" in output and "Traceback" not in output, output[-3000:]
        return output


def start_server(*args: str, env: dict[str, str] | None = None, ready_timeout: float = 120) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "reasonrank_plugins", "serve", "--port", str(port), *args]
    full_env = {k: v for k, v in os.environ.items() if k != "REASONRANK_TOKEN"} | (env or {})
    log = tempfile.TemporaryFile("w+")  # a pipe could fill up with access logs and block the server
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Server(url, proc, log)
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready in {ready_timeout}s")


def _factory() -> Iterator:
    started: list[Server] = []

    def factory(*args: str, env: dict[str, str] | None = None, ready_timeout: float = 120) -> Server:
        server = start_server(*args, env=env, ready_timeout=ready_timeout)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(30)
            except subprocess.TimeoutExpired:
                server.proc.kill()


@pytest.fixture
def server_factory() -> Iterator:
    yield from _factory()


@pytest.fixture(scope="module")
def module_server_factory() -> Iterator:
    """``server_factory`` for servers shared by the tests of one module."""
    yield from _factory()
