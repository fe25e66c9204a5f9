"""The auditor's page: what the broker holds per convenant and kind, how old it is, what is past retention."""

from __future__ import annotations

from typing import Any

from flask import render_template

from broker.app import runtime
from broker.app.extensions import db
from broker.app.timefmt import local_short
from broker.review.auth import login_required
from broker.review.views import bp
from broker.rights import retention


@bp.get("/bewaartermijnen")
@login_required
def retention_report() -> Any:
    """Counts and ages only: no personal data is shown, so every officer may see the whole picture."""
    now = runtime.now()
    lines = retention.report(db.session, runtime.convenants(), now)
    return render_template(
        "review/retention.html",
        lines=lines,
        reasons=retention.REASONS,
        convenants=runtime.convenants(),
        when=local_short,
        overdue=sum(line.overdue for line in lines),
        rules={cid: c.retention for cid, c in runtime.convenants().items()},
    )
