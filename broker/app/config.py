"""Default settings. Every one can be overridden by a `BROKER_`-prefixed environment variable."""

from __future__ import annotations

from schemas.convenant_file import DEFAULT_DIR


class Defaults:
    API_TITLE = "Convenant broker"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"

    # sqlite:///<instance>/broker.db unless BROKER_DATABASE_URL says otherwise.
    DATABASE_URL: str | None = None
    # Seconds. A request never waits longer than this for PostgreSQL to connect or to run one
    # statement (0: no statement limit); past it, the answer is 503, never a hang.
    DATABASE_CONNECT_TIMEOUT = 5
    DATABASE_STATEMENT_TIMEOUT = 120
    CONVENANT_DIR = str(DEFAULT_DIR)

    # The master key wraps every other key. Base64 in BROKER_MASTER_KEY, or a file outside git
    # named by BROKER_MASTER_KEY_FILE (default <instance>/master.key, created by `broker init`).
    MASTER_KEY: str | None = None
    MASTER_KEY_FILE: str | None = None

    # Shares of the data keys, outside the database (default <instance>/vault): deleting a share
    # crypto-shreds a data key, also in old database copies. Keep it out of the database's backups.
    KEY_VAULT_DIR: str | None = None

    TOKEN_ISSUER = "convenant-broker"
    API_AUDIENCE = "convenant-broker-api"
    ACCESS_TOKEN_LIFETIME = 3600
    # The externally visible base URL (https://broker.example.nl). Client assertions must name its
    # /oauth/token as `aud`; the request's Host header never counts. Required to serve.
    PUBLIC_URL: str | None = None

    # The C2SP checkpoint origin (and signing key name) of the audit log.
    AUDIT_ORIGIN = "convenant-broker.local/audit"

    # The review UI's session cookies are signed with SECRET_KEY: BROKER_SECRET_KEY, or a file named
    # by BROKER_SECRET_KEY_FILE (default <instance>/secret.key, created by `broker init`). There is
    # no default: outside testing the review UI refuses to serve without one.
    SECRET_KEY: str | None = None
    SECRET_KEY_FILE: str | None = None
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = 8 * 3600  # seconds of inactivity after which an officer logs in again
    # Seconds after logging in that a review session ends however active it is.
    REVIEW_SESSION_MAX_LIFETIME = 12 * 3600
    REVIEW_PER_PAGE = 50
    # Where the last full verification's result is kept (default <instance>/audit-verify-<db>.json).
    REVIEW_VERIFY_FILE: str | None = None

    # E-mail for outbox messages (breach notices). No SMTP_HOST: no e-mail is sent and e-mail entries
    # wait in the outbox. SMTP_SECURITY is "none", "starttls" or "ssl"; unset, it is "starttls" when
    # SMTP_USERNAME is set, else "none". The password comes from BROKER_SMTP_PASSWORD or from the file
    # BROKER_SMTP_PASSWORD_FILE names. SMTP_TIMEOUT is in seconds.
    SMTP_HOST: str | None = None
    SMTP_PORT = 25
    SMTP_SECURITY: str | None = None
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_PASSWORD_FILE: str | None = None
    SMTP_TIMEOUT = 10
    SMTP_FROM = "Convenant broker <noreply@convenant-broker.local>"

    MAX_CONTENT_LENGTH = 64 * 1024 * 1024
    # Seconds an Idempotency-Key's answer is kept for repeats of the same submission.
    IDEMPOTENCY_TTL = 24 * 3600
    # `broker serve` and gunicorn (gunicorn.conf.py) refuse debug mode: see broker/app/production.py.
    DEBUG = False
    # How many proxies in front set X-Forwarded-For/-Proto/-Host (for client addresses and URLs).
    TRUSTED_PROXIES = 0
    # /metrics asks for this bearer token when set (else it is open: serve it on an internal network).
    METRICS_TOKEN: str | None = None
    # Failed token requests and logins: per client or username, and address, this many in
    # LOCKOUT_WINDOW seconds lock it out for LOCKOUT_SECONDS. Per address, RATELIMIT_* limit the
    # request rate (flask-limiter).
    LOCKOUT_FAILURES = 5
    LOCKOUT_WINDOW = 15 * 60
    LOCKOUT_SECONDS = 15 * 60
    # Logins are locked out per username *and* address. Against guessing one username from many
    # addresses: past this many failures in LOCKOUT_WINDOW (all addresses together), each failure
    # makes the next attempt wait 1, 2, 4 ... up to LOGIN_SLOWDOWN_MAX seconds, except from an
    # address the officer has logged in from before (broker/parties/limits.py).
    LOGIN_SLOWDOWN_FAILURES = 20
    LOGIN_SLOWDOWN_MAX = 60
    RATELIMIT_TOKEN = "30 per minute"
    RATELIMIT_LOGIN = "10 per minute"
    RATELIMIT_STORAGE_URI = "memory://"
    LOG_LEVEL = "INFO"
    JSON_SORT_KEYS = False
