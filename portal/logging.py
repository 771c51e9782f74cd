"""Logging that never writes secrets: the gunicorn access log masks link tokens."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

_TOKEN_PATH = re.compile(r"^/(invitations|reset-password)/[^/?\s]+")


def mask_path(path: str) -> str:
    return _TOKEN_PATH.sub(r"/\1/[token]", path or "")


class PortalGunicornLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if key in atoms:
                atoms[key] = mask_path(atoms[key]) if key == "U" else re.sub(
                    r"/(invitations|reset-password)/[^/?\s]+", r"/\1/[token]", atoms[key])
        return atoms
