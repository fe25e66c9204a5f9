"""The app, its clients and its clock; every other fixture is in tests/fixtures/ (loaded as plugins)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugins below are imported by pytest, which rewrites their asserts
    from fixtures.app import Clock

# The fixture modules import each other's helpers: all of them get pytest's assert rewriting.
pytest.register_assert_rewrite("fixtures")

pytest_plugins = (
    "fixtures.app",
    "fixtures.database",
    "fixtures.parties",
    "fixtures.records",
    "fixtures.exchange",
    "fixtures.convenants",
    "fixtures.audit",
    "fixtures.officers",
    "fixtures.matching",
    "fixtures.receivers",
    "fixtures.browser",
)


@pytest.fixture
def clock() -> Clock:
    from fixtures.app import Clock

    return Clock()


@pytest.fixture
def app_config(database_url: str, clock: Clock, tmp_path: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CLOCK": clock,
        "LOG_FILE": str(tmp_path / "broker.log"),
        "KEY_VAULT_DIR": str(tmp_path / "vault"),
        # The test client's own address; assertions name http://localhost/oauth/token as aud.
        "PUBLIC_URL": "http://localhost",
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Any]:
    from fixtures.app import initialised_app

    with initialised_app(app_config) as app:
        yield app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def _close_log_files_after_test() -> Iterator[None]:
    from fixtures.app import close_log_files

    yield
    close_log_files()
