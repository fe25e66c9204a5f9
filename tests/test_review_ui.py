"""The privacy officers' review pages: in headless Chromium (Playwright) and through the test client."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import close_log_files
from fixtures.browser import browser_test
from fixtures.officers import OFFICER_PASSWORD, csrf_from
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select

from broker import create_app
from broker.app import runtime
from broker.app.extensions import db
from broker.models import AuditEntryRow
from broker.review import integrity

CSV_HEADER = [
    "index", "time", "name", "actor", "parties", "convenant", "processing_activity_id",
    "data_subject_id", "trace_id", "status",
]
HEX_IDS = re.compile(r"[0-9a-f]{16,}")
LOGIN_FAILED = "de gebruikersnaam of het wachtwoord klopt niet"
LIEMERS, PASSEND_WIJS = "swv-de-liemers", "swv-passend-wijs"


@pytest.fixture
def app_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The review settings of these tests: cookies over plain http, the verify result in tmp_path."""
    return {**app_config, "SESSION_COOKIE_SECURE": False, "REVIEW_VERIFY_FILE": str(tmp_path / "verify.json")}


def pseudonym(app: Any, n: int) -> str:
    with app.app_context():
        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


@pytest.fixture
def exchanged(rbl: Party, liemers: Party) -> None:
    """Real traffic: the RBL submits pupil 0 (Arnhem, for Passend Wijs) and pupil 1 (Duiven, for
    De Liemers); De Liemers fetches and acknowledges its delivery."""
    response = rbl.submit([make_record(0, gemeente="Arnhem"), make_record(1, gemeente="Duiven")])
    assert response.status_code == 201, response.json
    (delivery,) = liemers.get("/api/v1/deliveries").json["deliveries"]
    assert liemers.get(f"/api/v1/deliveries/{delivery['delivery_id']}").status_code == 200
    assert liemers.post(f"/api/v1/deliveries/{delivery['delivery_id']}/ack").status_code == 200


# -- the browser ---------------------------------------------------------------------------------


def log_in(page: Any, username: str, password: str = OFFICER_PASSWORD, *, succeeds: bool = True) -> None:
    page.goto("/review/login")
    page.get_by_label("Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord").fill(password)
    page.get_by_role("button", name="Inloggen").click()
    if succeeds:
        page.wait_for_url(re.compile(r"/review/$"))


def shown(page: Any) -> list[dict[str, Any]]:
    """The rows of the entries table: action, the parties' ids, the subject pseudonym prefix."""
    page.wait_for_load_state()
    rows = []
    for row in page.locator("table.entries tbody tr").all():
        subject = row.locator("td:nth-child(8) code")
        rows.append({
            "action": row.locator(".action").inner_text(),
            "parties": {p.get_attribute("title") for p in row.locator("span.party").all()},
            "subject": subject.get_attribute("title") if subject.count() else None,
        })
    return rows


@browser_test
def test_login_shows_one_error_for_wrong_password_and_unknown_user(page: Any, make_officer: Any) -> None:
    """A wrong password and an unknown user get the same message; the right password gets in."""
    from playwright.sync_api import expect

    make_officer("bo")
    for username, password in (("bo", "not the password!"), ("nobody", OFFICER_PASSWORD)):
        log_in(page, username, password, succeeds=False)
        expect(page.locator(".flash-error")).to_contain_text(LOGIN_FAILED)
        expect(page.get_by_label("Gebruikersnaam")).to_have_value("")
    log_in(page, "bo")
    expect(page.get_by_role("heading", name="Logboek van verwerkingen")).to_be_visible()
    expect(page.locator(".who-name")).to_have_text("bo")


@browser_test
def test_entries_of_real_submissions_can_be_filtered_by_party_and_action(
    page: Any, exchanged: None, make_officer: Any
) -> None:
    """The broker officer sees the exchange's entries, and narrows them by party and by action."""
    from playwright.sync_api import expect

    log_in(page, make_officer("bo"))
    actions = {row["action"] for row in shown(page)}
    assert {"submission.accepted", "record.received", "delivery.created", "delivery.fetched",
            "delivery.acked", "token.issued"} <= actions

    page.get_by_label("Partij").select_option(LIEMERS)
    page.get_by_role("button", name="Filteren").click()
    expect(page).to_have_url(re.compile(f"partij={LIEMERS}"))
    rows = shown(page)
    assert rows and all(LIEMERS in row["parties"] for row in rows)

    page.get_by_label("Actie").select_option("delivery.created")
    page.get_by_role("button", name="Filteren").click()
    expect(page).to_have_url(re.compile("actie=delivery.created"))
    rows = shown(page)
    assert [row["action"] for row in rows] == ["delivery.created"]
    assert rows[0]["parties"] == {"rbl-midden-gelre", LIEMERS}
    expect(page.get_by_label("Partij")).to_have_value(LIEMERS)


@browser_test
def test_subject_lookup_by_bsn_never_shows_the_bsn(
    app: Any, app_config: dict[str, Any], page: Any, exchanged: None, make_officer: Any
) -> None:
    """A BSN lookup filters on the subject's pseudonym; the BSN is in no URL, page, log or session."""
    from playwright.sync_api import expect

    bsn, subject = make_bsn(1), pseudonym(app, 1)
    log_in(page, make_officer("bo"))
    page.get_by_label("BSN").fill(bsn)
    page.get_by_role("button", name="Opzoeken").click()
    expect(page.locator(".subject-active")).to_contain_text("Filter op betrokkene actief")
    rows = shown(page)
    assert {row["action"] for row in rows} >= {"record.received", "delivery.created", "delivery.fetched"}
    assert {row["subject"] for row in rows} == {subject}

    invalid = bsn[:-1] + str((int(bsn[-1]) + 1) % 10)  # fails the elfproef
    page.get_by_label("BSN").fill(invalid)
    page.get_by_role("button", name="Opzoeken").click()
    expect(page.locator(".flash-error")).to_contain_text("geen geldig BSN")

    html = page.content()
    log_text = Path(app_config["LOG_FILE"]).read_text(encoding="utf-8")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == app.config["SESSION_COOKIE_NAME"]]
    session = app.session_interface.get_signing_serializer(app).loads(cookie["value"])
    assert "/review/betrokkene" in log_text  # the log file does record the review requests
    for text in (page.url, html, log_text, json.dumps(session)):
        assert bsn not in text and invalid not in text
    assert list(session["subject_pseudonyms"].values()) == [subject]

    page.get_by_role("button", name="Filter op betrokkene wissen").click()
    expect(page.locator(".subject-active")).to_have_count(0)
    assert len({row["subject"] for row in shown(page)}) > 1


@browser_test
def test_party_officer_sees_only_entries_of_the_own_party(
    app: Any, page: Any, exchanged: None, make_officer: Any
) -> None:
    """De Liemers' officer sees De Liemers' entries: pupil 1's delivery, not pupil 0's."""
    log_in(page, make_officer("liemers-po", party=LIEMERS))
    rows = shown(page)
    assert rows and all(LIEMERS in row["parties"] for row in rows)
    subjects = {row["subject"] for row in rows}
    assert pseudonym(app, 1) in subjects and pseudonym(app, 0) not in subjects
    assert "submission.accepted" not in {row["action"] for row in rows}  # the RBL's alone


@browser_test
def test_csv_export_downloads_the_filtered_entries(app: Any, page: Any, exchanged: None, make_officer: Any) -> None:
    """The export link downloads a CSV attachment with exactly the filtered entries."""
    log_in(page, make_officer("bo"))
    page.get_by_label("Actie").select_option("delivery.created")
    page.get_by_role("button", name="Filteren").click()
    page.wait_for_url(re.compile("actie=delivery.created"))
    with page.expect_download() as info:
        page.get_by_role("link", name="Exporteer CSV").click()
    download = info.value
    assert re.fullmatch(r"logboek-\d{8}-\d{6}\.csv", download.suggested_filename)
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert [r["name"] for r in body] == ["delivery.created", "delivery.created"]
    assert {r["data_subject_id"] for r in body} == {pseudonym(app, 0), pseudonym(app, 1)}
    assert {r["parties"] for r in body} == {f"rbl-midden-gelre;{PASSEND_WIJS}", f"rbl-midden-gelre;{LIEMERS}"}
    assert {r["status"] for r in body} == {"Ok"} and {r["convenant"] for r in body} == {CONVENANT}
    with app.app_context():
        for r in body:
            stored = db.session.get(AuditEntryRow, int(r["index"]))
            assert stored is not None and stored.trace_id == r["trace_id"]


@browser_test
def test_full_verification_shows_ok(page: Any, exchanged: None, make_officer: Any) -> None:
    """The button verifies the whole log and the banner then says OK (screenshot: /tmp/review.png)."""
    from playwright.sync_api import expect

    log_in(page, make_officer("bo"))
    expect(page.locator("#verificatie")).to_contain_text("Nog niet volledig gecontroleerd")
    page.get_by_role("button", name="Nu volledig controleren").click()
    expect(page.locator(".integrity-ok .verdict")).to_have_text("OK")
    expect(page.locator(".flash-info")).to_contain_text("volledig gecontroleerd")
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.screenshot(path="/tmp/review.png", full_page=True)


@browser_test
def test_logout_ends_the_session(page: Any, make_officer: Any) -> None:
    """After logging out the review pages send the visitor to the login page again."""
    from playwright.sync_api import expect

    log_in(page, make_officer("bo"))
    page.get_by_role("button", name="Uitloggen").click()
    expect(page.locator(".flash-info")).to_contain_text("uitgelogd")
    page.goto("/review/")
    expect(page).to_have_url(re.compile(r"/review/login"))
    expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()


@browser_test
def test_register_page_is_linked_from_the_entries(page: Any, exchanged: None, make_officer: Any) -> None:
    """An entry's processing activity links to its text in the register page."""
    from playwright.sync_api import expect

    log_in(page, make_officer("bo"))
    page.get_by_role("link", name="Uitwisselen van gegevens over thuiszitters op casusniveau").first.click()
    expect(page).to_have_url(re.compile(r"/review/register#act-urn-convenant-broker"))
    expect(page.locator("article.activity:target h3")).to_contain_text("casusniveau")


# -- the same pages through the test client -------------------------------------------------------


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_review_pages_send_security_headers(client: Any, make_officer: Any, officer_client: Any) -> None:
    """Login and entries pages forbid framing, inline scripts, referrers and sniffing."""
    http = officer_client(make_officer("bo"))
    for response in (client.get("/review/login"), http.get("/review/"), http.get("/review/register")):
        assert response.status_code == 200
        headers = response.headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "<script" not in response.get_data(as_text=True)
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(app_config: dict[str, Any], tmp_path: Path) -> None:
    """By default the session cookie is Secure, HttpOnly and SameSite=Lax."""
    close_log_files()
    app = create_app({k: v for k, v in app_config.items() if k != "SESSION_COOKIE_SECURE"})
    response = app.test_client().get("/review/login")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with app.app_context():
        db.engine.dispose()


def test_review_pages_need_a_login(client: Any) -> None:
    """Without a session the entries, export and register pages redirect to the login page."""
    for path in ("/review/", "/review/export.csv", "/review/register"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/review/login")


def test_forms_without_the_csrf_token_are_refused(client: Any, make_officer: Any, officer_client: Any) -> None:
    """Login, lookup, verification and logout refuse a POST without the session's CSRF token."""
    make_officer("bo")
    response = client.post("/review/login", data={"username": "bo", "password": OFFICER_PASSWORD})
    assert response.status_code == 400 and "Set-Cookie" not in response.headers
    http = officer_client("bo")
    for path in ("/review/betrokkene", "/review/controle", "/review/logout"):
        assert http.post(path, data={"bsn": make_bsn(1), "csrf_token": "forged"}).status_code == 400
    assert http.get("/review/").status_code == 200  # still logged in


@pytest.mark.parametrize(
    ("next_page", "landing"),
    [
        ("/review/register", "/review/register"),
        ("//evil.example/review/", "/review/"),
        ("https://evil.example/review/", "/review/"),
        ("/\\evil.example", "/review/"),
        ("/api/v1/convenants", "/review/"),
    ],
)
def test_login_redirects_only_within_the_review_pages(
    client: Any, make_officer: Any, next_page: str, landing: str
) -> None:
    """After logging in, `next` is followed only to a review page (no open redirect)."""
    make_officer("bo")
    token = csrf_from(client.get("/review/login").get_data(as_text=True))
    response = client.post(
        "/review/login",
        data={"username": "bo", "password": OFFICER_PASSWORD, "csrf_token": token, "next": next_page},
    )
    assert response.status_code == 302 and response.headers["Location"] == landing


def test_login_is_audited_and_failure_is_generic(app: Any, client: Any, make_officer: Any) -> None:
    """A failed login answers the same for unknown users; a successful one writes user.logged_in."""
    make_officer("ziggy")
    pages = []
    for username, password in (("ziggy", "wrong password!"), ("nobody", OFFICER_PASSWORD)):
        token = csrf_from(client.get("/review/login").get_data(as_text=True))
        response = client.post("/review/login", data={"username": username, "password": password, "csrf_token": token})
        html = response.get_data(as_text=True)
        pages.append(re.sub(r'value="[^"]*"', "", html))
        assert LOGIN_FAILED in html and username not in html.split("<main", 1)[1]
    assert pages[0] == pages[1]
    token = csrf_from(client.get("/review/login").get_data(as_text=True))
    client.post("/review/login", data={"username": "ziggy", "password": OFFICER_PASSWORD, "csrf_token": token})
    with app.app_context():
        names = list(db.session.scalars(select(AuditEntryRow.name).where(AuditEntryRow.actor_id == "ziggy")))
    assert names == ["user.logged_in"]


def test_entries_page_view_is_audited_with_the_looked_up_subject(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """Viewing with a subject filter writes a review entry plus one entry per convenant pseudonym."""
    http = officer_client(make_officer("liemers-po", party=LIEMERS))
    page = http.get("/review/")
    token = csrf_from(page.get_data(as_text=True))
    assert http.post("/review/betrokkene", data={"bsn": make_bsn(1), "csrf_token": token}).status_code == 302
    assert http.get("/review/", query_string={"actie": "delivery.created"}).status_code == 200
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.actor_id == "liemers-po")
                                       .order_by(AuditEntryRow.idx)))
    names = [r.name for r in rows]
    assert names == ["user.logged_in", "review.entries_viewed", "review.entries_viewed", "review.subject_looked_up"]
    viewed = json.loads(rows[2].canonical)
    assert viewed["attributes"] == {
        "action": "delivery.created", "subject_filter": True, "page": 1, "shown": 1, "total": 1,
    }
    assert viewed["actor"] == {"type": "user", "id": "liemers-po", "party": LIEMERS}
    assert rows[3].data_subject_id == pseudonym(app, 1) and rows[3].convenant_id == CONVENANT
    assert all(f",{LIEMERS}," in r.parties for r in rows)


def test_invalid_bsn_is_refused_without_echo(
    app_config: dict[str, Any], make_officer: Any, officer_client: Any
) -> None:
    """A wrong BSN gives a Dutch error; neither it nor any BSN reaches the page or the log file."""
    http = officer_client(make_officer("bo"))
    token = csrf_from(http.get("/review/").get_data(as_text=True))
    for typed in ("123456788", "12345", "1234567890"):
        response = http.post("/review/betrokkene", data={"bsn": typed, "csrf_token": token}, follow_redirects=True)
        html = response.get_data(as_text=True)
        assert "geen geldig BSN" in html and "Filter op betrokkene actief" not in html
        assert typed not in HEX_IDS.sub("#", html)  # ids and pseudonyms may hold any digits
    assert "123456788" not in Path(app_config["LOG_FILE"]).read_text(encoding="utf-8")


def test_bsn_with_separators_finds_the_same_subject(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """A BSN typed in groups (dots or spaces) is the same subject as the nine digits."""
    http = officer_client(make_officer("bo"))
    token = csrf_from(http.get("/review/").get_data(as_text=True))
    bsn = make_bsn(1)
    http.post("/review/betrokkene", data={"bsn": f"{bsn[:4]}.{bsn[4:6]} {bsn[6:]}", "csrf_token": token})
    rows = csv_rows(http.get("/review/export.csv"))
    assert rows and {r["data_subject_id"] for r in rows} == {pseudonym(app, 1)}


def test_period_filter_uses_dutch_days(
    app: Any, clock: Any, make_officer: Any, officer_client: Any
) -> None:
    """An entry at 23:30 UTC on 1 March falls on 2 March in the Netherlands, and is filtered so."""
    real_now = clock.now
    clock.now = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    make_officer("night")
    clock.now = real_now
    http = officer_client(make_officer("bo"))

    def added(**period: str) -> list[str]:
        rows = csv_rows(http.get("/review/export.csv", query_string={"actie": "user.added", **period}))
        return [r["time"] for r in rows]

    assert added(van="2026-03-02", tot="2026-03-02") == ["2026-03-02T00:30:00+01:00"]
    assert added(van="2026-03-01", tot="2026-03-01") == []
    assert len(added(van="2026-03-03")) == 1  # only bo, added now
    bad = http.get("/review/", query_string={"van": "2026-03-05", "tot": "2026-03-01"})
    assert "De einddatum ligt voor de begindatum." in bad.get_data(as_text=True)


def test_export_applies_the_scope_and_is_audited_first(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """A party officer's export holds only its party's entries and is itself an audit entry."""
    http = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    response = http.get("/review/export.csv")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = csv_rows(response)
    assert rows and all(PASSEND_WIJS in r["parties"].split(";") for r in rows)
    assert pseudonym(app, 1) not in {r["data_subject_id"] for r in rows}
    with app.app_context():
        query = select(AuditEntryRow).where(AuditEntryRow.name == "review.entries_exported")
        exported = db.session.scalars(query).all()
    assert len(exported) == 1 and exported[0].actor_id == "pw-po"
    assert int(rows[0]["index"]) < exported[0].idx  # the export does not contain its own entry


def test_csv_export_streams_in_chunks(app: Any, rbl: Party, make_officer: Any, officer_client: Any) -> None:
    """A large export is a streamed response written in pieces, not one string."""
    assert rbl.submit([make_record(n) for n in range(600)]).status_code == 201
    http = officer_client(make_officer("bo"))
    response = http.get("/review/export.csv", query_string={"actie": "record.received"}, buffered=False)
    assert response.is_streamed
    chunks = list(response.response)
    response.close()
    assert len(chunks) >= 2
    assert sum(chunk.count(b"\r\n") for chunk in chunks) == 601


def test_page_load_does_not_verify_the_whole_log(
    monkeypatch: pytest.MonkeyPatch, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """The banner shows the stored result and the latest checkpoint; only the button runs verify_log."""
    http = officer_client(make_officer("bo"))

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a page load ran a full verification")

    monkeypatch.setattr(integrity, "verify_stored_log", refuse)
    html = http.get("/review/").get_data(as_text=True)
    assert "Laatste getekende checkpoint" in html and "Nog niet volledig gecontroleerd" in html


def test_verification_names_the_first_bad_entry_in_red(
    app: Any, audit_db: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """After an entry is edited behind the database's guards, the banner turns red with its index."""
    http = officer_client(make_officer("bo"))
    rows = audit_db.rows()
    victim = rows[5]
    victim["canonical"] = victim["canonical"].replace(b'"status":"Ok"', b'"status":"Error"')
    audit_db.rewrite(rows)
    token = csrf_from(http.get("/review/").get_data(as_text=True))
    html = http.post("/review/controle", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    assert 'class="integrity integrity-bad"' in html
    assert re.search(r"FOUT</strong> bij entry <strong>5</strong>:\s+entry gewijzigd", html)
    with app.app_context():
        verified = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "review.log_verified")).one()
    attributes = json.loads(verified.canonical)["attributes"]
    assert attributes["ok"] is False and attributes["problem_index"] == 5 and attributes["problem_kind"] == "edited"


def test_verification_names_a_rewritten_parties_column(
    app: Any, audit_db: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """De Liemers added to the parties of Passend Wijs' delivery entry turns the banner red, naming entry and column."""
    from sqlalchemy import update

    http = officer_client(make_officer("bo"))
    rows = audit_db.rows()
    victim = next(row for row in rows if row["name"] == "delivery.created" and PASSEND_WIJS in row["parties"])
    table = AuditEntryRow.__table__
    with audit_db.bypass() as conn:
        conn.execute(update(table).where(table.c.idx == victim["idx"]).values(parties=f"{victim['parties']}{LIEMERS},"))
    token = csrf_from(http.get("/review/").get_data(as_text=True))
    html = http.post("/review/controle", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    assert 'class="integrity integrity-bad"' in html
    assert re.search(rf"FOUT</strong> bij entry <strong>{victim['idx']}</strong>:\s+entry gewijzigd", html)
    assert '<code class="column">parties</code>' in html and "(kolom parties)" in html
    with app.app_context():
        verified = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "review.log_verified")).one()
    attributes = json.loads(verified.canonical)["attributes"]
    assert (attributes["problem_index"], attributes["problem_column"]) == (victim["idx"], "parties")


def test_register_page_lists_every_activity(app: Any, make_officer: Any, officer_client: Any) -> None:
    """The register page shows each activity of the register with its URI as anchor."""
    http = officer_client(make_officer("bo"))
    html = http.get("/review/register").get_data(as_text=True)
    with app.app_context():
        from broker.auditing.step import register

        activities = register().activities
    for activity in activities:
        assert activity.uri in html and activity.text["name"] in html


def test_review_refuses_to_serve_without_a_secret(app_config: dict[str, Any], tmp_path: Path) -> None:
    """Outside testing and with no secret configured, the review pages answer 503."""
    close_log_files()
    config = {**app_config, "TESTING": False, "SECRET_KEY_FILE": str(tmp_path / "missing.key")}
    app = create_app(config)
    assert app.config["SECRET_KEY"] is None
    response = app.test_client().get("/review/login")
    assert response.status_code == 503 and "Set-Cookie" not in response.headers
    with app.app_context():
        db.engine.dispose()


def test_init_creates_a_private_secret_key_file(app_config: dict[str, Any], tmp_path: Path) -> None:
    """`broker init` writes a random secret with mode 0600 once; the app then serves the review pages."""
    close_log_files()
    path = tmp_path / "instance" / "secret.key"
    config = {**app_config, "TESTING": False, "SECRET_KEY_FILE": str(path)}
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
    assert app.config["SECRET_KEY"] == secret
    assert app.test_client().get("/review/login").status_code == 200
    assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
    assert path.read_text().strip() == secret  # never overwritten
    with app.app_context():
        db.engine.dispose()
    close_log_files()
    again = create_app(config)
    assert again.config["SECRET_KEY"] == secret
    with again.app_context():
        db.engine.dispose()
