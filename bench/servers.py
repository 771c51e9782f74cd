"""Start gunicorn with the repository's config and read its workers' CPU time and memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn -c gunicorn.conf.py MODULE on a free loopback port."""

    def __init__(self, module: str, env: dict, workers: int = 2, *, python: str = sys.executable,
                 config: str = "gunicorn.conf.py", options: tuple[str, ...] = ()):
        """`python`, `config` and `options` let the bench's peer (bench/peer) run in its own
        virtual environment with the same worker settings but without the portal's config."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_WORKERS": str(workers)}
        # The workers' log lines (one per request) go to a file: a pipe nobody reads fills up
        # after a few hundred requests and then blocks every worker in its next write.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [python, "-m", "gunicorn", "-c", config, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             *options, "--access-logfile", "/dev/null", module],
            cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self._wait(workers)

    def _wait(self, workers: int) -> None:
        deadline = time.monotonic() + 30
        path = "/hello" if "hello" in " ".join(self.process.args) else "/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode(errors="replace")[-4000:])
            try:
                urllib.request.urlopen(self.base + path, timeout=2)
                if len(self.workers()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    children.append(int(entry.name))
        return children

    def cpu_seconds(self) -> float:
        """User + system CPU of the workers (master excluded)."""
        total = 0
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def memory_kib(self, field: str = "VmRSS") -> dict[int, int]:
        result = {}
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    result[pid] = int(line.split()[1])
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
