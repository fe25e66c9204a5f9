"""Real broker processes for fault tests: `broker init`, `broker serve` (gunicorn) as a process group
that a test can SIGKILL whole, real OAuth clients over HTTP, and a private PostgreSQL cluster that a
test may stop and start.

Nothing here is a fixture; tests/test_faults.py wires it up. Every process started here is killed by
its own process group id, never by name.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests
from joserfc import jwt
from joserfc.jwk import ECKey

REPO = Path(__file__).resolve().parents[1]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PROBLEM_JSON = "application/problem+json"


def broker_executable() -> str:
    """The `broker` console script of the interpreter running the tests (the project's venv)."""
    candidate = Path(sys.executable).parent / "broker"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("broker")
    if found is None:
        raise RuntimeError("no `broker` executable next to the interpreter or on PATH; run `make install`")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- environment and the CLI -----------------------------------------------------------------------


@dataclass
class BrokerEnv:
    """Where one broker instance keeps its files, and the environment its processes get."""

    database_url: str
    directory: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def master_key_file(self) -> Path:
        return self.directory / "master.key"

    @property
    def vault_dir(self) -> Path:
        return self.directory / "vault"

    @property
    def secret_key_file(self) -> Path:
        return self.directory / "secret.key"

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
        env.update(
            BROKER_DATABASE_URL=self.database_url,
            BROKER_MASTER_KEY_FILE=str(self.master_key_file),
            BROKER_SECRET_KEY_FILE=str(self.secret_key_file),
            BROKER_KEY_VAULT_DIR=str(self.vault_dir),
            BROKER_REVIEW_VERIFY_FILE=str(self.directory / "audit-verify.json"),
            BROKER_PUBLIC_URL=self.base_url,
            BROKER_LOG_LEVEL="WARNING",
            # Every client of these tests connects from 127.0.0.1: the per-address token rate limit
            # would throttle the 20 submitters and the replay test, which test other things.
            BROKER_RATELIMIT_TOKEN="6000 per minute",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def app_config(self) -> dict[str, Any]:
        """The same settings for an app in the test process (client registration, pseudonyms)."""
        return {
            "DATABASE_URL": self.database_url,
            "MASTER_KEY": None,
            "MASTER_KEY_FILE": str(self.master_key_file),
            "SECRET_KEY_FILE": str(self.secret_key_file),
            "KEY_VAULT_DIR": str(self.vault_dir),
            "REVIEW_VERIFY_FILE": str(self.directory / "audit-verify.json"),
            "PUBLIC_URL": self.base_url,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_TOKEN": "6000 per minute",
            "LOG_FILE": str(self.directory / "in-process.log"),
        }

    def cli(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `broker ARGS` as its own process; with `check`, fail with its output on a non-zero exit."""
        result = subprocess.run(  # noqa: S603 - our own console script with fixed arguments
            [broker_executable(), *args],
            env=self.environ(),
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`broker {' '.join(args)}` exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        return result


# -- the server ------------------------------------------------------------------------------------


class BrokerServer:
    """`broker serve` in its own session (process group): the gunicorn master and its workers."""

    def __init__(self, env: BrokerEnv, workers: int = 1, scheduler: bool = False, name: str = "serve") -> None:
        self.env = env
        self.workers = workers
        self.scheduler = scheduler
        self.log_path = env.directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.readiness_path: str | None = None  # /readyz, or /openapi.json while there is no /readyz

    @property
    def base_url(self) -> str:
        return self.env.base_url

    def start(self, timeout: float = 60) -> BrokerServer:
        args = [
            broker_executable(), "serve", "--host", "127.0.0.1", "--port", str(self.env.port),
            "--workers", str(self.workers), "--scheduler" if self.scheduler else "--no-scheduler",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own console script
                args, env=self.env.environ(), cwd=self.env.directory, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll GET /readyz (GET /openapi.json where /readyz does not exist yet) until it answers 200."""
        deadline = time.monotonic() + timeout
        last: str = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"broker serve exited with {self.process and self.process.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                response = requests.get(f"{self.base_url}/readyz", timeout=5)
                if response.status_code == 200:
                    self.readiness_path = "/readyz"
                    return
                if response.status_code == 404:
                    fallback = requests.get(f"{self.base_url}/openapi.json", timeout=5)
                    if fallback.status_code == 200:
                        self.readiness_path = "/openapi.json"
                        return
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as e:
                last = type(e).__name__
            time.sleep(0.2)
        raise AssertionError(f"broker not ready after {timeout} s (last: {last}):\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """Every live process of the server's process group (master and workers)."""
        if self.process is None:
            return []
        pgid = self.process.pid
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...; comm may hold spaces, so split after the last ')'.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL the gunicorn master and every worker at once (the whole process group)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self._wait_group_gone()

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully (SIGTERM to the group), SIGKILL whatever is left after `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers that outlived the master
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=30)
        self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)


# -- a party's client over real HTTP ---------------------------------------------------------------


@dataclass
class HttpParty:
    """A party's own client: signs its assertions, gets tokens from the real /oauth/token."""

    party_id: str
    client_id: str
    key: ECKey
    base_url: str
    http: requests.Session = field(default_factory=requests.Session)
    token: str | None = None

    # Every client made, so that a test's teardown closes their connections (close_parties).
    made: ClassVar[list[HttpParty]] = []

    def __post_init__(self) -> None:
        HttpParty.made.append(self)

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": f"{self.base_url}/oauth/token",
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode({"alg": "ES256"}, claims, self.key, algorithms=["ES256"])

    def request_token(self, assertion: str | None = None, timeout: float = 30,
                      http: requests.Session | None = None) -> requests.Response:
        return (http or self.http).post(
            f"{self.base_url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion or self.assertion(),
            },
            timeout=timeout,
        )

    def login(self) -> HttpParty:
        response = self.request_token()
        assert response.status_code == 200, (response.status_code, response.text[:1000])
        self.token = response.json()["access_token"]
        return self

    @property
    def headers(self) -> dict[str, str]:
        if self.token is None:
            self.login()
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, records: list[dict[str, Any]], kind: str = "case", quarter: str | None = None,
               convenant: str = "thuiszitters-midden-gelre", timeout: float = 60) -> requests.Response:
        body: dict[str, Any] = {"kind": kind, "records": records}
        if quarter:
            body["quarter"] = quarter
        return self.post_raw(f"/api/v1/convenants/{convenant}/submissions", json.dumps(body).encode(), timeout)

    def post_raw(self, path: str, body: bytes, timeout: float = 60) -> requests.Response:
        return self.http.post(f"{self.base_url}{path}", data=body, timeout=timeout,
                              headers={**self.headers, "Content-Type": "application/json"})

    def get(self, path: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.http.get(f"{self.base_url}{path}", headers=headers, timeout=timeout, **kwargs)

    def post(self, path: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.http.post(f"{self.base_url}{path}", headers=headers, timeout=timeout, **kwargs)


def close_parties() -> None:
    """Close the HTTP connections of every client made so far (no unclosed-socket ResourceWarning)."""
    while HttpParty.made:
        HttpParty.made.pop().http.close()


class Registrar:
    """Registers party clients (`broker clients add`) through an app in the test process.

    Each CLI process costs seconds of imports; the command run in-process is the same code against the
    same database and key files.
    """

    def __init__(self, env: BrokerEnv) -> None:
        from broker import create_app

        self.env = env
        self.app = create_app(env.app_config())
        self.runner = self.app.test_cli_runner()

    def add(self, party_id: str) -> HttpParty:
        key = ECKey.generate_key("P-256")
        path = self.env.directory / f"client-{uuid.uuid4().hex}.jwk"
        path.write_text(json.dumps(key.as_dict(private=False)))
        result = self.runner.invoke(args=["clients", "add", "--party", party_id, "--public-key", str(path)])
        assert result.exit_code == 0, result.output
        return HttpParty(party_id, result.output.strip(), key, self.env.base_url)

    def pseudonymiser(self, convenant_id: str) -> Any:
        from broker.app import runtime

        with self.app.app_context():
            return runtime.keyring().pseudonymiser(convenant_id)

    def close(self) -> None:
        with self.app.app_context():
            from broker.app.extensions import db

            db.engine.dispose()


# -- a private PostgreSQL cluster -------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, or None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    for candidate in reversed(candidates):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def can_run_as_postgres() -> str | None:
    """None when we can run commands as the postgres user (root via su, or as postgres); else why not."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no `postgres` user"
    if os.geteuid() == 0:
        return None if shutil.which("su") else "`su` is missing"
    if pwd.getpwuid(os.geteuid()).pw_name == "postgres":
        return None
    return "initdb needs the postgres user: run as root (su postgres) or as postgres"


class PgCluster:
    """A throwaway PostgreSQL cluster on loopback, owned by postgres, like .ci/run's."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        # Not under pytest's tmp_path: that is 0700 root's, and the cluster belongs to postgres.
        self.root = Path(tempfile.mkdtemp(prefix="broker-fault-pg-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "log"

    def _run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = shlex.join(args)
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
        if check and result.returncode != 0:
            raise AssertionError(
                f"{command} exited {result.returncode}: {result.stdout[-2000:]} {result.stderr[-2000:]}"
                f"\nserver log: {self.log_tail()}"
            )
        return result

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def init(self) -> PgCluster:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        )
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                  check=check)

    def running(self) -> bool:
        result = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return result.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
