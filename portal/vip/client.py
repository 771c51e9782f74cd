"""The VIP User Services client: SOAP over HTTPS with the account's client certificate.

One `requests.Session` per application (connections are reused); every call has a timeout
(VIP_TIMEOUT_SECONDS, to connect and to read) and is never retried here: a person is waiting,
and the callers decide what a failure means (nothing saved at set-up, no way in at Log In,
a queued retry for removals). Codes are never logged.
"""

from __future__ import annotations

import logging

import requests

from portal.vip import soap
from portal.vip.errors import ServiceRefused, ServiceUnavailable

logger = logging.getLogger("portal.vip")

# VIP's status codes the portal acts on (see docs/VIP.md).
USER_EXISTS = "6002"
USER_MISSING = "6003"
CREDENTIAL_UNKNOWN = "6004"
INTERNAL_ERROR = "6005"
NOT_BOUND = "6007"
AUTHENTICATION_FAILED = "6009"
CREDENTIAL_TYPE = "STANDARD_OTP"  # VIP Access on a phone or desktop: VIP's software credential


class SoapService:
    """`VipService` over HTTPS. `cert` is (certificate path, key path) or None; `verify` is
    True (the system's CAs) or a CA bundle path."""

    def __init__(self, base_url: str, *, cert: tuple[str, str] | None, verify: bool | str, timeout: float):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.cert = cert
        self.http.verify = verify
        self.http.trust_env = False  # no proxy or CA bundle from the environment: only the settings

    @classmethod
    def from_config(cls, config) -> SoapService:
        cert = (config["VIP_CLIENT_CERT"], config["VIP_CLIENT_KEY"]) \
            if config.get("VIP_CLIENT_CERT") and config.get("VIP_CLIENT_KEY") else None
        return cls(config["VIP_API_BASE_URL"], cert=cert, verify=config.get("VIP_CA_BUNDLE") or True,
                   timeout=float(config["VIP_TIMEOUT_SECONDS"]))

    def _call(self, operation: str, fields: list) -> tuple[str, str]:
        url = f"{self.base_url}/{soap.SERVICE_OF[operation]}"
        try:
            answer = self.http.post(url, data=soap.envelope(operation, fields), timeout=self.timeout,
                                    headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                                    allow_redirects=False)
        except (requests.RequestException, OSError) as error:
            logger.warning("VIP %s failed: %s", operation, type(error).__name__)
            raise ServiceUnavailable(f"VIP {operation}: {type(error).__name__}") from error
        if answer.status_code != 200:
            logger.warning("VIP %s answered HTTP %s", operation, answer.status_code)
            raise ServiceUnavailable(f"VIP {operation}: HTTP {answer.status_code}")
        status, message = soap.status_of(answer.content, operation)
        if status == INTERNAL_ERROR:
            logger.warning("VIP %s: internal error", operation)
            raise ServiceUnavailable(f"VIP {operation}: {message}", code=status)
        return status, message

    def _expect(self, operation: str, fields: list, *, also_fine: tuple[str, ...] = ()) -> None:
        status, message = self._call(operation, fields)
        if status != soap.SUCCESS and status not in also_fine:
            logger.info("VIP %s refused: %s", operation, status)
            raise ServiceRefused(f"VIP {operation}: {status} {message}", code=status)

    def create_user(self, user_id: str) -> None:
        self._expect("CreateUser", [("userId", user_id)], also_fine=(USER_EXISTS,))

    def add_credential(self, user_id: str, credential_id: str, otp1: str, otp2: str) -> None:
        self._expect("AddCredential", [
            ("userId", user_id),
            ("credentialDetail", [("credentialId", credential_id), ("credentialType", CREDENTIAL_TYPE)]),
            ("otpAuthData", [("otp", otp1), ("otp2", otp2)]),
        ])

    def authenticate(self, user_id: str, otp: str) -> None:
        self._expect("AuthenticateUser", [("userId", user_id), ("otpAuthData", [("otp", otp)])])

    def remove_credential(self, user_id: str, credential_id: str) -> None:
        # Already gone (no such user or binding) is what was wanted.
        self._expect("RemoveCredential", [("userId", user_id), ("credentialId", credential_id),
                                          ("credentialType", CREDENTIAL_TYPE)],
                     also_fine=(USER_MISSING, NOT_BOUND, CREDENTIAL_UNKNOWN))
