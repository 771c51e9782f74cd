"""SMS through Twilio's Messages API, with a short timeout and no retries."""

from __future__ import annotations

import requests
from flask import current_app
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from portal.delivery.errors import DeliveryError


def _client() -> Client:
    config = current_app.config
    if not (config["TWILIO_ACCOUNT_SID"] and config["TWILIO_AUTH_TOKEN"] and config["TWILIO_FROM_NUMBER"]):
        raise DeliveryError("SMS is not configured.")
    client = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=TwilioHttpClient(timeout=config["SMS_TIMEOUT_SECONDS"]),
    )
    if config["TWILIO_API_BASE_URL"]:
        client.api.base_url = config["TWILIO_API_BASE_URL"].rstrip("/")
    return client


def send(to: str, body: str) -> None:
    """Send one text. Raises DeliveryError; the body (which holds a code) is never logged."""
    try:
        _client().messages.create(to=to, from_=current_app.config["TWILIO_FROM_NUMBER"], body=body)
    except (TwilioException, requests.RequestException, OSError) as error:
        current_app.logger.warning("SMS delivery failed: %s", type(error).__name__)
        raise DeliveryError("The text message could not be sent.") from error
