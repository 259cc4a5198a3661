"""Pytest plugin: a throwaway ``redis-server`` on loopback for the Redis cache tests.

Register it with ``pytest_plugins = ["tests.redis_fixtures"]`` (or import ``redis_server``
into a test module). ``RedisServer`` runs Debian's ``redis-server`` binary without persistence
on a free port; it can be stopped and started again on the same port, to test what clients do
while Redis is down.

A missing binary fails the tests (the Redis backend would otherwise ship untested) unless
``TFREC_SKIP_REDIS=1`` is set, which skips them instead.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import pytest

MISSING_MESSAGE = (
    "redis-server not found: install Debian's redis-server (./run.sh test does it when run as root)"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(port: int, timeout: float = 0.2) -> bool:
    """True when something on ``port`` answers a RESP PING with +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` subprocess on ``127.0.0.1:port`` (no RDB, no AOF)."""

    def __init__(self, port: int | None = None, binary: str | None = None,
                 start_timeout: float = 10.0):
        self.binary = binary or shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError(MISSING_MESSAGE)
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start_timeout = start_timeout
        self._dir = tempfile.mkdtemp(prefix="tfrec-redis-")
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (to SIGSTOP it, say), else None."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Starts the server (again, on the same port) and waits until it answers PING."""
        if self.running:
            return self
        log = Path(self._dir, "redis.log")
        with open(log, "ab") as out:
            self._process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self._dir],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.start_timeout
        while not _ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not come up within "
                    f"{self.start_timeout:g} s; its log:\n{log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Terminates the server and waits for it to exit."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        """Stops the server and removes its working directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def redis_binary_or_fail() -> str:
    """The redis-server path; fails (or skips, with TFREC_SKIP_REDIS=1) the test without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("TFREC_SKIP_REDIS") == "1":
            pytest.skip("redis-server not found and TFREC_SKIP_REDIS=1")
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    return binary


@pytest.fixture
def redis_server():
    """A started ``RedisServer`` on a free loopback port, stopped after the test."""
    binary = redis_binary_or_fail()
    for attempt in range(3):  # the free port may be taken between probing and binding
        server = RedisServer(binary=binary)
        try:
            server.start()
            break
        except RuntimeError:
            server.close()
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.close()
