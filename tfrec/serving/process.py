"""Run ``tfrec serve`` as a background process (the demo, the tests and bench/ use this)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

_READY = re.compile(r"Running gRPC ModelServer at (\S+):(\d+)")


class ServerProcess:
    """``tfrec serve <args> --port 0`` in a child process; ``port`` is the one it bound.

    Stdout/stderr go to ``log_path`` (a temporary file unless given). Use as a context manager or
    call ``stop()``; ``stop`` sends SIGTERM (the server drains in-flight requests) and kills after
    ``timeout`` seconds.
    """

    def __init__(self, args: Sequence[str], log_path: Optional[os.PathLike] = None, timeout: float = 180.0,
                 env: Optional[dict] = None):
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="tfrec-serve-", suffix=".log")[1])
        args = list(args)
        if "--port" not in args:
            args += ["--port", "0"]
        full_env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "tfrec.cli", "serve", *args],
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, env=full_env)
        self.host, self.port = None, None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break  # exited
            lines.append(line)
            match = _READY.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"tfrec serve did not start (exit {self.proc.returncode}); log {self.log_path}:\n"
                               + self.log_path.read_text()[-3000:] + "".join(lines))
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
