"""The configuration a production broker must have; `broker serve` and gunicorn refuse to start without it.

Each problem is one sentence that says what is wrong and what to do, e.g.

    Refusing to start: SQLite serves one worker only (4 asked): use --workers 1, or PostgreSQL
    (BROKER_DATABASE_URL=postgresql+psycopg://...).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import make_url

from broker.app.secret import secret_key_problem
from keys.master import MasterKeyError, load_master_key

# Secrets that appear in tutorials and .env examples; a session secret must be random.
WELL_KNOWN_SECRETS = frozenset(
    s.lower()
    for s in (
        "dev", "development", "secret", "secret-key", "secret_key", "changeme", "change-me", "change_me",
        "please-change-me", "test", "testing", "insecure", "default", "password", "your-secret-key",
    )
)


class ConfigurationError(Exception):
    """The configuration is unsafe to serve with; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def __str__(self) -> str:
        return "Refusing to start:\n" + "\n".join(f"  - {p}" for p in self.problems)


def _secret_problem(app: Flask) -> str | None:
    problem = secret_key_problem(app)
    if problem is not None:
        return f"{problem} (it signs the review interface's sessions)"
    value = str(app.config["SECRET_KEY"])
    stripped = value.strip().lower()
    if stripped in WELL_KNOWN_SECRETS or any(stripped.startswith(s + "-") for s in WELL_KNOWN_SECRETS) or len(
        set(value)
    ) < 10:
        return (
            "the secret key is a well-known or guessable value: remove BROKER_SECRET_KEY and run "
            "`broker init` to create a random one"
        )
    return None


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _public_url_problem(value: object) -> str | None:
    if not value:
        return (
            "no public URL: set BROKER_PUBLIC_URL to the address parties use (https://broker.example.nl); "
            "client assertions must name its /oauth/token as aud"
        )
    parts = urlsplit(str(value))
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        return f"BROKER_PUBLIC_URL {value!r} is not a base URL such as https://broker.example.nl"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return f"BROKER_PUBLIC_URL {value!r} is plain http: use https (http only on a loopback address, as the demo)"
    return None


def problems(app: Flask, workers: int) -> list[str]:
    """Everything that makes this configuration unsafe to serve with `workers` processes."""
    found: list[str] = []
    cfg = app.config
    try:
        load_master_key(cfg.get("MASTER_KEY"), cfg.get("MASTER_KEY_FILE"))
    except MasterKeyError as e:
        found.append(f"{e}: run `broker init` to create one, or set BROKER_MASTER_KEY (base64, 32 bytes)")
    secret = _secret_problem(app)
    if secret is not None:
        found.append(secret)
    if make_url(cfg["DATABASE_URL"]).get_backend_name() == "sqlite" and workers > 1:
        found.append(
            f"SQLite serves one worker only ({workers} asked): use --workers 1, or PostgreSQL "
            "(BROKER_DATABASE_URL=postgresql+psycopg://user@host/db)"
        )
    public_url = _public_url_problem(cfg.get("PUBLIC_URL"))
    if public_url is not None:
        found.append(public_url)
    if app.debug or cfg.get("DEBUG"):
        found.append("debug mode is on: it shows code and data in error pages; unset BROKER_DEBUG")
    if cfg.get("TESTING"):
        found.append("TESTING is on: it relaxes security checks; unset BROKER_TESTING")
    return found


def check(app: Flask, workers: int) -> None:
    """Raise ConfigurationError when the configuration is unsafe to serve with."""
    found = problems(app, workers)
    if found:
        raise ConfigurationError(found)
