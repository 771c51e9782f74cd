"""Metrics for the people who run the portal, in the Prometheus text format at `/metrics`.

Every metric is defined here, once; services call the small functions below and never touch
a prometheus object. Labels only ever take fixed values (an outcome, a method key from the
registry, a channel key, a reason, a factor, an action, a task name): never an email, a phone
number, a code or an id, so the output says nothing about any one person.

Under gunicorn the workers are separate processes: when PROMETHEUS_MULTIPROC_DIR is set
(gunicorn.conf.py sets it before the workers fork) each worker writes its counts to files
there and a scrape adds them up with `MultiProcessCollector`; otherwise the default registry
of this process answers.

The task queue (`portal.tasks`) registers a zero-argument function with
`set_queue_depth_source()` that returns how many tasks wait (None when the queue cannot be
reached); it is read at scrape time.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from functools import cache

from flask import Flask, current_app
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

NO_METHOD = "none"
LOGIN_OUTCOMES = ("password_failed", "code_needed", "code_failed", "signed_in", "locked", "must_enroll")
THROTTLE_REASONS = ("cooldown", "volume")
LOCK_FACTORS = ("password", "code")
SUPPORT_ACTIONS = ("cleared_mfa", "requirement_changed", "request_decided")
# Task names come from code (portal.tasks), never from data; anything else is counted as "other".
_TASK_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")

LOGINS = Counter("portal_login_outcomes", "Log In attempts by outcome and MFA method.", ["outcome", "method"])
CODES_SENT = Counter("portal_codes_sent", "Sign-in and set-up codes handed to a transport, by channel.",
                     ["channel"])
DELIVERY_FAILURES = Counter("portal_code_delivery_failures", "Codes the transport refused or could not take, "
                            "by channel.", ["channel"])
SENDS_THROTTLED = Counter("portal_code_sends_throttled", "Code sends refused by a sending limit, by reason.",
                          ["reason"])
LOCKS = Counter("portal_account_locks", "Accounts locked after repeated failures, by factor.", ["factor"])
SUPPORT = Counter("portal_support_actions", "Support actions carried out, by action.", ["action"])
TASKS_FAILED = Counter("portal_tasks_failed", "Background tasks that failed for good, by task name.", ["task"])
RATELIMIT_FALLBACKS = Counter("portal_ratelimit_fallbacks", "Times the rate limits' storage failed and they fell "
                              "back to counting in this process's memory.")
SESSION_STORE_FAILURES = Counter("portal_session_store_failures", "Requests answered with the 503 page because the "
                                 "session store could not be reached.")

_queue_depth_source: Callable[[], int | None] | None = None
_failed_kept_source: Callable[[], int] | None = None


# -- what the services call ---------------------------------------------------------------


def login(outcome: str, method: str | None) -> None:
    """Count one Log In outcome; `method` is the method key (None: no method involved)."""
    LOGINS.labels(_one_of(outcome, LOGIN_OUTCOMES), _one_of(method or NO_METHOD, _method_labels())).inc()


def code_sent(channel: str) -> None:
    CODES_SENT.labels(_one_of(channel, _channels())).inc()


def delivery_failed(channel: str) -> None:
    DELIVERY_FAILURES.labels(_one_of(channel, _channels())).inc()


def send_throttled(reason: str) -> None:
    SENDS_THROTTLED.labels(_one_of(reason, THROTTLE_REASONS)).inc()


def locked(factor: str) -> None:
    LOCKS.labels(_one_of(factor, LOCK_FACTORS)).inc()


def support_action(action: str) -> None:
    SUPPORT.labels(_one_of(action, SUPPORT_ACTIONS)).inc()


def task_failed(name: str) -> None:
    """Count a background task that failed for good (its retries used up)."""
    TASKS_FAILED.labels(name if isinstance(name, str) and _TASK_NAME.fullmatch(name) else "other").inc()


def ratelimit_fallback() -> None:
    """Count one switch of the rate limits to per-process memory (their storage failed)."""
    RATELIMIT_FALLBACKS.inc()


def session_store_failed() -> None:
    """Count one request answered 503 because the session store failed."""
    SESSION_STORE_FAILURES.inc()


def set_queue_depth_source(source: Callable[[], int | None] | None,
                           failed_source: Callable[[], int] | None = None) -> None:
    """Register the function that says how many tasks wait (None: the queue is unreachable),
    and the one that says how many failed for good are kept (read from the database, so
    consumers on other hosts count too)."""
    global _queue_depth_source, _failed_kept_source
    _queue_depth_source = source
    _failed_kept_source = failed_source


def _one_of(value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} is not a label value this metric takes ({', '.join(allowed)})")
    return value


@cache
def _method_labels() -> tuple[str, ...]:
    from portal.mfa import methods  # the registry imports services that import this module

    return (*(method.key for method in methods.ALL), NO_METHOD)


@cache
def _channels() -> tuple[str, ...]:
    from portal import delivery

    return tuple(delivery.CHANNELS)


# -- the queue, read at scrape time ---------------------------------------------------------


class QueueCollector(Collector):
    """`portal_task_queue_up` (1: the queue answered) and `portal_task_queue_depth` (tasks
    waiting, only when it answered). Nothing while no queue has registered a source."""

    def collect(self):
        source = _queue_depth_source
        if source is None:
            return
        try:
            depth = source()
        except Exception as error:  # a scrape must not fail because the queue is down
            # The error's name only: a message might carry a connection URL with its password.
            current_app.logger.warning("metrics: the task queue depth could not be read (%s)", type(error).__name__)
            depth = None
        yield GaugeMetricFamily("portal_task_queue_up", "1 when the task queue answered this scrape, else 0.",
                                value=0 if depth is None else 1)
        if depth is not None:
            yield GaugeMetricFamily("portal_task_queue_depth", "Tasks waiting in the queue.", value=depth)
        if _failed_kept_source is not None:
            try:
                kept = _failed_kept_source()
            except Exception as error:
                current_app.logger.warning("metrics: failed tasks could not be counted (%s)", type(error).__name__)
            else:
                yield GaugeMetricFamily("portal_tasks_failed_kept", "Tasks that failed for good, kept in failed_tasks.",
                                        value=kept)

    def describe(self):
        return []  # read at scrape time only, so registering it never calls the queue


_QUEUE = QueueCollector()
REGISTRY.register(_QUEUE)


# -- the endpoint ---------------------------------------------------------------------------

_EXTENSION = "portal.metrics"


def init_app(app: Flask) -> None:
    """Check METRICS_ALLOWED_NETWORKS (a bad entry stops the start-up) and start every label
    set at zero, so a dashboard sees each series before its first event."""
    networks = []
    for network in app.config["METRICS_ALLOWED_NETWORKS"]:
        try:
            networks.append(ipaddress.ip_network(network, strict=False))
        except ValueError as error:
            raise RuntimeError(f"METRICS_ALLOWED_NETWORKS: {network!r} is not a network (CIDR)") from error
    app.extensions[_EXTENSION] = tuple(networks)
    for outcome in LOGIN_OUTCOMES:
        for method in _method_labels():
            LOGINS.labels(outcome, method)
    for channel in _channels():
        CODES_SENT.labels(channel)
        DELIVERY_FAILURES.labels(channel)
    for reason in THROTTLE_REASONS:
        SENDS_THROTTLED.labels(reason)
    for factor in LOCK_FACTORS:
        LOCKS.labels(factor)
    for action in SUPPORT_ACTIONS:
        SUPPORT.labels(action)


def allowed(address: str | None) -> bool:
    """True when `address` (the client, as ProxyFix derived it) is in METRICS_ALLOWED_NETWORKS."""
    try:
        client = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if getattr(client, "ipv4_mapped", None) is not None:  # ::ffff:127.0.0.1 from a dual-stack socket
        client = client.ipv4_mapped
    return any(client in network for network in current_app.extensions[_EXTENSION])


def exposition() -> tuple[bytes, str]:
    """The body and content type of a scrape: every worker's counts in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_QUEUE)
    else:
        registry = REGISTRY
    # The classic text format (0.0.4): every Prometheus version reads it, and it is what
    # generate_latest writes for these names.
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
