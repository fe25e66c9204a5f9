"""The secret that signs the review interface's session cookies.

It comes from BROKER_SECRET_KEY, or from the file BROKER_SECRET_KEY_FILE names (default
<instance>/secret.key, written with mode 0600 by `broker init`). There is no default in code:
outside testing, the review interface refuses to serve until a secret is configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, current_app

MIN_SECRET_LENGTH = 32


def secret_key_file(app: Flask) -> Path:
    return Path(app.config.get("SECRET_KEY_FILE") or os.path.join(app.instance_path, "secret.key"))


def load_secret_key(app: Flask) -> None:
    """Set SECRET_KEY from the environment or the key file; in tests, a random one if neither."""
    value = app.config.get("SECRET_KEY")
    if value:
        # from_prefixed_env parses values as JSON where it can: a numeric secret becomes an int.
        app.config["SECRET_KEY"] = str(value)
        return
    try:
        text = secret_key_file(app).read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        app.config["SECRET_KEY"] = text
    elif app.config.get("TESTING"):
        # A fresh random key per test app: sessions work, and nothing fixed ships in code.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)


def secret_key_problem(app: Flask) -> str | None:
    """Say why the configured secret cannot sign sessions, or None if it can."""
    value = app.config.get("SECRET_KEY")
    if not value:
        return "no secret key: set BROKER_SECRET_KEY or run `broker init` to create the key file"
    if len(str(value)) < MIN_SECRET_LENGTH and not app.config.get("TESTING"):
        return f"the secret key must be at least {MIN_SECRET_LENGTH} characters"
    return None


def create_secret_key_file(path: Path) -> bool:
    """Write a new random secret to `path` (mode 0600) unless one exists; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    return True


def ensure_secret_key() -> Path | None:
    """For `broker init`: create the key file when no secret is configured; return its path if so."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("SECRET_KEY"):
        return None
    path = secret_key_file(app)
    created = create_secret_key_file(path)
    load_secret_key(app)
    return path if created else None
