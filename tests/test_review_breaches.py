"""The breach pages of the review interface ("Datalekken"): in headless Chromium and through the test client."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.browser import browser_test
from fixtures.officers import csrf_from
from fixtures.parties import Party, refresh_token
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import text

from broker.app import runtime
from broker.app.extensions import db
from broker.app.timefmt import AMSTERDAM

RBL, LIEMERS, PASSEND_WIJS = "rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs"
RBL_NAME, LIEMERS_NAME = "MGR RBL Midden-Gelre", "Samenwerkingsverband De Liemers"
BREACH_URL = re.compile(r"/review/datalekken/([0-9a-f-]{36})$")


@pytest.fixture
def app_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The review settings of these tests: cookies over plain http, the verify result in tmp_path, and
    sessions that outlast the days these tests move the clock by (session expiry is tested elsewhere)."""
    week = 7 * 24 * 3600
    return {
        **app_config, "SESSION_COOKIE_SECURE": False, "REVIEW_VERIFY_FILE": str(tmp_path / "verify.json"),
        "PERMANENT_SESSION_LIFETIME": week, "REVIEW_SESSION_MAX_LIFETIME": week,
    }


@pytest.fixture
def minute(clock: Clock) -> Clock:
    """The clock on the next whole minute, so countdowns read the same on every run."""
    clock.now = (clock.now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    return clock


@pytest.fixture
def exchanged(rbl: Party, liemers: Party) -> dict[str, str]:
    """Real traffic: the RBL submits pupil 0 (Arnhem, for Passend Wijs) and pupil 1 (Duiven, for
    De Liemers); De Liemers fetches and acknowledges its delivery. Returns the ids."""
    response = rbl.submit([make_record(0, gemeente="Arnhem"), make_record(1, gemeente="Duiven")])
    assert response.status_code == 201, response.json
    (delivery,) = liemers.get("/api/v1/deliveries").json["deliveries"]
    assert liemers.get(f"/api/v1/deliveries/{delivery['delivery_id']}").status_code == 200
    assert liemers.post(f"/api/v1/deliveries/{delivery['delivery_id']}/ack").status_code == 200
    return {"submission": response.json["submission_id"], "delivery": delivery["delivery_id"]}


def local_input(moment: dt.datetime) -> str:
    """A UTC moment as a datetime-local value (Amsterdam time)."""
    return f"{moment.astimezone(AMSTERDAM):%Y-%m-%dT%H:%M}"


def report_form(clock: Clock, **fields: str) -> dict[str, str]:
    """A valid report: detected 65 minutes ago, so 22 u 55 min remain of the 24 hours."""
    form = {
        "convenant": CONVENANT,
        "reporting_party": RBL,
        "detected_at": local_input(clock.now - dt.timedelta(minutes=65)),
        "description": "Een lijst met leerlingen is naar een verkeerd adres gemaild.",
        "suspected_cause": "Verkeerde ontvanger gekozen in het adresboek.",
        "submissions": "",
        "deliveries": "",
        "window_from": "",
        "window_to": "",
        "bsns": "",
    }
    return {**form, **fields}


def post(http: Any, path: str, data: dict[str, Any], page: str = "/review/datalekken") -> Any:
    """POST a review form with the session's CSRF token."""
    token = csrf_from(http.get(page).get_data(as_text=True))
    return http.post(path, data={**data, "csrf_token": token})


def report(http: Any, clock: Clock, **fields: str) -> str:
    """Report a breach through the form; return its id."""
    response = post(http, "/review/datalekken/nieuw", report_form(clock, **fields))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    match = BREACH_URL.search(response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def html_of(response: Any) -> str:
    return str(response.get_data(as_text=True))


def without_ids(html: str) -> str:
    """The page without ids, pseudonyms and CSRF tokens, which may hold any nine digits."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{16,}|value=\"[^\"]*\"", "#", html)


# -- the browser ---------------------------------------------------------------------------------


def log_in(page: Any, username: str) -> None:
    from fixtures.officers import OFFICER_PASSWORD

    page.goto("/review/login")
    page.get_by_label("Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord").fill(OFFICER_PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_url(re.compile(r"/review/$"))


def log_out(page: Any) -> None:
    page.get_by_role("button", name="Uitloggen").click()
    page.wait_for_url(re.compile(r"/review/login"))


def impact_table(page: Any) -> dict[tuple[str, str], dict[str, int]]:
    """The impact table: (party, flow) -> category -> count, read cell by cell."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    party = ""
    for row in page.locator("table.impact tbody tr").all():
        header = row.locator("th")
        if header.count():
            party = header.inner_text().split("(")[0].strip()
        category = row.locator("td").first.inner_text()
        for flow in ("sent", "received", "fetched"):
            count = int(row.locator(f'td[data-flow="{flow}"]').inner_text())
            if count:
                found.setdefault((party, flow), {})[category] = count
    return found


@browser_test
def test_officer_reports_a_breach_in_the_browser(
    app: Any, page: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any
) -> None:
    """The broker's officer reports a breach with a delivery and BSNs and sees the impact the log computes."""
    from playwright.sync_api import expect

    log_in(page, make_officer("bo"))
    page.get_by_role("link", name="Datalekken", exact=True).click()
    expect(page.get_by_role("heading", name="Datalekken", exact=True)).to_be_visible()
    page.get_by_role("link", name="Datalek melden").click()
    expect(page.get_by_label("Convenant")).to_have_value(CONVENANT)
    page.get_by_label("Melder").select_option(RBL)
    page.get_by_label("Vastgesteld op").fill(local_input(minute.now - dt.timedelta(minutes=65)))
    page.get_by_label("Omschrijving").fill("De levering aan De Liemers is ook naar een oud adres gestuurd.")
    page.get_by_label("Vermeende oorzaak").fill("Een verouderde webhook-configuratie.")
    page.get_by_label("Leveringen (id's, één per regel)").fill(exchanged["delivery"])
    page.get_by_label("BSN's van betrokkenen (één per regel)").fill(f"{make_bsn(1)}\n{make_bsn(7)}")
    page.get_by_role("button", name="Datalek melden").click()

    expect(page).to_have_url(BREACH_URL)
    expect(page.locator(".flash-info")).to_contain_text("Datalek 1 is gemeld")
    expect(page.get_by_role("heading", name=re.compile("Datalek 1"))).to_contain_text("gemeld")
    assert impact_table(page) == {
        (RBL_NAME, "sent"): {"Langdurig verzuim": 1},
        (LIEMERS_NAME, "received"): {"Langdurig verzuim": 1},
        (LIEMERS_NAME, "fetched"): {"Langdurig verzuim": 1},
    }
    expect(page.locator(".facts-required .subjects-count")).to_have_text("1")
    expect(page.locator(".facts-required")).to_contain_text("Langdurig verzuim: 1")
    expect(page.locator('tr[data-party="swv-de-liemers"]')).to_contain_text("betrokken partij")
    expect(page.locator(".deadlines .countdown").first).to_have_text("nog 22 u 55 min")
    html = page.content()
    assert make_bsn(1) not in html and make_bsn(7) not in html

    # The script keeps the countdown current without a reload (browser time only, the server's stays).
    page.clock.install()
    page.reload()
    expect(page.locator(".deadlines .countdown").first).to_have_text("nog 22 u 55 min")
    page.clock.fast_forward("31:00")
    expect(page.locator(".deadlines .countdown").first).to_have_text(re.compile(r"^nog 22 u 2[34] min$"))

    page.get_by_role("link", name="Datalekken", exact=True).click()
    row = page.locator("table.breaches tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Datalek 1")
    expect(row).to_contain_text(RBL_NAME)
    expect(row.locator(".countdown")).to_have_text(re.compile(r"^nog 22 u \d\d min$"))


@browser_test
def test_late_breach_shows_a_red_bar_on_every_page(
    page: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """Past its 24 hours without every acknowledgement, a breach is "te laat" at the top of each page."""
    from playwright.sync_api import expect

    bo = make_officer("bo")
    report(officer_client(bo), minute, deliveries=exchanged["delivery"])
    log_in(page, bo)
    expect(page.locator(".breach-alert")).to_have_count(0)
    minute.advance(hours=20)
    page.reload()
    expect(page.locator(".breach-soon")).to_contain_text("Datalek 1")
    expect(page.locator(".breach-soon")).to_contain_text("nog 2 u 55 min")
    minute.advance(hours=4)
    for path in ("/review/", "/review/register", "/review/datalekken"):
        page.goto(path)
        alert = page.get_by_role("alert").filter(has_text="te laat")
        expect(alert).to_contain_text("Datalek 1")
        expect(alert).to_contain_text("1 u 05 min te laat")
        expect(alert).to_contain_text("Convenant inzake de uitwisseling")
    page.get_by_role("alert").get_by_role("link", name="Datalek 1").click()
    expect(page.get_by_role("heading", name=re.compile("Datalek 1"))).to_contain_text("te laat")
    expect(page.locator(".deadlines .countdown").first).to_have_text("1 u 05 min te laat")
    expect(page.locator(".deadlines .countdown.late").first).to_be_visible()
    page.goto("/review/datalekken?status=te+laat")
    expect(page.locator("table.breaches tbody tr .state-te-laat")).to_have_text("te laat")


@browser_test
def test_party_acknowledges_and_decides_then_the_broker_closes(
    page: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """De Liemers acknowledges and records its AP decision; closing waits for the RBL's decision."""
    from playwright.sync_api import expect

    bo = make_officer("bo")
    breach_id = report(officer_client(bo), minute, deliveries=exchanged["delivery"])
    log_in(page, make_officer("liemers-po", party=LIEMERS))
    page.get_by_role("link", name="Datalekken", exact=True).click()
    page.get_by_role("link", name="Datalek 1").click()
    expect(page.get_by_role("button", name="Datalek sluiten")).to_have_count(0)  # not the reporter
    page.get_by_role("button", name="Ontvangst bevestigen").click()
    expect(page.locator(".flash-info")).to_contain_text("bevestigd")
    expect(page.get_by_role("heading", name=re.compile("Datalek 1"))).to_contain_text("bevestigd")
    expect(page.get_by_role("button", name="Ontvangst bevestigen")).to_have_count(0)

    page.get_by_label("Nee, niet gemeld").check()
    page.get_by_role("button", name="Besluit vastleggen").click()
    expect(page.locator(".field.invalid")).to_contain_text("Onderbouw waarom niet aan de AP is gemeld")
    page.get_by_label("Onderbouwing (verplicht als niet is gemeld)").fill("Alleen een intern adres; geen risico.")
    page.get_by_role("button", name="Besluit vastleggen").click()
    expect(page.locator(".flash-info")).to_contain_text(f"van {LIEMERS_NAME} is vastgelegd")
    expect(page.locator('tr[data-party="swv-de-liemers"] .ap-decision')).to_contain_text(
        "niet gemeld: Alleen een intern"
    )
    log_out(page)

    log_in(page, bo)
    page.goto(f"/review/datalekken/{breach_id}")
    page.get_by_label("Genomen maatregelen").fill("Webhook-configuratie hersteld; ontvanger verwijderde de lijst.")
    page.get_by_role("button", name="Datalek sluiten").click()
    expect(page.locator(".form-errors")).to_contain_text(f"{RBL_NAME} heeft nog niet vastgelegd")
    expect(page.get_by_label("Genomen maatregelen")).to_have_value(
        "Webhook-configuratie hersteld; ontvanger verwijderde de lijst."
    )
    page.get_by_label("Namens partij").select_option(RBL)
    page.get_by_label("Ja, gemeld aan de AP").check()
    page.get_by_label("Kenmerk van de melding bij de AP").fill("AP-2026-0042")
    page.get_by_label("Moment van melden bij de AP").fill(local_input(minute.now - dt.timedelta(minutes=5)))
    page.get_by_role("button", name="Besluit vastleggen").click()
    expect(page.locator(".flash-info")).to_contain_text(f"van {RBL_NAME} is vastgelegd")
    page.get_by_label("Genomen maatregelen").fill("Webhook-configuratie hersteld.")
    page.get_by_role("button", name="Datalek sluiten").click()
    expect(page.locator(".flash-info")).to_contain_text("Datalek 1 is gesloten")
    expect(page.get_by_role("heading", name=re.compile("Datalek 1"))).to_contain_text("gesloten")
    expect(page.locator("section[aria-labelledby=feiten]")).to_contain_text("Webhook-configuratie hersteld.")
    timeline = page.locator("table.timeline").inner_text()
    for label in ("Gemeld", "Ontvangst bevestigd", "Besluit melding AP vastgelegd", "Gesloten"):
        assert label in timeline


@browser_test
def test_register_downloads_from_the_list(
    page: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The register link downloads a `;`-separated CSV with the breach's row."""
    bo = make_officer("bo")
    report(officer_client(bo), minute, deliveries=exchanged["delivery"])
    log_in(page, bo)
    page.goto("/review/datalekken")
    with page.expect_download() as info:
        page.get_by_role("link", name="Datalekkenregister (CSV)").click()
    download = info.value
    assert download.suggested_filename == "datalekkenregister.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8")), delimiter=";"))
    assert [(r["nummer"], r["melder"], r["betrokken_partijen"], r["status"]) for r in rows] == [
        ("1", RBL, LIEMERS, "gemeld")
    ]


# -- the same pages through the test client -------------------------------------------------------


def test_breach_pages_need_a_login(client: Any) -> None:
    """Without a session the breach pages redirect to the login page."""
    for path in ("/review/datalekken", "/review/datalekken/nieuw", "/review/datalekken/register.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/review/login")


def test_breach_forms_need_the_csrf_token(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """Every breach form refuses a POST without the session's CSRF token."""
    http = officer_client(make_officer("bo"))
    breach_id = report(http, minute, deliveries=exchanged["delivery"])
    paths = ["/review/datalekken/nieuw"] + [
        f"/review/datalekken/{breach_id}/{step}"
        for step in ("bevestigen", "besluit-ap", "impact", "opschorten", "sluiten")
    ]
    for path in paths:
        assert http.post(path, data={**report_form(minute), "csrf_token": "forged"}).status_code == 400


def test_list_and_detail_send_only_the_countdown_script(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The breach pages load countdown.js from the review's own static files and no inline script."""
    http = officer_client(make_officer("bo"))
    breach_id = report(http, minute, deliveries=exchanged["delivery"])
    for path in ("/review/datalekken", f"/review/datalekken/{breach_id}"):
        response = http.get(path)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        scripts = re.findall(r"<script[^>]*>", html_of(response))
        assert scripts == ['<script src="/review/static/countdown.js" defer>']
    script = http.get("/review/static/countdown.js")
    assert script.status_code == 200 and "setInterval(update, 30000)" in html_of(script)
    script.close()
    assert "<script" not in html_of(http.get("/review/datalekken/nieuw"))


def test_report_shows_errors_at_their_fields(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """Missing texts, a wrong BSN line and an unknown delivery line are named at their fields."""
    http = officer_client(make_officer("bo"))
    bad = make_bsn(2)[:-1] + str((int(make_bsn(2)[-1]) + 1) % 10)
    response = post(
        http,
        "/review/datalekken/nieuw",
        report_form(minute, description="", bsns=f"{make_bsn(1)}\n\n{bad}", deliveries=exchanged["delivery"]),
    )
    html = html_of(response)
    assert response.status_code == 422
    assert "Regel 3 is geen geldig BSN" in html and "Dit veld is verplicht." in html
    assert make_bsn(1) not in without_ids(html) and bad not in without_ids(html)
    assert exchanged["delivery"] in html  # the typed ids stay

    response = post(
        http,
        "/review/datalekken/nieuw",
        report_form(minute, deliveries=f"{exchanged['delivery']}\n\n00000000-0000-4000-8000-000000000000"),
    )
    assert response.status_code == 422
    assert "Regel 3: Deze levering bestaat niet." in html_of(response)

    response = post(http, "/review/datalekken/nieuw", report_form(minute))
    assert response.status_code == 422
    assert "Noem inzendingen, leveringen, een tijdvak of betrokkenen" in html_of(response)


def test_ambiguous_dst_time_is_refused_at_the_field(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """02:30 on the night the clocks go back happens twice: refused, with the message at each field."""
    http = officer_client(make_officer("bo"))
    ambiguous = {"detected_at": "2025-10-26T02:30", "window_from": "2025-10-26T02:30"}
    form = report_form(minute, deliveries=exchanged["delivery"], window_to=local_input(minute.now), **ambiguous)
    response = post(http, "/review/datalekken/nieuw", form)
    assert response.status_code == 422
    for name in ambiguous:
        field = re.search(rf'<div class="field invalid">\s*<label for="{name}">.*?</div>', html_of(response), re.S)
        assert field and "zomertijdwissel" in field.group(), name


def test_future_detection_is_refused(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """A detection moment in the future is the service's error, shown at the field."""
    http = officer_client(make_officer("bo"))
    future = local_input(minute.now + dt.timedelta(hours=2))
    response = post(
        http, "/review/datalekken/nieuw", report_form(minute, deliveries=exchanged["delivery"], detected_at=future)
    )
    assert response.status_code == 422
    field = re.search(r'<div class="field invalid">\s*<label for="detected_at">.*?</div>', html_of(response), re.S)
    assert field and "mag niet in de toekomst liggen" in field.group()


def test_a_bsn_is_never_shown_nor_stored(
    app: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """BSNs typed in the form reach no page, not even after an error, and only their pseudonyms are stored."""
    http = officer_client(make_officer("bo"))
    bsn, other = make_bsn(1), make_bsn(9)
    pages = []
    # An error elsewhere: the BSNs are not filled in again, a BSN typed in a text is not shown again.
    response = post(
        http,
        "/review/datalekken/nieuw",
        report_form(
            minute,
            bsns=f"{bsn}\n{other}",
            description=f"Leerling {other} staat op de lijst.",
            suspected_cause="",
            deliveries=f"{exchanged['delivery']}\n{bsn}",
        ),
    )
    assert response.status_code == 422
    pages.append(html_of(response))
    assert exchanged["delivery"] not in pages[-1]  # the deliveries field held a BSN: not shown again
    expected = {"description": "nummer dat op een BSN lijkt", "deliveries": "Regel 2: Geen geldig id"}
    for name, message in expected.items():
        field = re.search(rf'<div class="field invalid">\s*<label for="{name}">.*?</div>', pages[-1], re.S)
        assert field and message in field.group(), name
    breach_id = report(http, minute, bsns=f"{bsn}\n{other}\n{bsn}", deliveries=exchanged["delivery"])
    pages += [html_of(http.get(path)) for path in ("/review/datalekken", f"/review/datalekken/{breach_id}")]
    for html in pages:
        assert bsn not in without_ids(html) and other not in without_ids(html)
    assert "2 betrokkenen op BSN" in pages[-1]

    with app.app_context():
        with db.engine.connect() as conn:
            stored = [
                json.dumps([list(r) for r in conn.execute(text(f"SELECT * FROM {t}"))], default=str)
                for t in ("breaches", "breach_events", "breach_parties", "outbox")
            ]
            (scope,) = conn.execute(text("SELECT scope FROM breaches")).scalars()
        pseudonymiser = runtime.keyring().pseudonymiser(CONVENANT)
        pseudonyms = {pseudonymiser.pseudonymise_bsn(bsn), pseudonymiser.pseudonymise_bsn(other)}
    for dump in stored:
        assert bsn not in dump and other not in dump
    assert set((scope if isinstance(scope, dict) else json.loads(scope))["subjects"]) == pseudonyms


def test_party_officer_reports_for_the_own_party_only(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """A party's officer reports as their party; another party's delivery is refused at its line as unknown."""
    http = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    form = http.get("/review/datalekken/nieuw")
    assert 'value="Samenwerkingsverband Passend Wijs" readonly' in html_of(form)
    response = post(http, "/review/datalekken/nieuw", report_form(minute, deliveries=exchanged["delivery"]))
    assert response.status_code == 422
    assert "Regel 1: Deze levering bestaat niet." in html_of(response)  # to Passend Wijs it does not exist
    breach_id = report(
        http,
        minute,
        reporting_party=RBL,
        window_from=local_input(minute.now - dt.timedelta(hours=1)),
        window_to=local_input(minute.now),
    )
    html = html_of(http.get(f"/review/datalekken/{breach_id}"))
    assert "gemeld door <strong>Samenwerkingsverband Passend Wijs</strong>" in html  # not the RBL it chose


def test_party_officer_cannot_see_another_partys_breach(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """A breach of the RBL and De Liemers does not exist for Passend Wijs' officer: list, page, steps, register."""
    breach_id = report(officer_client(make_officer("bo")), minute, deliveries=exchanged["delivery"])
    http = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    assert "Datalek 1" not in html_of(http.get("/review/datalekken"))
    assert http.get(f"/review/datalekken/{breach_id}").status_code == 404
    assert http.get("/review/datalekken/not-a-uuid").status_code == 404
    for step in ("bevestigen", "besluit-ap", "impact", "opschorten", "sluiten"):
        assert post(http, f"/review/datalekken/{breach_id}/{step}", {"reported": "nee"}).status_code == 404
    rows = list(csv.DictReader(io.StringIO(html_of(http.get("/review/datalekken/register.csv"))), delimiter=";"))
    assert rows == []
    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    assert "Datalek 1" in html_of(liemers.get("/review/datalekken"))
    assert liemers.get(f"/review/datalekken/{breach_id}").status_code == 200


def test_register_csv_holds_the_breach_and_is_audited(
    app: Any, minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The register download is a CSV attachment with one row per breach; the export is audited."""
    http = officer_client(make_officer("bo"))
    report(http, minute, deliveries=exchanged["delivery"], bsns=make_bsn(1))
    response = http.get("/review/datalekken/register.csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="datalekkenregister.csv"'
    (row,) = csv.DictReader(io.StringIO(html_of(response)), delimiter=";")
    assert row["nummer"] == "1" and row["convenant"] == CONVENANT and row["aantal_betrokkenen"] == "1"
    assert row["categorieen_betrokkenen"] == "langdurig_verzuim: 1" and row["te_laat"] == "nee"
    assert list(csv.DictReader(io.StringIO(html_of(http.get("/review/datalekken/register.csv?status=gesloten"))))) == []
    with app.app_context(), db.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM audit_entries WHERE actor_id = 'bo'")).scalars().all()
    assert names.count("review.breach_register_exported") == 2


def test_correcting_the_impact_keeps_the_computed_one(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The reporter's officer corrects the count with a reason; both counts and the reason are shown."""
    breach_id = report(officer_client(make_officer("bo")), minute, deliveries=exchanged["delivery"])
    path = f"/review/datalekken/{breach_id}"
    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    assert "Impact corrigeren" not in html_of(liemers.get(path))
    assert post(liemers, f"{path}/impact", {"data_subjects": "3", "reason": "x"}, path).status_code == 403
    http = officer_client(make_officer("rbl-po", party=RBL))
    html = html_of(http.get(path))
    assert "Impact corrigeren" in html and 'id="data_subjects" name="data_subjects" type="number"' in html
    fields = re.findall(r'name="fields" value="(\w+)" checked', html)
    assert "bsn" in fields and "reden_verzuim" in fields
    unchanged = {"data_subjects": "1", "cat_langdurig_verzuim": "1", "fields": fields, "reason": "Niets"}
    response = post(http, f"{path}/impact", unchanged, path)
    assert response.status_code == 422
    assert "Wijzig ten minste één gegeven" in html_of(response)
    response = post(http, f"{path}/impact", {**unchanged, "data_subjects": "3", "reason": ""}, path)
    assert response.status_code == 422 and "Dit veld is verplicht." in html_of(response)
    changed = {
        **unchanged,
        "data_subjects": "3",
        "cat_langdurig_verzuim": "3",
        "fields": ["bsn", "voornaam"],
        "add_parties": [PASSEND_WIJS],
        "reason": "Twee leerlingen stonden ook in de bijlage.",
    }
    response = post(http, f"{path}/impact", changed, path)
    assert response.status_code == 302
    html = html_of(http.get(path))
    assert "De impact is gecorrigeerd" in html
    assert re.search(r'class="subjects-count">3</strong>\s*<span class="computed">berekend: 1</span>', html)
    assert "Burgerservicenummer, Voornaam" in html and "Twee leerlingen stonden ook in de bijlage." in html
    assert 'data-party="swv-passend-wijs"' in html


def test_ap_decision_rules_and_who_may_decide(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """Reported needs a reference and a time; a party decides for itself, the broker for any party."""
    bo = officer_client(make_officer("bo"))
    breach_id = report(bo, minute, deliveries=exchanged["delivery"])
    path = f"/review/datalekken/{breach_id}"
    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    response = post(liemers, f"{path}/besluit-ap", {"reported": "ja"}, path)
    html = html_of(response)
    assert response.status_code == 422
    assert "Geef het kenmerk van de melding bij de AP." in html and "Geef het moment van de melding bij de AP." in html
    # A party's officer cannot pick another party: the form's party is ignored.
    response = post(liemers, f"{path}/besluit-ap", {"party": RBL, "reported": "nee", "reasoning": "Geen risico."}, path)
    assert response.status_code == 302
    html = html_of(bo.get(path))
    assert re.search(r'data-party="swv-de-liemers">.*?niet gemeld: Geen risico\.', html, re.S)
    assert re.search(r'data-party="rbl-midden-gelre">.*?nog geen besluit', html, re.S)
    assert (
        post(bo, f"{path}/besluit-ap", {"party": PASSEND_WIJS, "reported": "nee", "reasoning": "x"}, path).status_code
        == 422
    )
    assert post(bo, f"{path}/bevestigen", {}, path).status_code == 403  # only a party acknowledges


def test_acknowledge_by_the_reporter_is_refused_in_the_page(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The service's refusal (the reporter is not an affected party) is shown in the page, not an error page."""
    breach_id = report(officer_client(make_officer("bo")), minute, deliveries=exchanged["delivery"])
    path = f"/review/datalekken/{breach_id}"
    http = officer_client(make_officer("rbl-po", party=RBL))
    assert "Ontvangst bevestigen" not in html_of(http.get(path))
    response = post(http, f"{path}/bevestigen", {}, path)
    assert response.status_code == 403
    html = html_of(response)
    assert "niet als betrokken partij" in html and "Impact volgens het logboek" in html


def test_containment_suspends_a_party_and_lifting_restores_it(
    app: Any,
    problem: Any,
    minute: Clock,
    exchanged: dict[str, str],
    liemers: Party,
    make_officer: Any,
    officer_client: Any,
) -> None:
    """Suspending De Liemers revokes its token and refuses new ones; lifting lets a new token in."""
    bo = officer_client(make_officer("bo"))
    breach_id = report(bo, minute, deliveries=exchanged["delivery"])
    path = f"/review/datalekken/{breach_id}"
    assert liemers.get("/api/v1/deliveries").status_code == 200
    before = liemers.headers
    liemers_po = officer_client(make_officer("liemers-po", party=LIEMERS))
    assert "opschorten" not in html_of(liemers_po.get(path))
    assert post(liemers_po, f"{path}/opschorten", {"party": LIEMERS}, path).status_code == 403

    response = post(bo, f"{path}/opschorten", {"party": LIEMERS}, path)
    assert response.status_code == 302
    html = html_of(bo.get(path))
    assert f"{LIEMERS_NAME} is opgeschort." in html and f"Opschorting van {LIEMERS_NAME} opheffen" in html
    problem(liemers.get("/api/v1/deliveries"), 401)  # the token from before the suspension is revoked
    minute.advance(minutes=1)
    refresh_token(liemers, minute)
    assert problem(liemers.get("/api/v1/deliveries"), 403)["type"] == "/problems/party-suspended"
    assert liemers.get(f"/api/v1/breaches/{breach_id}").status_code == 200  # it can still answer the breach
    again = post(bo, f"{path}/opschorten", {"party": LIEMERS}, path)
    assert again.status_code == 409 and "al opgeschort" in html_of(again)
    outsider = post(bo, f"{path}/opschorten", {"party": PASSEND_WIJS}, path)
    assert outsider.status_code == 422 and "Alleen een partij van dit datalek" in html_of(outsider)

    response = post(bo, f"{path}/opschorten", {"party": LIEMERS, "action": "opheffen"}, path)
    assert response.status_code == 302
    assert f"De opschorting van {LIEMERS_NAME} is opgeheven." in html_of(bo.get(path))
    problem(liemers.http.get("/api/v1/deliveries", headers=before), 401)  # tokens from before stay revoked
    minute.advance(minutes=1)
    refresh_token(liemers, minute)
    assert liemers.get("/api/v1/deliveries").status_code == 200


def test_alerts_follow_the_officers_scope(
    minute: Clock, exchanged: dict[str, str], make_officer: Any, officer_client: Any
) -> None:
    """The red bar lists late breaches the officer may see, on every page; not another party's."""
    bo = officer_client(make_officer("bo"))
    breach_id = report(bo, minute, deliveries=exchanged["delivery"])
    pw = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    minute.advance(hours=20, minutes=55)
    html = html_of(bo.get("/review/register")).split("<main", 1)[0]
    assert "breach-soon" in html and "nog 2 u 00 min" in html and 'role="alert"' not in html
    minute.advance(hours=3)
    for http in (bo, liemers):
        for path in ("/review/", "/review/register", "/review/datalekken", f"/review/datalekken/{breach_id}"):
            top = html_of(http.get(path)).split("<main", 1)[0]
            assert 'class="breach-alert" role="alert"' in top and "1 u 00 min te laat" in top, path
    assert "breach-alert" not in html_of(pw.get("/review/"))
    # Once De Liemers acknowledges, the breach is no longer late (it was acknowledged late).
    assert post(liemers, f"/review/datalekken/{breach_id}/bevestigen", {}).status_code == 302
    assert "breach-alert" not in html_of(bo.get("/review/"))
    (row,) = csv.DictReader(io.StringIO(html_of(bo.get("/review/datalekken/register.csv"))), delimiter=";")
    assert row["status"] == "bevestigd" and row["te_laat"] == "ja"
    # Past the 72 hours for the AP decision, a party without a decision shows red.
    minute.advance(hours=48)
    html = html_of(bo.get(f"/review/datalekken/{breach_id}"))
    assert re.search(
        r'data-party="rbl-midden-gelre">.*?<td class="nowrap overdue">[^<]*<strong>te laat</strong>', html, re.S
    )
