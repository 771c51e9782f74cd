from pathlib import Path

from flask import current_app, render_template, request

from portal.access import public
from portal.delivery import outbox
from portal.dev import bp, vip_standin
from portal.extensions import csrf

# Development's VIP service, inside the portal: one per process, its bindings kept in
# VIP_DEV_STATE_PATH (if set) so a restart keeps enrolled demo users working.
_VIP = {}


def _vip_stand_in() -> vip_standin.StandIn:
    stand_in = _VIP.get("service")
    if stand_in is None:
        path = current_app.config.get("VIP_DEV_STATE_PATH")
        if path:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        stand_in = _VIP["service"] = vip_standin.StandIn(state_path=path)
        stand_in.add_demo_tokens()
    return stand_in


def _shows_vip_codes() -> bool:
    """The demo credentials' codes help only when the portal talks to the stand-in inside it."""
    base = current_app.config.get("VIP_API_BASE_URL") or ""
    return base.rstrip("/").endswith("/dev/vip")


@bp.route("/outbox")
@public
def list_outbox():
    """List captured messages, newest first (development and tests only)."""
    vip_codes = vip_standin.current_codes(_vip_stand_in()) if _shows_vip_codes() else []
    return render_template("dev/list_outbox.html", messages=outbox.latest(), vip_codes=vip_codes)


@bp.route("/vip/<service>", methods=["POST"])
@public
@csrf.exempt
def answer_vip(service):
    """Answer a VIP User Services request as the stand-in (development only)."""
    status, body = _vip_stand_in().handle(service, request.get_data(cache=False))
    return body, status, {"Content-Type": "text/xml; charset=utf-8"}
