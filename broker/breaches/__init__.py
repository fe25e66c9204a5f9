"""The 24-hour breach workflow: report, impact from the audit log, notify, acknowledge, decide, close.

A breach's clock starts at `detected_at`. The convenant file says how many hours the parties have
to inform each other (`[breach] notify_within_hours`) and to decide about reporting to the
Autoriteit Persoonsgegevens (`ap_within_hours`). Hours are elapsed hours, computed in UTC.

States: gemeld -> genotificeerd (every affected party has the notice) -> bevestigd (every affected
party acknowledged) -> gesloten. A breach whose deadline passes before every acknowledgement is in
is `te laat`; it escalates once, to the parties and the privacy officers.

- `state`: the states, reading a breach and its parties, the derived state as of now;
- `impact`: the scope of a report and its impact, computed from the audit log;
- `reporting`: a new breach with its parties and their notices;
- `notices`: what a notice says, queued by webhook and e-mail (broker/parties/outbox.py);
- `escalation`: states moving on, late breaches and missing AP decisions escalated (the scheduler);
- `steps`: the parties' steps (acknowledge, AP decision, impact correction, close);
- `containment`: a party suspended while the breach is open;
- `views`: a breach as the API and the register show it; `gauges`: its /metrics gauges.

Every function that changes something adds audit entries to the recorder of the caller's
`audited_step`, so a step and its audit entries are stored together or not at all.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker breaches` commands."""
    from broker.breaches.cli import breaches_group

    app.cli.add_command(breaches_group)
