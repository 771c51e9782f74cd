"""Redis clients that fail fast, from a URL: a single server or a master found through Sentinel.

URLs:

- `redis://[[user]:password@]host:port/db`, `rediss://...` (TLS) and `unix:///path?db=N`: one server;
- `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`: ask the Sentinels
  (the hosts listed) for the current master of `service` (database `db`, default 0) and follow
  it when they fail over. The password, if any, is used for the Sentinels and for the master.
  Flask-Limiter's storage (`limits`) reads the same form without the database number.

Every client here gives up after `timeout` seconds (connecting, and waiting for each reply) and
never retries on its own (`config.redis_fail_fast`); the caller decides what a failure means.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.sentinel import Sentinel

from config import redis_fail_fast as fail_fast

SENTINEL_SCHEME = "redis+sentinel"


def connect(url: str, *, timeout: float) -> Redis:
    """A client for `url` (see the module docstring); no connection is made until first use.

    Raises ValueError for a Sentinel URL without hosts or service name.
    """
    if urlsplit(url).scheme != SENTINEL_SCHEME:
        return Redis.from_url(url, **fail_fast(timeout))
    hosts, service, db, auth = parse_sentinel_url(url)
    sentinel = Sentinel(hosts, sentinel_kwargs={**fail_fast(timeout), **auth}, db=db, **auth, **fail_fast(timeout))
    return sentinel.master_for(service)


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, dict]:
    """The Sentinels' (host, port) pairs, the service name, the database and the credentials."""
    parts = urlsplit(url)
    credentials, _, locations = parts.netloc.rpartition("@")
    hosts = []
    for location in filter(None, locations.split(",")):
        if location.startswith("["):  # [::1]:26379
            host, _, port = location[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = location.partition(":")
        hosts.append((host, int(port) if port else 26379))
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not path:
        raise ValueError("a redis+sentinel:// URL needs host:port of the Sentinels and a service name: "
                         "redis+sentinel://host:26379,host:26379/service[/db]")
    db = int(path[1]) if len(path) > 1 else 0
    auth = {}
    if credentials:
        username, _, password = credentials.partition(":")
        if username:
            auth["username"] = unquote(username)
        if password:
            auth["password"] = unquote(password)
    return hosts, path[0], db, auth


def describe(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()
