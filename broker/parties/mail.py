"""E-mail for the outbox: Dutch plain-text messages per topic, and a small SMTP sender.

A message names only the fields listed for its topic in `FIELDS`; whatever else a payload holds
never reaches a mailbox. An unknown topic is refused rather than sent as a generic dump.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError

from broker.app.config import Defaults

# Sends one message; raises OSError or smtplib.SMTPException (itself an OSError) when it cannot.
Mailer = Callable[[EmailMessage], None]

DEFAULT_SENDER = Defaults.SMTP_FROM
SECURITY = ("none", "starttls", "ssl")
MAX_ADDRESS_LENGTH = 254  # RFC 5321 4.5.3.1.3 (path) minus the angle brackets
# A sanity check, not RFC 5322: one @, no spaces or separators, a dotted ASCII domain.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
ADDRESS = re.compile(rf"[^@\s,;:<>()\[\]\"\\]+@{_LABEL}(?:\.{_LABEL})+", re.IGNORECASE)

BREACH_FIELDS = (
    "breach_id",
    "breach_number",
    "convenant_id",
    "convenant_title",
    "reporting_party",
    "reporting_party_name",
    "state",
    "detected_at",
    "deadline",
    "ap_deadline",
    "detected_at_local",
    "deadline_local",
    "ap_deadline_local",
    "description",
    "suspected_cause",
    "personal_data_categories",
    "data_subject_categories",
    "data_subjects",
    "parties",
    "acknowledge_url",
)

# topic -> the payload fields its message may use (all of them required).
FIELDS: dict[str, tuple[str, ...]] = {
    "breach.notified": BREACH_FIELDS,
    "breach.updated": (*BREACH_FIELDS, "correction_reason"),
    "breach.overdue": (*BREACH_FIELDS, "missing_acknowledgements"),
    "breach.ap_overdue": (*BREACH_FIELDS, "missing_ap_decisions"),
    "breach.closed": (*BREACH_FIELDS, "measures", "ap_decisions"),
}

SUBJECTS = {
    "breach.notified": "[Datalek {{ breach_number }}] Melding (vermoedelijk) datalek — bevestig uiterlijk "
    "{{ deadline_local }}",
    "breach.updated": "[Datalek {{ breach_number }}] Gecorrigeerde gegevens over het datalek",
    "breach.overdue": "[Datalek {{ breach_number }}] Escalatie: melding niet door alle partijen bevestigd binnen "
    "24 uur",
    "breach.ap_overdue": "[Datalek {{ breach_number }}] Escalatie: 72 uur verstreken zonder besluit over melding "
    "aan de AP",
    "breach.closed": "[Datalek {{ breach_number }}] Datalek gesloten",
}

# Plain text, not HTML: there is nothing to escape, and escaping would garble names like "Bos & Zn".
_env = Environment(
    loader=PackageLoader("broker.parties", "mail_templates"),
    autoescape=False,  # noqa: S701
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _template_name(topic: str) -> str:
    return topic.replace(".", "_") + ".txt"


def compose(
    topic: str,
    payload: dict[str, Any],
    to: str,
    sender: str,
    *,
    now: dt.datetime | None = None,
    delivery_id: str | None = None,
) -> EmailMessage:
    """Render the Dutch e-mail for an outbox entry of `topic`; raise ValueError if it cannot.

    `delivery_id` (the outbox entry's id) makes the Message-ID stable across retries, so a
    receiver can recognise a message that arrives twice.
    """
    fields = FIELDS.get(topic)
    if fields is None:
        raise ValueError(f"no e-mail template for topic {topic!r}")
    missing = [name for name in fields if name not in payload]
    if missing:
        raise ValueError(f"the {topic} payload lacks {', '.join(missing)}")
    context = {name: payload[name] for name in fields}
    try:
        subject = _env.from_string(SUBJECTS[topic]).render(context)
        body = _env.get_template(_template_name(topic)).render(context)
    except TemplateError as e:
        raise ValueError(f"cannot render the {topic} e-mail: {type(e).__name__}") from e
    domain = parseaddr(sender)[1].rpartition("@")[2] or "convenant-broker.local"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = " ".join(subject.split())
    message["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    # make_msgid with an explicit domain: without one it asks DNS for this host's name.
    message["Message-ID"] = f"<{delivery_id}@{domain}>" if delivery_id else make_msgid(domain=domain)
    message["X-Broker-Event"] = topic
    if delivery_id:
        message["X-Broker-Delivery"] = delivery_id
    message.set_content(body)
    return message


def check_address(address: str) -> str:
    """Return a bare e-mail address (domain in lower case), or raise ValueError if it does not look like one."""
    value = address.strip()
    if parseaddr(value) != ("", value) or len(value) > MAX_ADDRESS_LENGTH or not ADDRESS.fullmatch(value):
        raise ValueError(f"not an e-mail address: {address!r}")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


# -- sending ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SmtpMailer:
    """Send each message over a fresh SMTP connection (a handful of notices needs no pool)."""

    host: str
    port: int = 25
    security: str = "none"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 10.0

    def __call__(self, message: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def smtp_mailer(config: Mapping[str, Any]) -> Mailer | None:
    """The mailer the app's SMTP_* settings describe, or None when SMTP_HOST is unset (no e-mail).

    Raises ValueError for settings that cannot work, such as an unknown SMTP_SECURITY.
    """
    host = config.get("SMTP_HOST")
    if not host:
        return None
    # from_prefixed_env parses values as JSON where it can: a numeric username or password becomes an int.
    username = str(config["SMTP_USERNAME"]) if config.get("SMTP_USERNAME") is not None else None
    security = config.get("SMTP_SECURITY") or ("starttls" if username else "none")
    if security not in SECURITY:
        raise ValueError(f"SMTP_SECURITY must be one of {', '.join(SECURITY)}, not {security!r}")
    password = config.get("SMTP_PASSWORD")
    if password is None and config.get("SMTP_PASSWORD_FILE"):
        password = Path(config["SMTP_PASSWORD_FILE"]).read_text().strip()
    if username and password is None:
        raise ValueError("SMTP_USERNAME needs SMTP_PASSWORD or SMTP_PASSWORD_FILE")
    return SmtpMailer(
        host=str(host),
        port=int(config.get("SMTP_PORT") or 25),
        security=security,
        username=username,
        password=None if password is None else str(password),
        timeout=float(config.get("SMTP_TIMEOUT") or 10),
    )
