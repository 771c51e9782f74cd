"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class _Collector:
    def __init__(self, refuse: int = 0):
        self.messages = []
        self.refuse = refuse  # refuse this many messages first (-1: refuse every one)
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1 if self.refuse > 0 else 0
            self.refused += 1
            return "451 4.3.0 Try again later"
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.original_content or envelope.content, policy=policy.default),
            }
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPServer:
    """`refuse`: how many messages to refuse (451) before accepting; -1 refuses all."""

    def __init__(self, refuse: int = 0):
        self.handler = _Collector(refuse)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        return self.handler.messages

    @property
    def refused(self) -> int:
        return self.handler.refused

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
