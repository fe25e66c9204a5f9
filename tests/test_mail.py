"""The outbox's e-mail channel: Dutch messages per topic, delivery through a real local SMTP server, contacts."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fixtures.app import Clock
from fixtures.receivers import SmtpServer
from sqlalchemy import select

from broker import create_app
from broker.app.extensions import db
from broker.models import AuditEntryRow, OutboxAttempt, OutboxEntry, User
from broker.parties import mail, outbox
from broker.parties.contacts import party_addresses

PARTY = "swv-de-liemers"
ADDRESS = "fg@liemers.example.nl"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
)  # fmt: skip
# Saturday noon in summer time; the 24 and 72 hours end after the switch to winter time.
DETECTED = dt.datetime(2026, 10, 24, 10, 0, tzinfo=dt.UTC)
PASSWORD = "een lang geheim wachtwoord"


def local(moment: dt.datetime) -> str:
    """Format a UTC moment as the breach service does: Dutch, Europe/Amsterdam, with the zone's name."""
    there = moment.astimezone(AMSTERDAM)
    day = f"{DAYS[there.weekday()]} {there.day} {MONTHS[there.month - 1]} {there.year}"
    return f"{day} {there:%H:%M} ({there.tzname()})"


def breach_payload(topic: str = "breach.notified") -> dict[str, Any]:
    """A complete payload of `topic` about breach 3."""
    deadline, ap_deadline = DETECTED + dt.timedelta(hours=24), DETECTED + dt.timedelta(hours=72)
    payload: dict[str, Any] = {
        "breach_id": "0b6f3a52-1d9e-4c3e-9a51-1f0e2d3c4b5a",
        "breach_number": 3,
        "convenant_id": "thuiszitters-midden-gelre",
        "convenant_title": "Convenant thuiszitters Midden-Gelre",
        "reporting_party": "rbl-midden-gelre",
        "reporting_party_name": "RBL Midden-Gelre",
        "state": "gemeld",
        "detected_at": DETECTED.isoformat(),
        "deadline": deadline.isoformat(),
        "ap_deadline": ap_deadline.isoformat(),
        "detected_at_local": local(DETECTED),
        "deadline_local": local(deadline),
        "ap_deadline_local": local(ap_deadline),
        "description": "Een kwartaallijst is naar de verkeerde partij gestuurd.",
        "suspected_cause": "Verkeerde ontvanger gekozen bij het uploaden",
        "personal_data_categories": [{"field": "adres", "label": "Adresgegevens"}],
        "data_subject_categories": [{"category": "langdurig_verzuim", "label": "Langdurig verzuim", "count": 17}],
        "data_subjects": 17,
        "parties": [
            {"party_id": "rbl-midden-gelre", "name": "RBL Midden-Gelre", "role": "melder"},
            {"party_id": PARTY, "name": "SWV De Liemers", "role": "betrokken"},
        ],
        "acknowledge_url": "https://broker.example.nl/api/v1/breaches/0b6f3a52/acknowledge",
    }
    missing = [{"party_id": PARTY, "name": "SWV De Liemers"}]
    extras: dict[str, dict[str, Any]] = {
        "breach.updated": {"correction_reason": "Dubbel geteld bij de eerste telling"},
        "breach.overdue": {"missing_acknowledgements": missing},
        "breach.ap_overdue": {"missing_ap_decisions": missing},
        "breach.closed": {
            "measures": "Lijst verwijderd bij de ontvanger; upload vraagt nu om bevestiging.",
            "ap_decisions": [
                {"party_id": "rbl-midden-gelre", "name": "RBL Midden-Gelre", "reported_to_ap": True,
                 "ap_reference": "AP-2026-0042", "reasoning": None},
                {"party_id": PARTY, "name": "SWV De Liemers", "reported_to_ap": False, "ap_reference": None,
                 "reasoning": "Geen risico: de ontvanger is zelf gebonden aan het convenant"},
            ],
        },
    }  # fmt: skip
    payload.update(extras.get(topic, {}))
    return payload


def enqueue_email(app: Any, topic: str = "breach.notified", payload: dict[str, Any] | None = None) -> str:
    """Queue one e-mail entry to ADDRESS and commit; return its id."""
    from broker.app import runtime

    key = f"test/{uuid.uuid4()}"
    with app.app_context():
        queued = outbox.enqueue(
            db.session, party_id=PARTY, topic=topic, dedupe_key=key, payload=payload or breach_payload(topic),
            now=runtime.now(), channel="email", address=ADDRESS,
        )  # fmt: skip
        assert queued == 1
        db.session.commit()
        entry_id = db.session.scalars(select(OutboxEntry.id).where(OutboxEntry.dedupe_key == key)).one()
    return entry_id


def deliver(app: Any, mailer: mail.Mailer | None) -> int:
    """Run the outbox once at the clock's time with `mailer`."""
    from broker.app import runtime

    with app.app_context():
        return outbox.deliver_due(
            db.session, runtime.master_key(), runtime.now(), mailer=mailer, sender=app.config["SMTP_FROM"]
        )


def use_server(app: Any, server: SmtpServer) -> mail.Mailer:
    app.config.update(SMTP_HOST=server.host, SMTP_PORT=server.port)
    mailer = mail.smtp_mailer(app.config)
    assert mailer is not None
    return mailer


def entry_and_attempts(app: Any, entry_id: str) -> tuple[OutboxEntry, list[OutboxAttempt]]:
    with app.app_context():
        entry = db.session.get(OutboxEntry, entry_id)
        assert entry is not None
        query = select(OutboxAttempt).where(OutboxAttempt.entry_id == entry_id).order_by(OutboxAttempt.attempted_at)
        return entry, list(db.session.scalars(query))


def add_broker_officer(runner: Any, username: str) -> None:
    result = runner.invoke(args=["users", "add", username, "--role", "broker-officer", "--password", PASSWORD])
    assert result.exit_code == 0, result.output


def audit_entries(app: Any, name: str) -> list[tuple[dict[str, Any], bytes]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == name).order_by(AuditEntryRow.idx))
        return [(json.loads(r.canonical), bytes(r.canonical)) for r in rows]


# -- composing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(mail.FIELDS))
def test_every_topic_names_the_four_required_fields_and_the_local_deadline(topic: str) -> None:
    """Each topic's e-mail has cause, data categories, subject categories, count and the Amsterdam-time deadline."""
    payload = breach_payload(topic)
    message = mail.compose(topic, payload, ADDRESS, mail.DEFAULT_SENDER)
    body = message.get_content()
    for heading, value in [
        ("Vermeende oorzaak", payload["suspected_cause"]),
        ("Categorieën persoonsgegevens", "Adresgegevens"),
        ("Categorieën betrokkenen", "Langdurig verzuim: 17"),
        ("Aantal betrokkenen", "17"),
    ]:
        assert f"\n{heading}\n" in body and value in body.split(f"\n{heading}\n", 1)[1].split("\n\n", 1)[0], heading
    # The 24 hours end after the switch to winter time: 10:00 UTC is 11:00 CET, not 12:00.
    assert "zondag 25 oktober 2026 11:00 (CET)" in body
    assert payload["deadline"] not in body  # the UTC form is for machines
    assert message["Subject"].startswith("[Datalek 3] ")
    assert message["X-Broker-Event"] == topic
    assert message["To"] == ADDRESS and message["From"] == mail.DEFAULT_SENDER
    assert message["Message-ID"].endswith("@convenant-broker.local>") and message["Date"]


@pytest.mark.parametrize(
    ("topic", "subject", "snippets"),
    [
        (
            "breach.notified",
            "bevestig uiterlijk zondag 25 oktober 2026 11:00 (CET)",
            ["acknowledge", "POST", "dinsdag 27 oktober 2026 11:00 (CET)", "72 uur", "Autoriteit Persoonsgegevens"],
        ),
        ("breach.updated", "Gecorrigeerde", ["Dubbel geteld bij de eerste telling", "acknowledge"]),
        ("breach.overdue", "24 uur", ["Nog geen bevestiging van\n- SWV De Liemers\n"]),
        ("breach.ap_overdue", "72 uur", ["Nog geen besluit van\n- SWV De Liemers\n", "dinsdag 27 oktober 2026"]),
        (
            "breach.closed",
            "gesloten",
            ["upload vraagt nu om bevestiging", "RBL Midden-Gelre: gemeld bij de AP", "AP-2026-0042",
             "SWV De Liemers: niet gemeld bij de AP", "Geen risico"],
        ),
    ],
)  # fmt: skip
def test_each_topic_says_what_it_is_about(topic: str, subject: str, snippets: list[str]) -> None:
    """Subject and body carry each topic's own content: deadline, correction, who is missing, decisions."""
    message = mail.compose(topic, breach_payload(topic), ADDRESS, mail.DEFAULT_SENDER)
    assert subject in message["Subject"]
    body = message.get_content()
    for snippet in snippets:
        assert snippet in body


def test_fields_outside_the_topic_list_never_reach_the_message() -> None:
    """A payload's extra fields (even a BSN, which should never be there) are not rendered."""
    payload = {**breach_payload(), "bsn": "111222333", "notes": "interne notitie"}
    text = mail.compose("breach.notified", payload, ADDRESS, mail.DEFAULT_SENDER).as_string()
    assert "111222333" not in text and "interne notitie" not in text


def test_unknown_topic_or_incomplete_payload_is_refused() -> None:
    """No generic dump for an unknown topic, and no message with a required field missing."""
    with pytest.raises(ValueError, match="no e-mail template"):
        mail.compose("quarterly_list.reminder", breach_payload(), ADDRESS, mail.DEFAULT_SENDER)
    incomplete = breach_payload("breach.updated")
    del incomplete["correction_reason"]
    with pytest.raises(ValueError, match="correction_reason"):
        mail.compose("breach.updated", incomplete, ADDRESS, mail.DEFAULT_SENDER)


def test_message_id_is_stable_per_delivery_and_date_follows_the_clock() -> None:
    """Retries of one entry carry the same Message-ID; Date is the given time."""
    payload = breach_payload()
    first = mail.compose("breach.notified", payload, ADDRESS, mail.DEFAULT_SENDER, delivery_id="e-1")
    again = mail.compose("breach.notified", payload, ADDRESS, mail.DEFAULT_SENDER, delivery_id="e-1", now=DETECTED)
    assert first["Message-ID"] == again["Message-ID"] == "<e-1@convenant-broker.local>"
    assert again["X-Broker-Delivery"] == "e-1"
    assert again["Date"].datetime == DETECTED


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("fg@liemers.example.nl", "fg@liemers.example.nl"),
        (" Privacy.Officer+datalek@Gemeente-Arnhem.NL ", "Privacy.Officer+datalek@gemeente-arnhem.nl"),
        ("fg", None),
        ("fg@localhost", None),
        ("f g@x.nl", None),
        ("FG <fg@x.nl>", None),
        ("a@x.nl, b@x.nl", None),
        ("a@@x.nl", None),
        ("a@x..nl", None),
        ("a@-x.nl", None),
        ("a@x.nl\nBcc: b@y.nl", None),
    ],
)
def test_check_address(address: str, expected: str | None) -> None:
    """One bare address with a dotted domain is accepted (domain lower-cased); anything else is refused."""
    if expected is None:
        with pytest.raises(ValueError, match="not an e-mail address"):
            mail.check_address(address)
    else:
        assert mail.check_address(address) == expected


# -- settings --------------------------------------------------------------------------------------


def test_smtp_settings(tmp_path: Any) -> None:
    """No host: no mailer; a username defaults to STARTTLS; a password may come from a file; bad security fails."""
    assert mail.smtp_mailer({"SMTP_HOST": None}) is None
    plain = mail.smtp_mailer({"SMTP_HOST": "smtp.example.nl"})
    assert plain == mail.SmtpMailer(host="smtp.example.nl", port=25, security="none", timeout=10)
    secret = tmp_path / "smtp-password"
    secret.write_text("geheim\n")
    config = {"SMTP_HOST": "smtp.example.nl", "SMTP_PORT": 587, "SMTP_USERNAME": "broker",
              "SMTP_PASSWORD_FILE": str(secret)}  # fmt: skip
    authenticated = mail.smtp_mailer(config)
    assert isinstance(authenticated, mail.SmtpMailer)
    assert (authenticated.security, authenticated.port, authenticated.password) == ("starttls", 587, "geheim")
    assert "geheim" not in repr(authenticated)
    with pytest.raises(ValueError, match="SMTP_SECURITY"):
        mail.smtp_mailer({"SMTP_HOST": "smtp.example.nl", "SMTP_SECURITY": "tls"})
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        mail.smtp_mailer({"SMTP_HOST": "smtp.example.nl", "SMTP_USERNAME": "broker"})


def test_smtp_settings_come_from_the_environment(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """BROKER_SMTP_* variables override the defaults; a port arrives as an int."""
    monkeypatch.setenv("BROKER_SMTP_HOST", "smtp.example.nl")
    monkeypatch.setenv("BROKER_SMTP_PORT", "2525")
    app = create_app(app_config)
    try:
        assert app.config["SMTP_HOST"] == "smtp.example.nl" and app.config["SMTP_PORT"] == 2525
        mailer = mail.smtp_mailer(app.config)
        assert isinstance(mailer, mail.SmtpMailer) and mailer.port == 2525
    finally:
        with app.app_context():
            db.engine.dispose()


# -- delivery --------------------------------------------------------------------------------------


def test_email_entry_is_delivered_through_smtp_and_recorded(app: Any, smtp_server: SmtpServer) -> None:
    """An e-mail entry (its party has no webhook) arrives at the server; the attempt is kept as mailto: / 250."""
    entry_id = enqueue_email(app)
    assert deliver(app, use_server(app, smtp_server)) == 1
    (message,) = smtp_server.messages
    assert smtp_server.envelopes == [("noreply@convenant-broker.local", [ADDRESS])]
    assert message["To"] == ADDRESS and message["X-Broker-Event"] == "breach.notified"
    assert message["X-Broker-Delivery"] == entry_id and message["Message-ID"] == f"<{entry_id}@convenant-broker.local>"
    assert "Verkeerde ontvanger gekozen" in message.get_content()
    entry, attempts = entry_and_attempts(app, entry_id)
    assert entry.delivered_at is not None and entry.attempts == 1
    assert [(a.url, a.status_code, a.error) for a in attempts] == [(f"mailto:{ADDRESS}", 250, None)]
    assert deliver(app, use_server(app, smtp_server)) == 0 and len(smtp_server.messages) == 1  # once only


def test_failing_server_is_retried_with_backoff(app: Any, runner: Any, clock: Clock, smtp_server: SmtpServer) -> None:
    """Two 451 answers are retried after 1, then 2 minutes (the clock moves, nobody sleeps); each try is kept."""
    entry_id = enqueue_email(app)
    use_server(app, smtp_server)
    smtp_server.fail_next = 2
    steps = []
    for minutes in (0, 0, 1, 1, 1):  # `webhooks deliver` sends e-mail too, with the configured server
        clock.advance(minutes=minutes)
        steps.append(runner.invoke(args=["webhooks", "deliver"]).output.strip())
    assert steps == ["delivered: 0", "delivered: 0", "delivered: 0", "delivered: 0", "delivered: 1"]
    entry, attempts = entry_and_attempts(app, entry_id)
    assert [a.status_code for a in attempts] == [None, None, 250]
    assert [a.attempted_at - attempts[0].attempted_at for a in attempts] == [
        dt.timedelta(0), dt.timedelta(minutes=1), dt.timedelta(minutes=3)
    ]  # fmt: skip
    for failed in attempts[:2]:
        assert failed.error is not None and "451" in failed.error and len(failed.error) <= 300
        assert "Verkeerde ontvanger" not in failed.error  # never the message itself
    assert entry.delivered_at == clock.now and entry.attempts == 3
    assert len(smtp_server.messages) == 1


def test_run_due_sends_email_when_smtp_is_configured(app: Any, runner: Any, smtp_server: SmtpServer) -> None:
    """The scheduler's tick builds its mailer from SMTP_HOST/SMTP_PORT and sends from SMTP_FROM."""
    enqueue_email(app)
    app.config["SMTP_FROM"] = "Broker test <broker@test.example.nl>"
    use_server(app, smtp_server)
    output = runner.invoke(args=["match", "run-due"]).output
    assert "outbox delivered: 1" in output
    (message,) = smtp_server.messages
    assert message["From"] == "Broker test <broker@test.example.nl>"
    assert message["Message-ID"].endswith("@test.example.nl>")


def test_email_keeps_trying_for_a_week_then_gives_up(app: Any, clock: Clock, smtp_server: SmtpServer) -> None:
    """A server that keeps failing gets a try after each back-off (1 minute doubling to 6 hours) for a
    week after the entry was queued; the first try after that abandons it, every attempt kept."""
    entry_id = enqueue_email(app)
    queued = clock.now
    mailer = use_server(app, smtp_server)
    smtp_server.fail_next = 10_000
    n = 0
    while True:
        assert deliver(app, mailer) == 0
        n += 1
        entry, attempts = entry_and_attempts(app, entry_id)
        assert len(attempts) == n
        if entry.abandoned_at is not None:
            break
        assert entry.next_attempt_at == clock.now + outbox.backoff(n)
        clock.now = entry.next_attempt_at
    assert entry.abandoned_at == clock.now >= queued + outbox.KEEP_TRYING > attempts[-2].attempted_at
    assert entry.delivered_at is None
    assert 30 < n < 45  # 9 doublings to 6 hours, then every 6 hours for the rest of the week
    clock.advance(days=2)
    assert deliver(app, mailer) == 0
    assert len(entry_and_attempts(app, entry_id)[1]) == n and smtp_server.messages == []


def test_without_a_mailer_email_entries_wait(app: Any, runner: Any, smtp_server: SmtpServer) -> None:
    """No mailer (no SMTP_HOST): e-mail entries get no attempt and stay due until e-mail is configured."""
    entry_id = enqueue_email(app)
    assert deliver(app, None) == 0
    assert runner.invoke(args=["match", "run-due"]).exit_code == 0
    entry, attempts = entry_and_attempts(app, entry_id)
    assert (entry.attempts, entry.delivered_at, entry.abandoned_at, attempts) == (0, None, None, [])
    assert deliver(app, use_server(app, smtp_server)) == 1


def test_unrenderable_entry_is_recorded_and_does_not_block_the_next(app: Any, smtp_server: SmtpServer) -> None:
    """An entry whose topic has no template fails as an attempt with its error; later entries still go out."""
    bad = enqueue_email(app, topic="breach.unknown", payload={"breach_number": 1})
    good = enqueue_email(app)
    assert deliver(app, use_server(app, smtp_server)) == 1
    entry, attempts = entry_and_attempts(app, bad)
    assert entry.delivered_at is None and entry.attempts == 1
    assert attempts[0].status_code is None and "no e-mail template" in (attempts[0].error or "")
    assert entry_and_attempts(app, good)[0].delivered_at is not None


def test_enqueue_checks_channel_and_address(app: Any) -> None:
    """An e-mail entry needs an address, a webhook entry has none, and there are only those two channels."""
    from broker.app import runtime

    common = {"party_id": PARTY, "topic": "breach.notified", "dedupe_key": "k", "payload": {}}
    with app.app_context():
        for channel, address in (("email", None), ("webhook", ADDRESS), ("sms", None)):
            with pytest.raises(ValueError):
                outbox.enqueue(db.session, now=runtime.now(), channel=channel, address=address, **common)


# -- `broker contacts` and officers' addresses ----------------------------------------------------------


def test_contacts_set_replaces_and_list_shows(app: Any, runner: Any) -> None:
    """`contacts set` replaces a party's addresses (checked, without repeats); `contacts list` shows them."""
    result = runner.invoke(args=["contacts", "set", "--party", PARTY, "fg@Liemers.example.nl", "b@x.nl", "b@x.nl"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["contacts", "set", "--party", "rbl-midden-gelre", "rbl@x.nl"]).exit_code == 0
    with app.app_context():
        assert party_addresses(db.session, PARTY) == ["b@x.nl", "fg@liemers.example.nl"]
    lines = runner.invoke(args=["contacts", "list"]).output.splitlines()
    assert [line.split() for line in lines] == [
        ["rbl-midden-gelre", "rbl@x.nl"], [PARTY, "b@x.nl"], [PARTY, "fg@liemers.example.nl"]
    ]  # fmt: skip
    assert runner.invoke(args=["contacts", "set", "--party", PARTY, "nieuw@x.nl"]).exit_code == 0
    output = runner.invoke(args=["contacts", "list", "--party", PARTY]).output
    assert output.split() == [PARTY, "nieuw@x.nl"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--party", "gemeente-nergens", "a@x.nl"], "in no convenant"),
        (["--party", PARTY, "a@x.nl", "geen adres"], "not an e-mail address"),
        (["--party", PARTY], "Missing argument"),
    ],
)
def test_contacts_set_refuses(app: Any, runner: Any, args: list[str], message: str) -> None:
    """An unknown party or an invalid address changes nothing."""
    assert runner.invoke(args=["contacts", "set", "--party", PARTY, "oud@x.nl"]).exit_code == 0
    result = runner.invoke(args=["contacts", "set", *args])
    assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert party_addresses(db.session, PARTY) == ["oud@x.nl"]


def test_contacts_set_is_audited_without_the_addresses(app: Any, runner: Any) -> None:
    """The audit entry names the party and the number of addresses, never an address."""
    assert runner.invoke(args=["contacts", "set", "--party", PARTY, "fg@x.nl", "dpo@y.nl"]).exit_code == 0
    ((entry, canonical),) = audit_entries(app, "contacts.set")
    assert entry["attributes"] == {"party": PARTY, "addresses": 2}
    assert entry["actor"]["id"].startswith("cli:")
    assert b"fg@x.nl" not in canonical and b"dpo@y.nl" not in canonical


def test_users_add_with_email_and_set_email(app: Any, runner: Any) -> None:
    """`users add --email` stores the officer's address and `users list` shows it; `users set-email` changes it."""
    args = ["users", "add", "ann", "--role", "privacy-officer", "--party", PARTY, "--password", PASSWORD]
    assert runner.invoke(args=[*args, "--email", "Ann@Liemers.example.nl"]).exit_code == 0
    add_broker_officer(runner, "bob")
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split() == ["ann", "privacy-officer", PARTY, "active", "Ann@liemers.example.nl"]
    assert lines[1].split() == ["bob", "broker-officer", "-", "active"]
    result = runner.invoke(args=["users", "set-email", "BOB", "bob@broker.example.nl"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        bob = db.session.get(User, "bob")
        assert bob is not None and bob.email == "bob@broker.example.nl"
    ((entry, canonical),) = audit_entries(app, "user.email_set")
    assert entry["attributes"] == {"username": "bob", "role": "broker-officer", "party": None}
    assert b"bob@broker.example.nl" not in canonical


@pytest.mark.parametrize(
    "args",
    [
        ["users", "add", "cas", "--role", "broker-officer", "--password", PASSWORD, "--email", "geen adres"],
        ["users", "set-email", "nobody", "a@x.nl"],
        ["users", "set-email", "dee", "geen adres"],
    ],
)
def test_invalid_officer_addresses_are_refused(app: Any, runner: Any, args: list[str]) -> None:
    """An invalid address adds or changes nobody; an unknown user cannot get one."""
    add_broker_officer(runner, "dee")
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert "not an e-mail address" in result.output or "no such user" in result.output
    with app.app_context():
        assert db.session.get(User, "cas") is None
        dee = db.session.get(User, "dee")
        assert dee is not None and dee.email is None
