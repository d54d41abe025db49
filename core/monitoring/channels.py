"""Sending alert messages: signed webhooks, Slack incoming webhooks and e-mail.

Each sender returns (ok, status, error): ``status`` is the HTTP status or SMTP
reply, or the kind of failure; ``error`` says what went wrong in a line. Nothing
raises: the outbox records the attempt and retries.

Outbound calls are safe by default, since an admin's channel (or someone who stole an
admin's session) must not turn the monitor into a probe of the network it runs in:

- the host is resolved once and every address it resolves to must be public: loopback,
  link-local (169.254.169.254, a cloud's metadata service), private, shared, reserved
  and multicast addresses are refused unless ``ALERT_ALLOW_PRIVATE_TARGETS`` is set
  (for receivers on premises); the connection goes to the address that was checked, so
  a second DNS answer cannot swap it (the TLS name is still the host's);
- redirects are not followed (a POST turned into a GET to loopback is not sent);
- one deadline covers a whole delivery (connect, send, answer), not each socket read;
- an SMTP password is sent only over TLS (implicit TLS on port 465, else STARTTLS).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

from core.errors import InvalidInput
from core.monitoring.alerts.records import Channel
from core.storage.secrets import redact

TIMEOUT_SECONDS = 10  # the whole delivery
SIGNATURE_HEADER = "X-Signature"
IMPLICIT_TLS_PORT = 465
MAX_ANSWER_BYTES = 64 * 1024
_PRIVATE_FIX = ("To fix this, give a public address, or set ALERT_ALLOW_PRIVATE_TARGETS=1 "
                "for receivers on your own network.")


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: what a receiver recomputes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str, allow_private: bool = False) -> str:
    """An http(s) URL whose host resolves to allowed addresses (checked again on send)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"{redact(url)!r} is not an http(s) URL. To fix this, give the "
                           "full address, e.g. https://hooks.example.com/alerts.")
    try:
        port = parsed.port
    except ValueError:
        raise InvalidInput(f"{redact(url)!r} has no valid port. To fix this, give a port "
                           "between 1 and 65535, or none.") from None
    _check_where(parsed.hostname, port or (443 if parsed.scheme == "https" else 80),
                 allow_private)
    return url


def _check_where(host: str, port: int, allow_private: bool) -> None:
    """At a channel's creation: a host that resolves to an address not allowed is
    refused; one that does not resolve now (no DNS here, a name not yet published) is
    taken, since every send resolves and checks it again."""
    try:
        resolve(host, port, allow_private)
    except InvalidInput as error:
        if "does not resolve" not in str(error):
            raise


def check_smtp(value: str, allow_private: bool = False) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--smtp {value!r} is not HOST:PORT. To fix this, pass e.g. "
                           "--smtp smtp.example.com:587.")
    _check_where(host.strip("[]"), int(port), allow_private)
    return value


def check_address(value: str) -> str:
    local, sep, domain = value.partition("@")
    if (not sep or not local or not domain or " " in value
            or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise InvalidInput(f"{value!r} is not an e-mail address. To fix this, pass e.g. "
                           "--email oncall@example.com.")
    return value


def resolve(host: str, port: int, allow_private: bool = False) -> tuple[int, tuple]:
    """The (family, address) to connect to for ``host``: every address it resolves to
    must be public unless ``allow_private``.

    Raises:
        InvalidInput: the host does not resolve, or to an address not allowed.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput(f"the host {host!r} does not resolve. To fix this, check its "
                           "name.") from None
    for _, _, _, _, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if not allow_private and not _public(mapped or ip):
            raise InvalidInput(f"the host {host!r} resolves to {ip}, which is not a public "
                               f"address (loopback, private, link-local or reserved). "
                               f"{_PRIVATE_FIX}")
    family, _, _, _, address = found[0]
    return family, address


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def slack_text(text: str) -> str:
    """Text for Slack's mrkdwn, escaped as Slack asks (``&``, ``<``, ``>``): a reason that
    says ``<!channel>`` or ``<https://evil|docs>`` arrives as those characters, not as a
    ping to everyone or a disguised link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(payload: dict) -> dict:
    """Slack's incoming-webhook message: ``text`` (notifications) and ``blocks``."""
    state = payload["state"].upper()
    title = slack_text(f"[{state}] {payload['rule']}: {payload['summary']}")
    where = (f"model *{slack_text(str(payload['model']))}*"
             + (f", version {payload['version']}" if payload.get("version") else "")
             + f" · {payload['at']}")
    return {"text": title, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": where}]}]}


def header_line(text: str, limit: int = 200) -> str:
    """``text`` as one line for a mail header: line breaks and control characters (which
    Python's email package refuses, and which would start new headers) become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


def email_message(payload: dict, sender: str, to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = header_line(f"[{payload['state']}] {payload['rule']}: "
                                  f"{payload['summary']}")
    mail["From"], mail["To"] = header_line(sender), header_line(to)
    mail.set_content(f"{payload['summary']}\n\nrule: {payload['rule']}\nstate: "
                     f"{payload['state']}\nmodel: {payload['model']}\nversion: "
                     f"{payload.get('version')}\nat: {payload['at']}\n\ndetails:\n"
                     + json.dumps(payload.get("details", {}), indent=2, sort_keys=True,
                                  default=str))
    # (file name, HTML) pairs the sender adds (the drift report of a drift alert).
    for name, html in payload.get("attachments", ()):
        mail.add_attachment(html, subtype="html", filename=header_line(name))
    return mail


class _Deadline:
    """One deadline for a whole delivery: when it passes, ``close`` is called (shutting
    the socket, which wakes any read blocked on it), whatever step is under way."""

    def __init__(self, seconds: float, close: Callable[[], None]):
        self.ends = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, close)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.ends


def _shutdown(get_socket: Callable[[], socket.socket | None]) -> Callable[[], None]:
    def close() -> None:
        sock = get_socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    return close


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to the address that was checked (``Host`` stays the name)."""

    def __init__(self, host: str, port: int, address: tuple):
        super().__init__(host, port, timeout=TIMEOUT_SECONDS)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address[:2], self.timeout)


class _PinnedHTTPS(_PinnedHTTP):
    """HTTPS to the checked address; the certificate is verified for the host's name."""

    default_port = 443

    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock,
                                                             server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], allow_private: bool = False
         ) -> tuple[bool, str, str | None]:
    """POSTs ``body`` once: no redirect followed, one deadline, checked address."""
    parsed = urlparse(url)
    where = redact(url)
    https = parsed.scheme == "https"
    host = parsed.hostname or ""
    try:
        _, address = resolve(host, parsed.port or (443 if https else 80), allow_private)
    except InvalidInput as error:
        return False, "refused", str(error)
    connection = (_PinnedHTTPS if https else _PinnedHTTP)(host, parsed.port or (
        443 if https else 80), address)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        with _Deadline(TIMEOUT_SECONDS, _shutdown(lambda: connection.sock)) as deadline:
            try:
                connection.request("POST", path, body=body, headers={
                    "Content-Type": "application/json", "User-Agent": "model-monitor"}
                    | headers)
                response = connection.getresponse()
                response.read(MAX_ANSWER_BYTES)
                failure = None
            except (OSError, http.client.HTTPException, ssl.SSLError) as error:
                failure = f"could not reach {where}: {error}"
        if deadline.passed:  # a socket shut at the deadline may read as a short answer
            return False, "timeout", f"{where} did not answer within {TIMEOUT_SECONDS} s"
        if failure is not None:
            return False, "unreachable", failure
    finally:
        connection.close()
    if 300 <= response.status < 400:
        return False, str(response.status), (
            f"{where} answered {response.status} {response.reason}, a redirect; redirects "
            "are not followed. To fix this, give the address it redirects to.")
    if response.status >= 400:
        return False, str(response.status), (f"the receiver answered {response.status} "
                                             f"{response.reason}")
    return True, str(response.status), None


def send(channel: Channel, payload: dict, smtp_password: str = "",
         allow_private: bool = False) -> tuple[bool, str, str | None]:
    """Sends one message to one channel."""
    if channel.kind == "webhook":
        body = json.dumps(payload, sort_keys=True, default=str).encode()
        headers = {SIGNATURE_HEADER: signature(body, channel.secret)} if channel.secret else {}
        return post(channel.target, body, headers, allow_private)
    if channel.kind == "slack":
        return post(channel.target, json.dumps(slack_body(payload)).encode(), {},
                    allow_private)
    return _send_email(channel, payload, smtp_password, allow_private)


class _PinnedSMTP(smtplib.SMTP):
    """SMTP to the address that was checked; STARTTLS verifies the server's name."""

    def __init__(self, address: tuple, **options: Any):
        self.address = address
        super().__init__(**options)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection(self.address[:2], timeout)


class _PinnedSMTPS(smtplib.SMTP_SSL):
    """SMTP over implicit TLS (port 465) to the checked address."""

    def __init__(self, address: tuple, **options: Any):
        self.address = address
        super().__init__(context=ssl.create_default_context(), **options)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection(self.address[:2], timeout)
        return self.context.wrap_socket(raw, server_hostname=self._host)  # type: ignore[attr-defined]


def _send_email(channel: Channel, payload: dict, password: str, allow_private: bool
                ) -> tuple[bool, str, str | None]:
    host, _, port_text = (channel.smtp or "").rpartition(":")
    host, port = host.strip("[]"), int(port_text)
    sender = channel.smtp_user if channel.smtp_user and "@" in channel.smtp_user else (
        f"model-monitor@{socket.gethostname()}")
    try:
        _, address = resolve(host, port, allow_private)
    except InvalidInput as error:
        return False, "refused", str(error)
    implicit_tls = port == IMPLICIT_TLS_PORT
    smtp: smtplib.SMTP | None = None
    try:
        smtp = (_PinnedSMTPS if implicit_tls else _PinnedSMTP)(address, timeout=TIMEOUT_SECONDS)
        with _Deadline(TIMEOUT_SECONDS, _shutdown(lambda: getattr(smtp, "sock", None))) \
                as deadline:
            try:
                smtp.connect(host, port)
                smtp.ehlo()
                encrypted = implicit_tls
                if not implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                    encrypted = True
                if channel.smtp_user:
                    if not encrypted:
                        return False, "refused", (
                            f"{host}:{port} offers no STARTTLS, and the password is never "
                            "sent in clear. To fix this, use a server with STARTTLS, or "
                            "implicit TLS on port 465.")
                    smtp.login(channel.smtp_user, password)
                refused = smtp.send_message(email_message(payload, sender, channel.target))
            except smtplib.SMTPResponseException as error:
                return False, str(error.smtp_code), (f"the SMTP server answered "
                                                     f"{error.smtp_code} {error.smtp_error!r}")
            except (smtplib.SMTPException, OSError, ValueError) as error:
                if deadline.passed:
                    return False, "timeout", (f"{host}:{port} did not finish within "
                                              f"{TIMEOUT_SECONDS} s")
                return False, "unreachable", f"could not send through {host}:{port}: {error}"
        if deadline.passed:
            return False, "timeout", f"{host}:{port} did not finish within {TIMEOUT_SECONDS} s"
    finally:
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass
    if refused:
        return False, "refused", f"the server refused {', '.join(refused)}"
    return True, "250", None
