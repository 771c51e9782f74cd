"""A Redis server of the test's own on a free loopback port, to stop and start at will."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.smtp_server import free_port


def redis_binary() -> str:
    """The redis-server to start; CI installs it, so there it must exist."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            raise RuntimeError("redis-server is needed for the queue outage tests")
        pytest.skip("redis-server not installed (CI has it)")
    return binary


class OwnRedis:
    """A redis-server of the test's own: `extra` adds arguments (persistence, `--replicaof`...).

    Everything that stops, pauses or resumes it signals this process by its id, never by name.
    """

    def __init__(self, directory, *extra: str, port: int | None = None):
        self.port = port or free_port()
        self.directory = directory
        self.extra = extra
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.process = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return self
            except (RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("the test's Redis did not start")

    def pause(self) -> None:
        """SIGSTOP: the server hangs; connections are still accepted by the kernel, never answered."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server this test started (its own process id only)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class OwnSentinel:
    """A Redis Sentinel of the test's own, watching `master` as service `service`."""

    def __init__(self, directory, master: OwnRedis, service: str = "portal"):
        self.port = free_port()
        self.directory = directory
        self.master = master
        self.service = service
        self.process = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def start(self) -> OwnSentinel:
        config = self.directory / f"sentinel-{self.port}.conf"  # Sentinel rewrites it: its own file
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 500\n"
            f"sentinel failover-timeout {self.service} 5000\n")
        self.process = subprocess.Popen([redis_binary(), str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
                if client.sentinel_get_master_addr_by_name(self.service):
                    return self
            except (RedisError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("the test's Sentinel did not start")

    def master_port(self) -> int | None:
        address = Redis(host="127.0.0.1", port=self.port, socket_timeout=1).sentinel_get_master_addr_by_name(
            self.service)
        return int(address[1]) if address else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
