"""Sending alert messages: signed webhooks, Slack incoming webhooks and e-mail.

Each sender returns (ok, status, error): ``status`` is the HTTP status or SMTP
reply, or the kind of failure; ``error`` says what went wrong in a line. Nothing
raises: the outbox records the attempt and retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from urllib.parse import urlparse

from core.errors import InvalidInput
from core.monitoring.alerts import Channel

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Signature"


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: what a receiver recomputes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"{url!r} is not an http(s) URL. To fix this, give the full "
                           "address, e.g. https://hooks.example.com/alerts.")
    return url


def check_smtp(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--smtp {value!r} is not HOST:PORT. To fix this, pass e.g. "
                           "--smtp smtp.example.com:587.")
    return value


def check_address(value: str) -> str:
    local, sep, domain = value.partition("@")
    if not sep or not local or not domain or " " in value:
        raise InvalidInput(f"{value!r} is not an e-mail address. To fix this, pass e.g. "
                           "--email oncall@example.com.")
    return value


def slack_body(payload: dict) -> dict:
    """Slack's incoming-webhook message: ``text`` (notifications) and ``blocks``."""
    state = payload["state"].upper()
    title = f"[{state}] {payload['rule']}: {payload['summary']}"
    where = (f"model *{payload['model']}*"
             + (f", version {payload['version']}" if payload.get("version") else "")
             + f" · {payload['at']}")
    return {"text": title, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": where}]}]}


def email_message(payload: dict, sender: str, to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"[{payload['state']}] {payload['rule']}: {payload['summary']}"[:200]
    mail["From"], mail["To"] = sender, to
    mail.set_content(f"{payload['summary']}\n\nrule: {payload['rule']}\nstate: "
                     f"{payload['state']}\nmodel: {payload['model']}\nversion: "
                     f"{payload.get('version')}\nat: {payload['at']}\n\ndetails:\n"
                     + json.dumps(payload.get("details", {}), indent=2, sort_keys=True,
                                  default=str))
    return mail


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[bool, str, str | None]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"} | headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return True, str(response.status), None
    except urllib.error.HTTPError as error:
        return False, str(error.code), f"the receiver answered {error.code} {error.reason}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, "unreachable", f"could not reach {urlparse(url).netloc}: {reason}"


def send(channel: Channel, payload: dict, smtp_password: str = ""
         ) -> tuple[bool, str, str | None]:
    """Sends one message to one channel."""
    if channel.kind == "webhook":
        body = json.dumps(payload, sort_keys=True, default=str).encode()
        headers = {SIGNATURE_HEADER: signature(body, channel.secret)} if channel.secret else {}
        return _post(channel.target, body, headers)
    if channel.kind == "slack":
        return _post(channel.target, json.dumps(slack_body(payload)).encode(), {})
    return _send_email(channel, payload, smtp_password)


def _send_email(channel: Channel, payload: dict, password: str
                ) -> tuple[bool, str, str | None]:
    host, _, port = (channel.smtp or "").rpartition(":")
    sender = channel.smtp_user if channel.smtp_user and "@" in channel.smtp_user else (
        f"model-monitor@{socket.gethostname()}")
    try:
        with smtplib.SMTP(host, int(port), timeout=TIMEOUT_SECONDS) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):  # encrypt whenever the server offers it
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if channel.smtp_user:
                smtp.login(channel.smtp_user, password)
            refused = smtp.send_message(email_message(payload, sender, channel.target))
        if refused:
            return False, "refused", f"the server refused {', '.join(refused)}"
        return True, "250", None
    except smtplib.SMTPResponseException as error:
        return False, str(error.smtp_code), f"the SMTP server answered {error.smtp_code} " \
                                            f"{error.smtp_error!r}"
    except (smtplib.SMTPException, OSError) as error:
        return False, "unreachable", f"could not send through {channel.smtp}: {error}"
