"""Who is asking and may they: OpenID Connect bearer tokens, static tokens, and scopes (no HTTP objects here).

Two kinds of credential arrive as ``Authorization: Bearer <token>`` (RFC 6750 §2.1):

* a JWT access token (three dot-separated parts) from an OpenID Connect issuer, checked with PyJWT: signature
  against the issuer's JWKS (RS256 or ES256 only, so neither ``alg: none`` nor an HS256 token "signed" with the
  public key gets through), ``iss``, ``aud``, ``exp`` (required), ``nbf`` (when present), with ``LEEWAY_S`` of
  clock skew. The JWKS comes from the discovery document (``{issuer}/.well-known/openid-configuration`` →
  ``jwks_uri``) or a configured file or URL; it is cached, and fetched again when a token names an unknown
  ``kid`` (key rotation) or the copy is older than ``JWKS_MAX_AGE_S``, at most once per ``JWKS_MIN_INTERVAL_S``;
* a static token (no dots) from a token file, for small sites without an identity provider.

Scopes come from the space-separated ``scope`` claim (RFC 8693 §4.2, RFC 9068 §2.2.3) or the token file:
``dicomweb.read`` for GET, HEAD and OPTIONS, ``dicomweb.write`` for POST (STOW) and DELETE (``REQUIRED_SCOPE``).

Fetching keys is blocking I/O: ``OidcVerifier.refresh`` is meant to run in a worker thread (the web layer does),
with a timeout, and never more than once per interval however many requests ask for it.

Past 400 lines on purpose: both kinds of credential end in one ``Principal`` checked against one scope table,
and the ``Authenticator`` that picks between them would otherwise import the verifiers that import it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt

from .errors import Forbidden, InvalidAuthRequest, Unauthorized
from .settings import Settings

log = logging.getLogger("dicomweb_origin.auth")

READ: Final = "dicomweb.read"
WRITE: Final = "dicomweb.write"
SCOPES: Final = (READ, WRITE)
# The scope each method needs; any other method needs write (it would change something, or get 405).
REQUIRED_SCOPE: Final[Mapping[str, str]] = {"GET": READ, "HEAD": READ, "OPTIONS": READ, "POST": WRITE,
                                             "PUT": WRITE, "DELETE": WRITE}

# Accepted signature algorithms and the JWK key type each needs (RFC 7518 §3.1; ES256 is P-256 only, §3.4).
ALGORITHMS: Final[Mapping[str, str]] = {"RS256": "RSA", "ES256": "EC"}
LEEWAY_S: Final = 30  # clock skew allowed on exp and nbf
JWKS_MIN_INTERVAL_S: Final = 30.0  # at most one JWKS fetch per this interval, whatever the tokens say
JWKS_MAX_AGE_S: Final = 3600.0  # a key set older than this is fetched again (keys the issuer withdrew go)
FETCH_TIMEOUT_S: Final = 5.0
VERIFIED_CACHE_SIZE: Final = 4096  # JWTs remembered as verified, until their exp
MAX_NAME: Final = 256  # characters of a subject kept for the access log
FETCH_MAX_BYTES: Final = 1 << 20

# RFC 6750 §2.1 b64token
B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
TOKEN_BYTES: Final = 32  # static tokens: 256 random bits
HASH_SCHEME: Final = "sha256"

# What a PyJWT failure tells the client (error_description), most specific first.
JWT_ERRORS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf)"),
    (jwt.InvalidAudienceError, "the token is not for this audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.InvalidSignatureError, "the token signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim (exp, iss, aud)"),
    (jwt.InvalidAlgorithmError, "the token algorithm is not accepted (RS256, ES256)"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
    (jwt.InvalidTokenError, "the token is not valid"),
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a token subject or a static token's name, and its scopes."""

    name: str
    scopes: frozenset[str]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; 401 without error when there is none (RFC 6750 §3.1)."""
    if authorization is None:
        raise Unauthorized("this resource needs a bearer token", error=None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":  # another scheme (Basic, ...): as if no credentials came
        raise Unauthorized("this resource needs a bearer token (Authorization: Bearer ...)", error=None)
    token = token.strip()
    if not B64TOKEN.fullmatch(token):
        raise InvalidAuthRequest("the Authorization header holds no well-formed bearer token")
    return token


def require(principal: Principal, method: str) -> None:
    """403 unless the caller holds the scope the method needs."""
    scope = REQUIRED_SCOPE.get(method, WRITE)
    if scope not in principal.scopes:
        raise Forbidden(f"{method} needs the {scope} scope", scope=scope)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- Static tokens ------------------------------------------------------------------------------------

def _digest(salt: bytes, token: str) -> bytes:
    # The token carries 256 random bits, so one salted SHA-256 is as strong as a slow KDF and cheap per request.
    return hashlib.sha256(salt + token.encode()).digest()


@dataclass(frozen=True, slots=True)
class StaticToken:
    salt: bytes
    digest: bytes
    name: str
    scopes: frozenset[str]

    def line(self) -> str:
        return f"{HASH_SCHEME}${self.salt.hex()}${self.digest.hex()} {self.name} {','.join(sorted(self.scopes))}\n"


def parse_token_line(line: str, where: str) -> StaticToken | None:
    """One line of a token file (``sha256$SALT$HASH NAME SCOPE,SCOPE``); None for blank lines and comments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"{where}: want 'sha256$SALT$HASH NAME SCOPES', got {len(fields)} fields")
    hashed, name, scope_list = fields
    scheme, _, rest = hashed.partition("$")
    salt_hex, _, digest_hex = rest.partition("$")
    try:
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        raise ValueError(f"{where}: the salt and hash are not hexadecimal") from None
    if scheme != HASH_SCHEME or len(digest) != 32 or not salt:
        raise ValueError(f"{where}: the hash is not {HASH_SCHEME}$SALT$HASH")
    return StaticToken(salt, digest, name, check_scopes(scope_list.split(","), where))


def check_scopes(scopes: Iterable[str], where: str = "--scopes") -> frozenset[str]:
    found = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(found - set(SCOPES))
    if unknown or not found:
        raise ValueError(f"{where}: scopes must be among {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    return found


def read_tokens(path: Path) -> list[StaticToken]:
    lines = path.read_text(encoding="utf-8").splitlines()
    tokens = [t for n, line in enumerate(lines, 1) if (t := parse_token_line(line, f"{path}:{n}")) is not None]
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a token name appears twice")
    return tokens


def add_token(path: Path, name: str, scopes: Iterable[str]) -> str:
    """Append a new random token to the file (created 0600); return the token, which is stored only hashed."""
    if not name or any(c.isspace() for c in name) or name.startswith("#"):
        raise ValueError("a token name is one word (no spaces), not starting with #")
    granted = check_scopes(scopes)
    if path.exists() and any(t.name == name for t in read_tokens(path)):
        raise ValueError(f"{path}: a token named {name!r} exists already")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    salt = secrets.token_bytes(16)
    entry = StaticToken(salt, _digest(salt, token), name, granted)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fp:
        fp.write(entry.line())
    return token


def remove_token(path: Path, name: str) -> None:
    """Drop the named token's line (revocation; a running server sees the change on its next request)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for n, line in enumerate(lines, 1)
            if (t := parse_token_line(line, f"{path}:{n}")) is None or t.name != name]
    if len(kept) == len(lines):
        raise ValueError(f"{path}: no token named {name!r}")
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        fp.writelines(kept)
    os.replace(part, path)  # never a half-written file for the server to read


class TokenFile:
    """The static tokens of a file, read again when the file changes (``token add`` needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: list[StaticToken] = []
        self._reload()

    def _reload(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._tokens = read_tokens(self.path)
            self._stamp = stamp

    def verify(self, token: str) -> Principal:
        try:
            self._reload()
        except (OSError, ValueError):
            pass  # keep the tokens read last; a half-written or vanished file does not lock everyone out
        match: StaticToken | None = None
        for entry in self._tokens:  # every entry compared, in constant time: no early exit to time
            if hmac.compare_digest(_digest(entry.salt, token), entry.digest):
                match = entry
        if match is None:
            raise Unauthorized("the token is not known")
        return Principal(match.name, match.scopes)


# -- OpenID Connect ------------------------------------------------------------------------------------

def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _fetch_json(source: str) -> Any:
    """A JSON document from an http(s) URL (bounded time and size) or a file."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            body = response.read(FETCH_MAX_BYTES + 1)
        if len(body) > FETCH_MAX_BYTES:
            raise ValueError(f"{source}: larger than {FETCH_MAX_BYTES} bytes")
    else:
        body = Path(source).read_bytes()
    return json.loads(body)


class OidcVerifier:
    """JWT access tokens of one issuer and audience, against a cached, rate-limited JWKS."""

    def __init__(self, issuer: str, audience: str, jwks: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_source = jwks  # None: from the discovery document
        self.clock = clock  # injectable: tests step time past the rate limit
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self.fetches = 0  # observable: how often the issuer was asked
        # Tokens verified already (by SHA-256), with their principal and validity: a viewer sends one token with
        # hundreds of frame requests, and a signature check costs ~0.1-0.4 ms of the event loop.
        self._verified: dict[bytes, tuple[Principal, float, float]] = {}
        self.last_error: str | None = None

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def _header(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not a well-formed JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"the token algorithm {str(header.get('alg'))[:20]} is not accepted (RS256, ES256)")
        return header

    def needs_refresh(self, token: str) -> bool:
        """Whether the keys should be fetched before verifying this token (unknown kid, or a stale key set).

        False while the last attempt is more recent than JWKS_MIN_INTERVAL_S: unknown kids cannot hammer the issuer.
        """
        now = self.clock()
        if self._tried_at is not None and now - self._tried_at < JWKS_MIN_INTERVAL_S:
            return False
        if self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE_S:
            return True
        if _token_digest(token) in self._verified:
            return False
        try:
            kid = self._header(token).get("kid")
        except Unauthorized:
            return False
        return kid is not None and kid not in self._keys

    def has_key(self, token: str) -> bool:
        """Whether the keys held now name this token's kid (or, without a kid, whether any keys are held)."""
        try:
            kid = self._header(token).get("kid")
        except Unauthorized:
            return True  # nothing to fetch for: verify refuses it
        return kid in self._keys if kid is not None else bool(self._keys)

    def refresh(self) -> None:
        """Fetch the key set (blocking: run it in a thread); on failure keep the keys there are."""
        with self._lock:
            now = self.clock()
            if self._tried_at is not None and now - self._tried_at < JWKS_MIN_INTERVAL_S:
                return  # another request fetched (or failed to) just now
            self._tried_at = now
            self.fetches += 1
            try:
                self._keys = self._load_keys()
                self._verified = {}  # a withdrawn key's tokens go with it (a new dict: the loop may be using the old)
                self._fetched_at = self.clock()
                self.last_error = None
            except Exception as exc:  # whatever the issuer sends (or not), the server keeps the keys it has
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("cannot fetch the signing keys of %s: %s", self.issuer, self.last_error)

    def _load_keys(self) -> dict[str | None, jwt.PyJWK]:
        source = self.jwks_source
        if source is None:
            discovery = _fetch_json(self.discovery_url)
            # OpenID Connect Discovery 1.0 §4.3: the issuer in the document must be the one asked for.
            if discovery.get("issuer") != self.issuer:
                raise ValueError(f"the discovery document names issuer {discovery.get('issuer')!r}")
            source = str(discovery["jwks_uri"])
        document = _fetch_json(source)
        keys: dict[str | None, jwt.PyJWK] = {}
        for jwk in document["keys"]:
            if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
                continue
            try:
                keys[jwk.get("kid")] = jwt.PyJWK(jwk)
            except (jwt.PyJWTError, ValueError, KeyError, TypeError):
                continue  # a key of a kind we cannot use (another curve, ...) does not spoil the rest
        return keys

    def _key(self, header: dict[str, Any]) -> jwt.PyJWK:
        alg = header["alg"]
        kty = ALGORITHMS[alg]
        kid = header.get("kid")
        if kid is not None:
            key = self._keys.get(kid)
            if key is None and not self._keys and self.last_error is not None:
                raise Unauthorized("the issuer's keys could not be fetched (a server-side problem): try again later")
            if key is None:
                raise Unauthorized("the token is signed with a key the issuer does not publish (kid)")
            candidates = [key]
        else:  # no kid: only unambiguous when one published key fits the algorithm
            candidates = [k for k in self._keys.values() if k.key_type == kty]
            if len(candidates) != 1:
                raise Unauthorized("the token names no key (kid)")
        key = candidates[0]
        # PyJWK takes the algorithm from the JWK's alg, or else its key type and curve (RSA: RS256, P-256: ES256).
        if key.key_type != kty or key.algorithm_name != alg:
            raise Unauthorized(f"the token algorithm {alg} does not fit its key")
        return key

    def verify(self, token: str) -> Principal:
        digest = _token_digest(token)
        cache = self._verified  # refresh() may swap in a new one meanwhile
        known = cache.get(digest)
        if known is not None:
            principal, not_before, expires = known
            if not_before - LEEWAY_S <= time.time() <= expires + LEEWAY_S:
                return principal
            cache.pop(digest, None)
        principal, not_before, expires = self._verify(token)
        if len(cache) >= VERIFIED_CACHE_SIZE:
            cache.pop(next(iter(cache)), None)  # the oldest entry
        cache[digest] = (principal, not_before, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, float]:
        header = self._header(token)
        key = self._key(header)
        try:
            claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=self.audience,
                                issuer=self.issuer, leeway=LEEWAY_S,
                                options={"require": ["exp", "iss", "aud"], "verify_iat": False})
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(next(text for kind, text in JWT_ERRORS if isinstance(exc, kind))) from None
        scope = claims.get("scope", "")
        scopes = scope.split() if isinstance(scope, str) else []
        name = claims.get("sub") or claims.get("client_id") or "unknown"
        return Principal(str(name)[:MAX_NAME], frozenset(scopes)), float(claims.get("nbf", 0)), float(claims["exp"])


# -- Both together ---------------------------------------------------------------------------------------

class Authenticator:
    """The configured ways in: JWTs go to the OIDC verifier, other bearer tokens to the token file."""

    def __init__(self, oidc: OidcVerifier | None = None, tokens: TokenFile | None = None) -> None:
        self.oidc = oidc
        self.tokens = tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator | None:
        """None when neither OIDC nor a token file is configured: the server runs open."""
        oidc = None
        if settings.oidc_issuer is not None:
            if settings.oidc_audience is None:
                raise ValueError("an OIDC issuer needs an audience")
            oidc = OidcVerifier(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks)
        tokens = TokenFile(settings.tokens_file) if settings.tokens_file is not None else None
        return cls(oidc, tokens) if oidc or tokens else None

    def _is_jwt(self, token: str) -> bool:
        return token.count(".") == 2

    def needs_refresh(self, token: str) -> bool:
        return self.oidc is not None and self._is_jwt(token) and self.oidc.needs_refresh(token)

    def has_key(self, token: str) -> bool:
        return self.oidc is None or not self._is_jwt(token) or self.oidc.has_key(token)

    def refresh(self) -> None:
        if self.oidc is not None:
            self.oidc.refresh()

    def authenticate(self, token: str) -> Principal:
        if self._is_jwt(token):
            if self.oidc is None:
                raise Unauthorized("this server accepts no JWTs (no OpenID Connect issuer configured)")
            return self.oidc.verify(token)
        if self.tokens is None:
            raise Unauthorized("the token is not a well-formed JWT")
        return self.tokens.verify(token)
