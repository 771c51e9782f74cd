"""Practice Portal: a server-rendered portal for clinical practices, with MFA at its heart."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask
from werkzeug.routing import IntegerConverter

from config import BASE_DIR, CONFIGS, ProductionConfig


def create_app(config=None) -> Flask:
    """Build the application.

    `config` is a config class, a name from `config.CONFIGS`, or a mapping of overrides on
    top of the class named by PORTAL_CONFIG (default: production).
    """
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(BASE_DIR / "instance"),
    )
    overrides: Mapping = {}
    if config is None or isinstance(config, Mapping):
        overrides = config or {}
        config = os.environ.get("PORTAL_CONFIG", "production")
    if isinstance(config, str):
        if config not in CONFIGS:
            raise RuntimeError(f"PORTAL_CONFIG must be one of {', '.join(CONFIGS)}")
        config = CONFIGS[config]
    app.config.from_object(config)
    app.config.update(overrides)
    if issubclass(config, ProductionConfig):
        ProductionConfig.validate(app.config)
    _check_networks(app.config["SUPPORT_ALLOWED_NETWORKS"])
    if app.config["TRUSTED_PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_prefix=0)

    from portal import access, audit, cli, delivery, errors, headers, hosts, htmx, request_shape, tasks, wording
    from portal import limits as rate_limits
    from portal import logging as portal_logging  # not the standard library's logging
    from portal import metrics as portal_metrics
    from portal.auth import bp as auth_bp
    from portal.dashboard import bp as dashboard_bp
    from portal.database import init_database
    from portal.extensions import csrf, db, limiter, login_manager, mail, migrate
    from portal.health import bp as health_bp
    from portal.mfa import methods
    from portal.models.base import render_item
    from portal.practice import bp as practice_bp
    from portal.security import bp as security_bp
    from portal.sessions import init_sessions
    from portal.support import bp as support_bp

    app.url_map.converters["id"] = RowIdConverter
    # A doubled slash is a wrong address (404), not one to redirect to a guess: a link token
    # containing "/" must fail as a bad token does.
    app.url_map.merge_slashes = False
    db.init_app(app)
    init_database(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), compare_type=True, render_item=render_item)
    # First of the before_request hooks (after logging's timer), in this order: a foreign Host,
    # then a form with a file part or a repeated field, get the 400 page before CSRFProtect.
    hosts.init_app(app)
    request_shape.init_app(app)
    csrf.init_app(app)
    mail.init_app(app)
    delivery.init_app(app)
    tasks.init_app(app)
    limiter.init_app(app)
    rate_limits.init_app(app)  # its fallbacks to memory are logged and counted
    login_manager.init_app(app)
    init_sessions(app)

    access.init_login_manager(login_manager)
    access.init_app(app)

    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(security_bp)
    app.register_blueprint(practice_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(health_bp)
    if app.config["DEV_OUTBOX"]:
        from portal.dev import bp as dev_bp

        app.register_blueprint(dev_bp)

    audit.init_app(app)
    errors.init_app(app)
    headers.init_app(app)
    htmx.init_app(app)
    wording.init_app(app)
    app.jinja_env.filters["method_label"] = methods.label
    cli.init_app(app)
    portal_logging.init_app(app)
    portal_metrics.init_app(app)
    return app



class RowIdConverter(IntegerConverter):
    """A positive row id that fits the database's 32-bit integer columns; anything else is 404."""

    def __init__(self, map):
        super().__init__(map, min=1, max=2**31 - 1)


def _check_networks(networks) -> None:
    import ipaddress

    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as error:
            raise RuntimeError(f"SUPPORT_ALLOWED_NETWORKS: {network!r} is not a network (CIDR)") from error
