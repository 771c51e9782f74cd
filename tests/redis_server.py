"""A Redis server of the test's own on a free loopback port, to stop and start at will."""

from __future__ import annotations

import os
import shutil
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
    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.process = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return self
            except (RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("the test's Redis did not start")

    def stop(self) -> None:
        """Stop the server this test started (its own process id only)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
