"""OAuth 2.0 client credentials with private_key_jwt (RFC 7523), and bearer-token checks.

The token endpoint is written against joserfc directly rather than authlib's server framework:
the rules the convenant needs (asymmetric algorithms only, `aud` exactly the token endpoint,
short-lived assertions, jti replay refusal shared by every worker through the database) are
each a few lines here, and every refusal must be an audited, uniform answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import marshmallow as ma
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app, g, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from audit.entry import Actor
from broker.app import runtime
from broker.app.answers import Answer
from broker.app.body_parser import ApiBlueprint, Body
from broker.app.errors import BadRequest, BrokerError, Forbidden, OAuthError, ServiceUnavailable, Unauthorized
from broker.app.extensions import db
from broker.app.inputs import BodySchema
from broker.app.problems import VERSION
from broker.auditing.step import audited_step, broker_activity
from broker.models import AssertionJti, Client, PartySuspension
from broker.parties import limits

blp = ApiBlueprint("oauth", __name__, url_prefix="/oauth", description="OAuth 2.0 token endpoint")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ALGORITHMS = ["RS256", "ES256"]
TOKEN_ALGORITHM = "ES256"
TOKEN_PURPOSE = "access-token-signing"
MAX_ASSERTION_LIFETIME = dt.timedelta(minutes=5)
CLOCK_SKEW = dt.timedelta(seconds=10)
INVALID_CLIENT = "Clientauthenticatie is mislukt."

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    client_id: str
    party_id: str

    @property
    def actor(self) -> Actor:
        return Actor(type="client", id=self.client_id, party=self.party_id)


def import_public_key(jwk: dict[str, Any]) -> RSAKey | ECKey:
    """Import a client's public JWK; only RSA and P-256 keys are accepted."""
    if jwk.get("kty") == "RSA":
        key: RSAKey | ECKey = RSAKey.import_key(jwk)
    elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        key = ECKey.import_key(jwk)
    else:
        raise ValueError("only RSA and EC P-256 public keys are accepted")
    if key.is_private:
        raise ValueError("a private key was given; register the public key only")
    return key


def token_endpoint_url() -> str:
    """The `aud` every client assertion must name: PUBLIC_URL's token endpoint, never the request's
    Host header (a client picks that, so it would let an assertion made for another server in)."""
    base = current_app.config.get("PUBLIC_URL")
    if not base:
        structlog.get_logger("broker.auth").error("token endpoint refused", reason="PUBLIC_URL is not set")
        raise ServiceUnavailable(
            "De broker kent zijn publieke adres niet (BROKER_PUBLIC_URL); er is geen token uitgegeven."
        )
    return str(base).rstrip("/") + "/oauth/token"


def _unverified(assertion: str) -> tuple[Any, Client | None]:
    """An assertion's `alg` and the registered client its `sub` names, before any check of them."""
    try:
        compact = jws.extract_compact(assertion.encode())
        alg = compact.protected.get("alg")
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeDecodeError) as e:
        raise OAuthError("invalid_client", INVALID_CLIENT, 401) from e
    client_id = claims.get("sub") if isinstance(claims, dict) else None
    return alg, db.session.get(Client, client_id) if _plausible_id(client_id) else None


def _authenticate_client(assertion: str, now: dt.datetime) -> Client:
    alg, client = _unverified(assertion)
    if alg not in CLIENT_ALGORITHMS:
        raise OAuthError("invalid_client", "Alleen RS256 en ES256 zijn toegestaan.", 401)
    if client is None or client.revoked_at is not None:
        raise OAuthError("invalid_client", INVALID_CLIENT, 401)
    try:
        token = jwt.decode(assertion, import_public_key(client.public_jwk), algorithms=CLIENT_ALGORITHMS)
    except (JoseError, ValueError) as e:
        raise OAuthError("invalid_client", INVALID_CLIENT, 401) from e
    _check_assertion_claims(token.claims, client.client_id, now)
    return client


def _plausible_id(value: Any) -> bool:
    """Whether an unverified claim can be looked up at all (no NUL, sane length)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and "\x00" not in value


def _timestamp(value: Any) -> dt.datetime | None:
    """A NumericDate claim as a datetime, or None when it is absent, absurd or out of range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _check_assertion_claims(claims: dict[str, Any], client_id: str, now: dt.datetime) -> None:
    def refuse(detail: str) -> OAuthError:
        return OAuthError("invalid_client", detail, 401)

    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise refuse("iss en sub moeten de client_id zijn.")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if token_endpoint_url() not in audiences:
        raise refuse("aud moet het token-endpoint zijn.")
    expires = _timestamp(claims.get("exp"))
    if expires is None:
        raise refuse("De assertion mist een geldige exp.")
    if expires <= now - CLOCK_SKEW:
        raise refuse("De assertion is verlopen.")
    if expires > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise refuse("exp mag hoogstens 5 minuten in de toekomst liggen.")
    for name in ("iat", "nbf"):
        if name not in claims:
            continue
        moment = _timestamp(claims[name])
        if moment is None:
            raise refuse(f"{name} is geen geldig tijdstip.")
        if moment > now + CLOCK_SKEW:
            raise refuse(f"{name} ligt in de toekomst.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255 or "\x00" in jti:
        raise refuse("De assertion mist jti.")
    session = db.session
    session.execute(delete(AssertionJti).where(AssertionJti.expires_at < now - CLOCK_SKEW))
    try:
        with session.begin_nested():
            session.add(AssertionJti(client_id=client_id, jti=jti, expires_at=expires))
    except IntegrityError as e:
        raise refuse("Deze assertion (jti) is al gebruikt.") from e


def issue_access_token(client: Client, now: dt.datetime) -> dict[str, Any]:
    """Sign an access token for `client`; its lifetime is capped at one hour."""
    lifetime = min(int(current_app.config["ACCESS_TOKEN_LIFETIME"]), 3600)
    key = runtime.keyring().signing_key(TOKEN_PURPOSE, TOKEN_ALGORITHM)
    private = key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)  # TOKEN_ALGORITHM is ES256
    claims = {
        "iss": current_app.config["TOKEN_ISSUER"],
        "sub": client.client_id,
        "aud": current_app.config["API_AUDIENCE"],
        "party": client.party_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + lifetime,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(
        {"alg": TOKEN_ALGORITHM, "kid": key.kid, "typ": "at+jwt"},
        claims,
        ECKey.import_key(private),
        algorithms=[TOKEN_ALGORITHM],
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}


class AccessTokenSchema(Answer):
    """The token endpoint's answer (RFC 6749 section 5.1)."""

    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = ma.fields.Integer(required=True, metadata={"maximum": 3600})


class TokenRequestSchema(BodySchema):
    """The token request: client_credentials with a private_key_jwt client assertion (RFC 6749
    section 4.4, RFC 7523 section 2.2), form-encoded. Other parameters are ignored (RFC 6749 3.2)."""

    class Meta:
        unknown = ma.EXCLUDE

    REFUSED_AS: ClassVar[dict[int, str]] = {400: "OAuthProblem400", 401: "OAuthProblem401"}

    grant_type = ma.fields.String(required=True, validate=ma.validate.OneOf(["client_credentials"]))
    client_assertion_type = ma.fields.String(required=True, validate=ma.validate.OneOf([ASSERTION_TYPE]))
    client_assertion = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    scope = ma.fields.String()

    @classmethod
    def refusal(cls, errors: list[dict[str, Any]]) -> BrokerError:
        """A wrong grant type first (400), then a missing or foreign assertion (401), as RFC 6749 5.2 has it."""
        if any(error.get("field") == "grant_type" for error in errors):
            return OAuthError("unsupported_grant_type", "Alleen grant_type=client_credentials.")
        return OAuthError("invalid_client", "Authenticeer met private_key_jwt (RFC 7523).", 401)


@blp.route("/token", methods=["POST"])
@blp.arguments(TokenRequestSchema, location="form", deferred=True, content_type="application/x-www-form-urlencoded")
@blp.doc(
    summary="Exchange a signed client assertion for an access token",
    responses={
        "400": "OAuthProblem400",  # unsupported_grant_type, or a request werkzeug could not read
        "401": "OAuthProblem401",  # invalid_client: the assertion is missing, invalid, expired or replayed
        "413": "Problem413",
        "429": "OAuthProblem429",  # too many requests from this address, or this client locked out here
        "503": "Problem503",  # the audit log could not record the issued token; none is issued
    },
)
@blp.response(
    200,
    AccessTokenSchema,
    description="An access token (a JWT signed with ES256) for the API, valid for at most an hour.",
    headers=VERSION,
)
@limits.limiter.limit(limits.token_rate, error_message=limits.TOO_MANY)
def token(request_body: Body) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Issue an access token (client_credentials with private_key_jwt)."""
    token_endpoint_url()  # 503 before anything is counted or audited when PUBLIC_URL is missing
    form = request.form
    claimed = _claimed_client(form.get("client_assertion"))
    client_id = claimed.client_id if claimed is not None else None
    subject = f"{client_id}@{limits.client_address()}" if client_id else None
    now = runtime.now()
    if subject and (lockout := limits.locked(db.session, limits.TOKEN, subject, now)):
        limits.refuse(db.session, limits.TOKEN, None, "locked out", {"client_id": client_id, "error": "locked"})
        raise _locked_out(lockout, now)
    try:
        client = _authenticate_client(request_body.load()["client_assertion"], now)
    except OAuthError as e:
        attributes = {"client_id": client_id, "error": e.extra["error"]}
        lockout = limits.refuse(db.session, limits.TOKEN, subject, e.detail, attributes)
        if lockout is not None:
            raise _locked_out(lockout, now) from e
        raise
    caller = Caller(client.client_id, client.party_id)
    # The assertion's jti, stored while it was checked, commits with the token's audit entry.
    with audited_step(db.session, caller.actor) as step:
        body = issue_access_token(client, now)
        if subject is not None:
            limits.succeeded(step.session, limits.TOKEN, subject)
        step.record(
            "token.issued", broker_activity("token"), root=True, attributes={"expires_in": body["expires_in"]}
        )
    return body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _claimed_client(assertion: str | None) -> Client | None:
    """The registered client an assertion claims to come from, if it names one."""
    try:
        return _unverified(assertion)[1] if assertion else None
    except OAuthError:
        return None


def _locked_out(lockout: limits.Lockout, now: dt.datetime) -> OAuthError:
    error = OAuthError(
        "invalid_client",
        "Te veel mislukte aanvragen voor deze client vanaf dit adres; probeer het later opnieuw.",
        429,
    )
    error.headers["Retry-After"] = str(lockout.retry_after(now))
    return error


class PartySuspended(Forbidden):
    slug = "party-suspended"
    title = "Partij opgeschort"


def _check_suspension(party_id: str, issued_at: Any, allowed: bool) -> None:
    """Containment of a breach: tokens from before a suspension are revoked for good, and while it
    lasts a party may only use the breach endpoints (to acknowledge and answer)."""
    suspensions = select(PartySuspension).where(PartySuspension.party_id == party_id)
    started = db.session.scalar(suspensions.with_only_columns(func.max(PartySuspension.started_at)))
    if started is None:
        return
    if not isinstance(issued_at, int) or issued_at <= started.timestamp():
        raise Unauthorized("Het toegangstoken is ingetrokken; vraag een nieuw token aan.")
    if not allowed and db.session.scalar(suspensions.where(PartySuspension.lifted_at.is_(None)).limit(1)) is not None:
        raise PartySuspended(
            "Uw partij is opgeschort zolang een datalek wordt afgehandeld; alleen de datalek-endpoints zijn bereikbaar."
        )


def allow_suspended(view: F) -> F:
    """Mark a view that a suspended party may still use (under `require_token`)."""
    view.allow_suspended = True  # type: ignore[attr-defined]
    return view


def _verify_access_token(token: str, allow_suspended: bool = False) -> Caller:
    keys = runtime.keyring().signing_keys(TOKEN_PURPOSE)
    key_set = KeySet([ECKey.import_key(k.public_jwk, {"kid": k.kid}) for k in keys])
    try:
        decoded = jwt.decode(token, key_set, algorithms=[TOKEN_ALGORITHM])
        jwt.JWTClaimsRegistry(
            now=int(runtime.now().timestamp()),
            iss={"essential": True, "value": current_app.config["TOKEN_ISSUER"]},
            aud={"essential": True, "value": current_app.config["API_AUDIENCE"]},
            exp={"essential": True},
            sub={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as e:
        raise Unauthorized("Het toegangstoken is ongeldig of verlopen.") from e
    client = db.session.get(Client, decoded.claims["sub"])
    if client is None or client.revoked_at is not None or client.party_id != decoded.claims.get("party"):
        raise Unauthorized("Het toegangstoken is ongeldig of verlopen.")
    _check_suspension(client.party_id, decoded.claims.get("iat"), allow_suspended)
    return Caller(client_id=client.client_id, party_id=client.party_id)


def current_caller() -> Caller:
    caller: Caller = g.caller
    return caller


def require_token(view: F) -> F:
    """Let the view run only for a valid bearer token sent in the Authorization header."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "access_token" in request.args or "access_token" in request.form:
            raise BadRequest("Toegangstokens worden niet in de URL of het formulier geaccepteerd.")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Stuur een Bearer-toegangstoken in de Authorization-header.")
        g.caller = _verify_access_token(token.strip(), getattr(view, "allow_suspended", False))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
