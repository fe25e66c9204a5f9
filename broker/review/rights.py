"""The data subjects' rights pages ("Inzage"): the access report, restriction, lifting and erasure.

A BSN arrives only in a POST body, is pseudonymised per convenant at once (`pseudonymise_lookup`)
and is never kept, logged or shown: not in a URL, a page or a file name. The action forms carry
the pupil's pseudonym instead, and the service checks again who may do what. Every report made is
audited (`subject.access_report`) before a byte of it leaves, so a failed audit write shows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import marshmallow as ma
from flask import Response, flash, redirect, render_template, request, url_for
from fpdf import FPDF, XPos, YPos

from broker.app import runtime
from broker.app.csvio import csv_text
from broker.app.errors import Forbidden
from broker.app.extensions import db
from broker.app.timefmt import AMSTERDAM
from broker.auditing.entries import Viewer
from broker.auditing.step import audited_step
from broker.exchange import need_to_know
from broker.models import User
from broker.officers.sessions import current_officer, officer_viewer
from broker.review.auth import login_required
from broker.review.forms import INVALID_BSN, pseudonymise_lookup
from broker.review.views import PSEUDONYM, bp
from broker.rights import access_report as reports
from broker.rights import access_table
from broker.rights import subjects as rights
from schemas.convenant import Convenant
from schemas.fields import Text
from schemas.screening import Lexicon, load_default_lexicon

FORMATS = {"html": "Webpagina", "csv": "CSV-bestand", "pdf": "PDF-bestand"}
REASON_MAX = 4000
NO_CONVENANT = "Dit convenant is onbekend of uw partij neemt er niet aan deel."
PDF_WIDTHS = (14, 18, 17, 28, 20, 20, 16, 70, 30, 10)


@cache
def _lexicon() -> Lexicon:
    return load_default_lexicon()


def _viewer() -> tuple[User, Viewer]:
    user = current_officer()
    assert user is not None  # login_required ran first
    return user, officer_viewer(user)


def _own_convenants(viewer: Viewer) -> dict[str, Convenant]:
    """The convenants the officer may ask about: all for the broker's officer, else their party's."""
    convenants = runtime.convenants()
    return {cid: c for cid, c in convenants.items() if viewer.party is None or c.party(viewer.party) is not None}


# -- the report ---------------------------------------------------------------------------------------


@bp.get("/inzage")
@login_required
def subject_rights() -> Any:
    """Show the form for an access report (AVG art. 15)."""
    return render_template("review/inzage.html", formats=FORMATS, chosen="html", report=None)


@bp.post("/inzage")
@login_required
def access_report() -> Any:
    """Make the access report about the pupil whose BSN was typed, as a page, a CSV or a PDF."""
    _user, viewer = _viewer()
    output = request.form.get("formaat", "html")
    if output not in FORMATS:
        output = "html"
    lookup = pseudonymise_lookup(request.form.get("bsn", ""))
    if lookup is None:
        flash(INVALID_BSN, "error")
        return render_template("review/inzage.html", formats=FORMATS, chosen=output, report=None), 422
    convenants = _own_convenants(viewer)
    pseudonyms = {cid: p for cid, p in lookup.items() if cid in convenants}
    # Audited and committed before anything of the report leaves the broker (fail closed).
    with audited_step(db.session, viewer.actor) as step:
        report = reports.access_report(
            step.session, runtime.keyring(), convenants, pseudonyms, viewer.party, now=step.now
        )
        reports.audit_access_report(step.recorder, report, pseudonyms, output)
    stamp = f"{report.generated_at.astimezone(AMSTERDAM):%Y%m%d-%H%M%S}"
    if output == "csv":
        return _download(render_csv(report), "text/csv; charset=utf-8", f"inzage-{stamp}.csv")
    if output == "pdf":
        return _download(render_pdf(report), "application/pdf", f"inzage-{stamp}.pdf")
    return render_template(
        "review/inzage.html",
        formats=FORMATS,
        chosen=output,
        report=report,
        actions=_actions(report, pseudonyms, viewer),
        viewer_party=viewer.party,
    )


def _download(body: str | bytes, mimetype: str, filename: str) -> Response:
    # The file name holds a time only: never a BSN, nor a pseudonym.
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def render_csv(report: reports.AccessReport) -> str:
    """The report as CSV: `;`-separated, as Dutch spreadsheets expect, with Dutch headers."""
    return "".join(csv_text(access_table.TABLE_COLUMNS, access_table.report_table(report), delimiter=";"))


def _latin1(text: str) -> str:
    # The PDF's built-in fonts know Latin-1 only; anything else becomes "?" rather than an error.
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(report: reports.AccessReport) -> bytes:
    """The report as a PDF (A4 landscape), made with fpdf2's built-in fonts."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_compression(False)  # the text stays searchable as is; a report is a few pages at most
    pdf.set_title("Inzagerapport")
    pdf.set_author("Convenant broker")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.cell(text="Inzagerapport (AVG artikel 15)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(0, 5, text=_latin1(_intro(report)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    lines = access_table.report_table(report)
    if not lines:
        pdf.multi_cell(0, 5, text="De broker heeft over deze persoon geen verwerkingen vastgelegd en bewaart niets.")
        return bytes(pdf.output())
    pdf.set_font("Helvetica", size=7)
    with pdf.table(col_widths=PDF_WIDTHS, first_row_as_headings=True, line_height=3.5, text_align="LEFT") as table:
        for line in (access_table.TABLE_COLUMNS, *lines):
            row = table.row()
            for value in line:
                row.cell(_latin1(value))
    return bytes(pdf.output())


def _intro(report: reports.AccessReport) -> str:
    scope = (
        f"Dit rapport bevat wat {report.party_name(report.viewer_party)} met de broker over deze persoon uitwisselde."
        if report.viewer_party
        else "Dit rapport bevat alles wat de broker over deze persoon vastlegde en nog bewaart."
    )
    return (
        f"Opgesteld op {report.generated_at:%d-%m-%Y %H:%M} (Nederlandse tijd). {scope} "
        "Het komt uit het logboek van de broker en uit wat de broker nu bewaart. Het BSN wordt niet getoond."
    )


# -- actions: restrict, lift, erase ------------------------------------------------------------------


@dataclass(frozen=True)
class Actions:
    """What the officer may do about the pupil in one convenant."""

    convenant: Convenant
    pseudonym: str
    restrictions: list[reports.RestrictionLine]


def _actions(report: reports.AccessReport, pseudonyms: dict[str, str], viewer: Viewer) -> list[Actions]:
    """The action forms, only where the officer's party may name the pupil (need-to-know).

    Elsewhere the page is the page for a BSN nobody holds: no forms, so no pseudonym either.
    """
    result = []
    for convenant_id, pseudonym in sorted(pseudonyms.items()):
        if not need_to_know.holds(db.session, convenant_id, viewer.party, pseudonym):
            continue
        liftable = [r for r in report.restrictions if r.convenant_id == convenant_id]
        result.append(Actions(report.convenants[convenant_id], pseudonym, liftable))
    return result


def _subject_from_form(viewer: Viewer) -> tuple[Convenant, str]:
    """The convenant and pseudonym an action form carries, if the officer's party may name the pupil."""
    convenant = _own_convenants(viewer).get(request.form.get("convenant", ""))
    if convenant is None:
        raise Forbidden(NO_CONVENANT)
    pseudonym = request.form.get("pseudoniem", "")
    if not PSEUDONYM.match(pseudonym):
        raise need_to_know.unknown_subject()
    need_to_know.require_held(db.session, convenant.id, viewer.party, pseudonym)
    return convenant, pseudonym


def _reason() -> str | None:
    """The reason typed in an action form; None (with a message shown) when it is missing or holds a BSN."""
    field = Text(max_length=REASON_MAX, screen="bsn", lexicon=_lexicon())
    try:
        reason: str = field.deserialize(request.form.get("reden", ""))
    except ma.ValidationError as e:
        messages = e.messages if isinstance(e.messages, list) else [str(e.messages)]
        flash("De reden is niet in orde: " + " ".join(str(m) for m in messages), "error")
        return None
    return reason


def _done(message: str) -> Any:
    flash(message, "info")
    return redirect(url_for("review.subject_rights"))


@bp.post("/inzage/beperken")
@login_required
def restrict_subject() -> Any:
    """Restrict processing of the pupil (AVG art. 18): nothing about it is routed until lifted."""
    _user, viewer = _viewer()
    convenant, pseudonym = _subject_from_form(viewer)
    reason = _reason()
    if reason is None:
        return redirect(url_for("review.subject_rights"))
    with audited_step(db.session, viewer.actor) as step:
        _restriction, created = rights.restrict(
            step.session,
            convenant,
            pseudonym,
            requested_by=viewer.party or rights.BROKER,
            reason=reason,
            recorder=step.recorder,
            now=step.now,
        )
    if not created:
        return _done("Voor deze leerling gold al een beperking van uw kant; er is niets gewijzigd.")
    return _done("De verwerking is beperkt: er wordt niets meer over deze leerling doorgestuurd.")


@bp.post("/inzage/opheffen")
@login_required
def lift_subject_restriction() -> Any:
    """Lift a restriction (the broker's officer: any; a party's officer: their party's own, others do not exist)."""
    user, viewer = _viewer()
    restriction_id = request.form.get("beperking", "")
    restriction = rights.own_restriction(db.session, restriction_id, viewer.party, _own_convenants(viewer))
    with audited_step(db.session, viewer.actor) as step:
        rights.lift_restriction(
            step.session, restriction, lifted_by=user.username, recorder=step.recorder, now=step.now
        )
    return _done("De beperking is opgeheven.")


@bp.post("/inzage/wissen")
@login_required
def erase_subject() -> Any:
    """Erase what the broker holds about the pupil in the officer's party's flows (all: the broker's officer)."""
    _user, viewer = _viewer()
    convenant, pseudonym = _subject_from_form(viewer)
    reason = _reason()
    if reason is None:
        return redirect(url_for("review.subject_rights"))
    if request.form.get("bevestig") != "ja":
        flash("Bevestig dat alles wat de broker over deze leerling bewaart gewist moet worden.", "error")
        return redirect(url_for("review.subject_rights"))
    keyring = runtime.keyring()
    with audited_step(db.session, viewer.actor) as step:
        purged = rights.erase(
            step.session,
            keyring,
            convenant,
            pseudonym,
            requested_by=viewer.party or rights.BROKER,
            reason=reason,
            recorder=step.recorder,
            now=step.now,
        )
    keyring.sweep_vault()  # the destroyed keys' shares go once the purge is committed
    noun = "record" if purged == 1 else "records"
    return _done(f"Gewist: {purged} {noun} die de broker over deze leerling bewaarde.")
