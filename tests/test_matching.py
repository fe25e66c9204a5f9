"""The quarterly match: when it runs, the four groups per pair, each party's view, versions, audit."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

from fixtures.app import Clock
from fixtures.parties import Party, refresh_token
from fixtures.records import CONVENANT, make_bsn, make_record

QUARTERS = f"/api/v1/convenants/{CONVENANT}/quarters"


def send(party: Party, quarter: str, records: list[dict[str, Any]]) -> None:
    response = party.submit(records, kind="quarterly_list", quarter=quarter)
    assert response.status_code == 201, response.json


def view_of(party: Party, quarter: str, other: str) -> dict[str, Any]:
    response = party.get(f"{QUARTERS}/{quarter}/match")
    assert response.status_code == 200, response.json
    views = {v["other"]: v for v in response.json["views"]}
    return {**views[other], "version": response.json["version"], "missing": response.json["missing"]}


def bsns(view: dict[str, Any]) -> set[str]:
    return {r["bsn"] for r in view["records"]}


def status(party: Party, quarter: str) -> dict[str, Any]:
    response = party.get(f"{QUARTERS}/{quarter}")
    assert response.status_code == 200, response.json
    return response.json


def pseudonym(app: Any, n: int) -> str:
    with app.app_context():
        from broker.app import runtime

        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


def all_lists(rbl: Party, pw: Party, liemers: Party, verbinding: Party, quarter: str) -> None:
    """RBL and three SWVs: overlaps, a category difference and pupils of each SWV's own gemeenten."""
    send(rbl, quarter, [
        make_record(1, gemeente="Arnhem"),
        make_record(2, "absoluut_verzuim", gemeente="Arnhem"),
        make_record(3, gemeente="Duiven"),
        make_record(4, gemeente="Lingewaard"),
        make_record(7, gemeente="Zevenaar"),
    ])
    send(pw, quarter, [make_record(1, gemeente="Arnhem"), make_record(2, gemeente="Arnhem"),
                       make_record(5, gemeente="Renkum")])
    send(liemers, quarter, [make_record(3, gemeente="Duiven"), make_record(6, gemeente="Westervoort")])
    send(verbinding, quarter, [make_record(4, gemeente="Lingewaard")])


def test_all_lists_in_match_runs_at_once(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """When the last required list arrives the quarter is matched at once, without waiting for the deadline."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    runs = status(rbl, open_quarter)["runs"]
    assert [(r["version"], r["trigger"], r["missing"]) for r in runs] == [(1, "complete", [])]
    view = view_of(liemers, open_quarter, "rbl-midden-gelre")
    assert (view["known_to_both"], view["different_category"], view["only_at_you"], view["only_at_other"]) == (
        1, 0, 1, 1,
    )
    assert bsns(view) == {make_bsn(7)}


def test_each_party_gets_the_records_it_lacks_with_the_convenant_fields(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """RBL receives the SWV's records it lacks, whole and exactly as validated; counts are per pair."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    view = view_of(rbl, open_quarter, "swv-passend-wijs")
    assert view["records"] == [make_record(5, gemeente="Renkum")]
    assert (view["known_to_both"], view["different_category"], view["only_at_you"], view["only_at_other"]) == (
        1, 1, 0, 1,
    )
    # the same delivery is also reachable through the deliveries API, as kind "match"
    delivery = rbl.get(f"/api/v1/deliveries/{view['delivery_id']}").json
    assert delivery["kind"] == "match" and delivery["sender"] == "swv-passend-wijs"
    assert [r["bsn"] for r in delivery["records"]] == [make_bsn(5)]


def test_category_mismatch_is_its_own_group(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """A pupil on both lists under different categories is counted as a category difference, per side."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    swv = view_of(passend_wijs, open_quarter, "rbl-midden-gelre")
    assert swv["known_to_both"] == 1 and swv["different_category"] == 1
    assert swv["category_differences"] == [{"yours": "langdurig_verzuim", "theirs": "absoluut_verzuim", "count": 1}]
    assert bsns(swv) == set()  # the pupil is known to both: no record is sent for it
    rbl_view = view_of(rbl, open_quarter, "swv-passend-wijs")
    assert rbl_view["category_differences"] == [
        {"yours": "absoluut_verzuim", "theirs": "langdurig_verzuim", "count": 1}
    ]


def test_pupil_in_another_swvs_gemeente_is_not_shown(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """An RBL pupil living in a Liemers gemeente reaches Liemers, never Passend Wijs, not even in counts."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    pw = view_of(passend_wijs, open_quarter, "rbl-midden-gelre")
    assert make_bsn(7) not in bsns(pw) and make_bsn(3) not in bsns(pw)
    assert pw["known_to_both"] + pw["different_category"] + pw["only_at_other"] == 2  # pupils 1 and 2 only
    assert make_bsn(7) in bsns(view_of(liemers, open_quarter, "rbl-midden-gelre"))
    assert bsns(view_of(verbinding, open_quarter, "rbl-midden-gelre")) == set()


def test_missing_list_runs_at_the_deadline(
    runner: Any, clock: Clock, rbl: Party, passend_wijs: Party, liemers: Party, open_quarter: str
) -> None:
    """With a list missing nothing runs before the deadline; run-due after it matches what arrived."""
    send(rbl, open_quarter, [make_record(1), make_record(3, gemeente="Duiven")])
    send(passend_wijs, open_quarter, [make_record(1)])
    send(liemers, open_quarter, [make_record(6, gemeente="Duiven")])
    assert status(rbl, open_quarter)["runs"] == []
    assert "runs: 0" in runner.invoke(args=["match", "run-due"]).output
    deadline = status(rbl, open_quarter)["deadline_at"]

    clock.now = dt.datetime.fromisoformat(deadline)
    result = runner.invoke(args=["match", "run-due"])
    assert result.exit_code == 0, result.output
    assert "runs: 1" in result.output
    assert "runs: 0" in runner.invoke(args=["match", "run-due"]).output  # idempotent
    for party in (rbl, liemers):
        refresh_token(party, clock)
    runs = status(rbl, open_quarter)["runs"]
    assert [(r["trigger"], r["missing"]) for r in runs] == [("deadline", ["swv-de-verbinding"])]
    liemers_view = view_of(liemers, open_quarter, "rbl-midden-gelre")
    assert liemers_view["missing"] == ["swv-de-verbinding"]
    assert bsns(liemers_view) == {make_bsn(3)}


def test_replaced_list_gives_a_new_result_version(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """A later list of the same party replaces the earlier, both stay visible, and the match is redone."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    first = view_of(passend_wijs, open_quarter, "rbl-midden-gelre")
    send(rbl, open_quarter, [make_record(1), make_record(2, gemeente="Arnhem"), make_record(8, gemeente="Rheden")])
    body = status(rbl, open_quarter)
    assert [(v["party"], v["version"]) for v in body["lists"] if v["party"] == "rbl-midden-gelre"] == [
        ("rbl-midden-gelre", 1), ("rbl-midden-gelre", 2),
    ]
    assert [(r["version"], r["trigger"]) for r in body["runs"]] == [(1, "complete"), (2, "new_list")]
    second = view_of(passend_wijs, open_quarter, "rbl-midden-gelre")
    assert second["version"] == 2 and second["supersedes"] == first["delivery_id"]
    assert (second["known_to_both"], second["different_category"]) == (2, 0)
    assert bsns(second) == {make_bsn(8)}
    # Liemers is no longer on RBL's list at all now: its view says so too
    assert view_of(liemers, open_quarter, "rbl-midden-gelre")["known_to_both"] == 0


def test_match_view_as_csv(
    rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """Accept: text/csv gives the records the caller lacks as CSV, with the result version in a header."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    response = liemers.get(f"{QUARTERS}/{open_quarter}/match", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["X-Match-Version"] == "1"
    text = response.get_data(as_text=True)
    assert make_bsn(7) in text and make_bsn(3) not in text


def test_no_match_yet_is_404_and_outsiders_are_refused(
    rbl: Party, make_party: Any, open_quarter: str, problem: Any
) -> None:
    """Before a run the view is 404; a quarter outside the calendar is 404 too."""
    problem(rbl.get(f"{QUARTERS}/{open_quarter}/match"), 404)
    problem(rbl.get(f"{QUARTERS}/1999-Q1"), 404)


def test_quarter_outside_calendar_is_refused(rbl: Party, problem: Any) -> None:
    """A quarterly list for a quarter the calendar does not name is 422 naming the quarter."""
    body = problem(rbl.submit([make_record(1)], kind="quarterly_list", quarter="2031-Q2"), 422)
    assert [e["code"] for e in body["errors"]] == ["unknown_quarter"]


def test_match_writes_audit_entries_per_subject(
    app: Any, audit_db: Any, rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """Each pupil gets entries saying which party learned what about it, in the run's own trace."""
    all_lists(rbl, passend_wijs, liemers, verbinding, open_quarter)
    entries = [e for e in audit_db.records() if e["name"].startswith("match.")]
    about = {(e["name"], e.get("data_subject_id"), json.dumps(e["attributes"].get("to"))) for e in entries}
    assert ("match.record_disclosed", pseudonym(app, 5), '"rbl-midden-gelre"') in about
    assert ("match.record_disclosed", pseudonym(app, 7), '"swv-de-liemers"') in about
    assert ("match.different_category", pseudonym(app, 2), "null") in about
    assert ("match.known_to_both", pseudonym(app, 1), "null") in about
    # pupil 7 (Zevenaar) was disclosed to Liemers only
    assert not any(
        e.get("data_subject_id") == pseudonym(app, 7) and e["attributes"].get("to") == "swv-passend-wijs"
        for e in entries
    )
    completed = [e for e in entries if e["name"] == "match.completed"]
    assert len(completed) == 1 and completed[0]["attributes"]["version"] == 1
    assert {e["trace_id"] for e in entries} == {completed[0]["trace_id"]}


def test_two_workers_racing_make_one_run(
    app: Any, clock: Clock, rbl: Party, passend_wijs: Party, liemers: Party, open_quarter: str
) -> None:
    """Two runners calling run-due at the same moment on one database produce exactly one run."""
    from broker.app import runtime
    from broker.app.extensions import db
    from broker.matching import match as matching
    from broker.matching.quarters import deadline_at, match_runs

    send(rbl, open_quarter, [make_record(n) for n in range(40)])
    send(passend_wijs, open_quarter, [make_record(n) for n in range(20, 60)])
    send(liemers, open_quarter, [make_record(61, gemeente="Duiven")])
    with app.app_context():
        clock.now = deadline_at(runtime.get_convenant(CONVENANT).quarterly.dates(open_quarter))

    barrier = threading.Barrier(2)
    results: list[Any] = []

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            try:
                results.append(len(matching.run_due(db.session, runtime.convenants(), runtime.now())))
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                results.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1], results
    with app.app_context():
        runs = match_runs(db.session, CONVENANT, open_quarter)
        assert [r.version for r in runs] == [1]


def test_scheduler_thread_runs_due_matches(
    app: Any, clock: Clock, rbl: Party, passend_wijs: Party, open_quarter: str
) -> None:
    """The scheduler `broker serve` starts runs what is due on its first tick, then stops when asked."""
    from broker.app.extensions import db
    from broker.jobs.scheduler import Scheduler
    from broker.matching.quarters import deadline_at, match_runs

    send(rbl, open_quarter, [make_record(1)])
    send(passend_wijs, open_quarter, [make_record(1)])
    with app.app_context():
        from broker.app import runtime

        clock.now = deadline_at(runtime.get_convenant(CONVENANT).quarterly.dates(open_quarter))
    scheduler = Scheduler(lambda: app, interval=3600)
    scheduler.start()
    scheduler.stop()  # the first tick always runs; stop ends the wait after it
    scheduler.join(timeout=60)
    assert not scheduler.is_alive()
    with app.app_context():
        assert [r.trigger for r in match_runs(db.session, CONVENANT, open_quarter)] == ["deadline"]


def test_late_list_after_deadline_run_gives_a_new_version(
    runner: Any, clock: Clock, rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party,
    open_quarter: str,
) -> None:
    """A list that arrives after the deadline run is matched at once as version 2, with nobody missing."""
    send(rbl, open_quarter, [make_record(1), make_record(4, gemeente="Lingewaard")])
    send(passend_wijs, open_quarter, [make_record(1)])
    send(liemers, open_quarter, [make_record(6, gemeente="Duiven")])
    clock.now = dt.datetime.fromisoformat(status(rbl, open_quarter)["deadline_at"])
    assert "runs: 1" in runner.invoke(args=["match", "run-due"]).output
    refresh_token(verbinding, clock)
    send(verbinding, open_quarter, [make_record(4, gemeente="Lingewaard")])
    runs = status(verbinding, open_quarter)["runs"]
    assert [(r["version"], r["trigger"], r["missing"]) for r in runs] == [
        (1, "deadline", ["swv-de-verbinding"]), (2, "new_list", []),
    ]
    view = view_of(verbinding, open_quarter, "rbl-midden-gelre")
    assert view["version"] == 2 and view["known_to_both"] == 1 and view["supersedes"] is None
