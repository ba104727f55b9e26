"""Authentication and authorisation: OpenID Connect bearer JWTs, static tokens, scopes, TLS (RFC 6750, RFC 7519).

Keys are generated here (RSA 2048 and EC P-256 with cryptography); the issuer's discovery document and JWKS are
served by a real HTTP server on loopback (http.server in a thread) that counts what it is asked; every request
goes through the real application (httpx ASGITransport); static tokens are made with ``dicomweb-origin token add``;
the start-up warning and HTTPS are checked on real server processes.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import io
import ipaddress
import json
import re
import ssl
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dicomweb_origin.app import build_app
from dicomweb_origin.auth import JWKS_MAX_AGE_S, JWKS_MIN_INTERVAL_S, LEEWAY_S, is_loopback, read_tokens
from dicomweb_origin.cli import main, warn_if_open
from dicomweb_origin.settings import Settings
from tests.support.http import MULTIPART_DICOM
from tests.support.reference import prepared_bytes, uids
from tests.support.server import free_port, live_server

pytestmark = pytest.mark.anyio

AUDIENCE = "dicomweb-test"
READ, WRITE = "dicomweb.read", "dicomweb.write"
BOTH = f"{READ} {WRITE}"
CT = uids("CT_small")
SEARCH = "/dicomweb/studies"
RETRIEVE = f"/dicomweb{CT.path}"
ACCEPT_DICOM = {"Accept": f'{MULTIPART_DICOM}; transfer-syntax=*'}


# -- A real issuer on loopback ---------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An OpenID Provider's two documents over HTTP; ``keys`` (kid → private key) is what its JWKS publishes."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.hits: Counter[str] = Counter()
        self.keys_asked = threading.Event()  # set when the JWKS is first asked for
        self.hold_keys: threading.Event | None = None  # when set: the JWKS answer waits for it (a slow issuer)
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                issuer.hits[self.path] += 1
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"}
                elif self.path == "/jwks.json":
                    issuer.keys_asked.set()
                    if issuer.hold_keys is not None:
                        issuer.hold_keys.wait(60)
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.keys.items():
            if isinstance(private, rsa.RSAPrivateKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
            keys.append(jwk | {"kid": kid, "use": "sig"})
        return {"keys": keys}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


KEYS: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {
    "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ec-1": ec.generate_private_key(ec.SECP256R1()),
    "stranger": rsa.generate_private_key(public_exponent=65537, key_size=2048),  # never published
}


def claims(issuer: str, scope: str | None = BOTH, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": issuer, "aud": AUDIENCE, "sub": "dr-house", "iat": now, "nbf": now - 5,
                           "exp": now + 300}
    if scope is not None:
        out["scope"] = scope
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def token(issuer: str, kid: str = "rsa-1", scope: str | None = BOTH, key: str | None = None,
          **changes: Any) -> str:
    """A JWT signed with KEYS[key or kid] (RS256 for RSA keys, ES256 for the EC key), naming ``kid``."""
    private = KEYS[key or kid]
    alg = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(claims(issuer, scope, **changes), private, algorithm=alg, headers={"kid": kid})


def unsigned(issuer: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{_b64(json.dumps(claims(issuer)).encode())}."


def hs256_with_public_key(issuer: str) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public key (which anyone can fetch)."""
    public = KEYS["rsa-1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode()) + "."
                     + _b64(json.dumps(claims(issuer)).encode()))
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    server.keys = {kid: KEYS[kid] for kid in ("rsa-1", "ec-1")}
    yield server
    server.close()


def _app(tmp: Path, **settings: Any) -> Any:
    app = build_app(Settings(data_dir=tmp / "data", **settings))
    app.state.archive.ingest.store(io.BytesIO(prepared_bytes("CT_small")))
    return app


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A token file made with the CLI: reader (read), writer (write), admin (both)."""
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    made = {}
    for name, scopes in (("reader", READ), ("writer", WRITE), ("admin", f"{READ},{WRITE}")):
        made[name] = _token_add(name, scopes, path)
    return path, made


def _token_add(name: str, scopes: str, path: Path) -> str:
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert main(["token", "add", name, "--scopes", scopes, "--tokens", str(path)]) == 0
    finally:
        sys.stdout = stdout
    return out.getvalue().strip()


@pytest.fixture(scope="module")
def app(issuer: Issuer, tokens_file: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """OIDC and static tokens together, CORS for one origin."""
    return _app(tmp_path_factory.mktemp("auth"), oidc_issuer=issuer.url, oidc_audience=AUDIENCE,
                tokens_file=tokens_file[0], cors_origins=("https://viewer.example",))


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def challenge(response: httpx.Response) -> dict[str, str]:
    """The WWW-Authenticate Bearer challenge's attributes (RFC 6750 §3)."""
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def stow_body() -> tuple[bytes, str]:
    boundary = "authtest"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + prepared_bytes("MR_small")
            + f"\r\n--{boundary}--\r\n".encode())
    return body, f"{MULTIPART_DICOM}; boundary={boundary}"


async def stow(c: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    body, content_type = stow_body()
    return await c.post("/dicomweb/studies", content=body,
                        headers=headers | {"Content-Type": content_type, "Accept": "application/dicom+json"})


# -- OIDC tokens -----------------------------------------------------------------------------------------

async def test_valid_rs256_and_es256_tokens_read_search_and_store(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        for kid in ("rsa-1", "ec-1"):
            headers = bearer(token(issuer.url, kid))
            search = await c.get(SEARCH, headers=headers | {"Accept": "application/dicom+json"})
            assert search.status_code == 200, search.text
            assert CT.study in search.text
            retrieved = await c.get(RETRIEVE, headers=headers | ACCEPT_DICOM)
            assert retrieved.status_code == 200 and prepared_bytes("CT_small")[128:] in retrieved.content
            metadata = await c.head(f"/dicomweb/studies/{CT.study}/metadata", headers=headers)
            assert metadata.status_code == 200
            stored = await stow(c, headers)
            assert stored.status_code == 200, stored.text
    # the keys were fetched once (discovery document, then jwks_uri), not per request
    assert issuer.hits["/.well-known/openid-configuration"] == 1 and issuer.hits["/jwks.json"] == 1


async def test_no_token_is_401_with_a_bare_challenge(app: Any) -> None:
    async with client(app) as c:
        for method, path in (("GET", SEARCH), ("GET", RETRIEVE), ("HEAD", RETRIEVE), ("OPTIONS", "/dicomweb"),
                             ("POST", "/dicomweb/studies")):
            response = await c.request(method, path)
            assert response.status_code == 401, (method, path)
            # RFC 6750 §3.1: no error code when the request carries no authentication information
            assert response.headers["www-authenticate"] == 'Bearer realm="dicomweb"'
            assert CT.study not in response.text
        body, content_type = stow_body()
        response = await c.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 401
        assert (await c.get(SEARCH, headers={"Authorization": "Basic ZHI6aG91c2U="})).headers[
            "www-authenticate"] == 'Bearer realm="dicomweb"'  # another scheme counts as none


@pytest.mark.parametrize(("name", "make", "description"), [
    ("expired", lambda i: token(i, exp=int(time.time()) - LEEWAY_S - 60), "expired"),
    ("not yet valid", lambda i: token(i, nbf=int(time.time()) + LEEWAY_S + 60), "not valid yet"),
    ("wrong audience", lambda i: token(i, aud="another-service"), "audience"),
    ("wrong issuer", lambda i: token(i, iss="https://evil.example"), "issuer"),
    ("no exp", lambda i: token(i, exp=None), "required claim"),
    ("unsigned alg none", unsigned, "algorithm"),
    ("HS256 keyed with the public key", hs256_with_public_key, "algorithm"),
    ("wrong key", lambda i: token(i, kid="rsa-1", key="stranger"), "signature"),
    ("RS256 header on the EC key", lambda i: _resign(token(i, kid="ec-1"), "RS256", "stranger"), "fit"),
    ("not a JWT", lambda i: "abc.def.ghi", "well-formed"),
])
async def test_invalid_tokens_are_401_invalid_token(app: Any, issuer: Issuer, name: str, make: Any,
                                                    description: str) -> None:
    async with client(app) as c:
        value = make(issuer.url)
        for response in (await c.get(SEARCH, headers=bearer(value)), await stow(c, bearer(value)),
                         await c.get(RETRIEVE, headers=bearer(value) | ACCEPT_DICOM)):
            assert response.status_code == 401, (name, response.text)
            attributes = challenge(response)
            assert attributes["realm"] == "dicomweb" and attributes["error"] == "invalid_token", name
            assert description in attributes["error_description"], attributes


def _resign(value: str, alg: str, key: str) -> str:
    header = jwt.get_unverified_header(value)
    payload = jwt.decode(value, options={"verify_signature": False})
    return jwt.encode(payload, KEYS[key], algorithm=alg, headers={"kid": header["kid"]})


async def test_leeway_accepts_small_clock_skew(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        skewed = token(issuer.url, exp=int(time.time()) - LEEWAY_S // 2, nbf=int(time.time()) + LEEWAY_S // 2)
        assert (await c.get(SEARCH, headers=bearer(skewed))).status_code == 200


async def test_an_audience_list_naming_this_server_is_accepted(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        value = token(issuer.url, aud=["another-service", AUDIENCE])
        assert (await c.get(SEARCH, headers=bearer(value))).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer tok\\en", "Bearer é"])
async def test_malformed_authorization_header_is_400_invalid_request(app: Any, header: str) -> None:
    async with client(app) as c:
        # bytes on purpose (non-ASCII as a client may send); httpx's stubs take str values in a dict
        response = await c.get(SEARCH, headers={"Authorization": header.encode("utf-8")})  # type: ignore[arg-type]
        # RFC 6750 §3.1: a malformed request is invalid_request and SHOULD be 400
        assert response.status_code == 400, response.text
        assert challenge(response)["error"] == "invalid_request"


async def test_read_scope_reads_but_cannot_store(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        headers = bearer(token(issuer.url, scope=READ))
        assert (await c.get(RETRIEVE, headers=headers | ACCEPT_DICOM)).status_code == 200
        assert (await c.request("OPTIONS", "/dicomweb", headers=headers)).status_code == 200
        refused = await stow(c, headers)
        assert refused.status_code == 403
        assert challenge(refused) == {"realm": "dicomweb", "error": "insufficient_scope", "scope": WRITE,
                                      "error_description": f"POST needs the {WRITE} scope"}
        deleted = await c.delete(f"/dicomweb/studies/{CT.study}", headers=headers)
        assert deleted.status_code == 403 and challenge(deleted)["scope"] == WRITE


async def test_write_scope_stores_but_cannot_read(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        headers = bearer(token(issuer.url, scope=WRITE))
        assert (await stow(c, headers)).status_code == 200
        for method, path in (("GET", SEARCH), ("GET", RETRIEVE), ("HEAD", RETRIEVE), ("OPTIONS", "/dicomweb")):
            refused = await c.request(method, path, headers=headers)
            assert refused.status_code == 403, (method, path)
            assert challenge(refused)["error"] == "insufficient_scope" and challenge(refused)["scope"] == READ
        no_scope = bearer(token(issuer.url, scope=None))
        assert (await c.get(SEARCH, headers=no_scope)).status_code == 403


async def test_the_user_and_scopes_are_left_in_the_scope_state_for_the_access_log(app: Any, issuer: Issuer) -> None:
    seen: list[dict[str, Any]] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        seen.append(dict(scope.get("state", {})))

    async with client(recording) as c, asyncio.timeout(30):
        await c.get(SEARCH, headers=bearer(token(issuer.url, scope=READ)))
        await c.get(SEARCH, headers=bearer(token(issuer.url, scope=WRITE)))  # refused: still who it was
    assert seen[0]["user"] == "dr-house" and seen[0]["scopes"] == [READ]
    assert seen[1]["user"] == "dr-house" and seen[1]["scopes"] == [WRITE]


async def test_cors_preflight_needs_no_token_and_refusals_carry_cors_headers(app: Any, issuer: Issuer) -> None:
    origin = "https://viewer.example"
    async with client(app) as c:
        preflight = await c.request("OPTIONS", SEARCH, headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        refused = await c.get(SEARCH, headers={"Origin": origin})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin
        assert "www-authenticate" in refused.headers["access-control-expose-headers"].lower()
        # an OPTIONS without the pre-flight headers is a Capabilities request: it needs read
        assert (await c.request("OPTIONS", SEARCH, headers={"Origin": origin})).status_code == 401


async def test_a_preflight_shaped_options_needs_a_token_when_cors_is_off(
        tokens_file: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Without --cors-origin no pre-flight can succeed: its shape earns no exemption (nor the 160 KB description)."""
    app = _app(tmp_path, tokens_file=tokens_file[0])
    preflight = {"Origin": "https://viewer.example", "Access-Control-Request-Method": "GET"}
    async with client(app) as c:
        for path in ("/dicomweb", SEARCH):
            refused = await c.request("OPTIONS", path, headers=preflight)
            assert refused.status_code == 401 and len(refused.content) < 200, path
            assert "access-control-allow-origin" not in refused.headers
        reader = {"Authorization": f"Bearer {tokens_file[1]['reader']}"}
        described = await c.request("OPTIONS", SEARCH, headers=reader | {"Origin": "https://viewer.example"})
        assert described.status_code == 200 and "wadl" in described.headers["content-type"]


async def test_health_and_ready_need_no_token(app: Any) -> None:
    async with client(app) as c:
        for path in ("/health", "/ready"):
            assert (await c.get(path)).status_code != 401


async def test_unknown_kid_refreshes_the_jwks_rate_limited_and_follows_rotation(
        tmp_path: Path) -> None:
    issuer = Issuer()
    try:
        issuer.keys = {"rsa-1": KEYS["rsa-1"]}
        app = _app(tmp_path, oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
        verifier = app.state.authenticator.oidc
        now = [1000.0]
        verifier.clock = lambda: now[0]
        async with client(app) as c:
            assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-1")))).status_code == 200
            assert issuer.hits["/jwks.json"] == 1
            # the issuer rotates to rsa-2; tokens naming it arrive before the rate limit allows a fetch
            issuer.keys = {"rsa-1": KEYS["rsa-1"], "rsa-2": KEYS["rsa-2"]}
            now[0] += 1
            for _ in range(20):  # unknown kids cannot hammer the issuer
                refused = await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-2")))
                assert refused.status_code == 401 and "kid" in challenge(refused)["error_description"]
            assert issuer.hits["/jwks.json"] == 1
            now[0] += JWKS_MIN_INTERVAL_S
            assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-2")))).status_code == 200
            assert issuer.hits["/jwks.json"] == 2
            for _ in range(5):  # a known kid within the max age fetches nothing
                assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-1")))).status_code == 200
            assert issuer.hits["/jwks.json"] == 2
            # the issuer withdraws rsa-1: once the key set is older than its max age it is fetched again
            issuer.keys = {"rsa-2": KEYS["rsa-2"]}
            now[0] += JWKS_MAX_AGE_S + 1
            gone = await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-1")))
            assert gone.status_code == 401 and issuer.hits["/jwks.json"] == 3
            # the issuer is down: the keys there are keep working, and the failure is rate-limited too
            issuer.close()
            now[0] += JWKS_MAX_AGE_S + 1
            for _ in range(3):
                assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-2")))).status_code == 200
            assert verifier.fetches == 4 and verifier.last_error is not None
    finally:
        issuer.close()


async def test_a_burst_of_first_requests_waits_for_one_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests that arrive while the first fetch of the keys is under way wait for it: none fails, none fetches.

    The race is made to happen, not hoped for: the issuer holds its key set until the fifteen latecomers have
    all been let in and have passed the point where they decide to wait for the fetch (or not).
    """
    issuer = Issuer()
    try:
        issuer.keys = {"ec-1": KEYS["ec-1"]}
        issuer.hold_keys = threading.Event()
        app = _app(tmp_path, oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
        headers = bearer(token(issuer.url, "ec-1", scope=READ))
        authenticator = app.state.authenticator
        decided, asked = asyncio.Event(), [0]

        def needs_refresh(token: str) -> bool:  # what every request asks first; the rest of its choice is synchronous
            asked[0] += 1
            if asked[0] == 16:
                decided.set()
            return type(authenticator).needs_refresh(authenticator, token)

        monkeypatch.setattr(authenticator, "needs_refresh", needs_refresh)
        async with client(app) as c:
            first = asyncio.ensure_future(c.get(SEARCH, headers=headers))
            assert await asyncio.to_thread(issuer.keys_asked.wait, 60)  # the first one's fetch is under way
            latecomers = [asyncio.ensure_future(c.get(SEARCH, headers=headers)) for _ in range(15)]
            await asyncio.wait_for(decided.wait(), 60)
            issuer.hold_keys.set()
            answers = await asyncio.gather(first, *latecomers)
        assert [a.status_code for a in answers] == [200] * 16
        assert issuer.hits["/jwks.json"] == 1 and issuer.hits["/.well-known/openid-configuration"] == 1
    finally:
        if issuer.hold_keys is not None:
            issuer.hold_keys.set()
        issuer.close()


async def test_an_unreachable_issuer_is_said_to_be_a_server_side_problem(tmp_path: Path) -> None:
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = _app(tmp_path, oidc_issuer=gone, oidc_audience=AUDIENCE)
    async with client(app) as c:
        response = await c.get(SEARCH, headers=bearer(token(gone)))
    assert response.status_code == 401
    assert "could not be fetched" in challenge(response)["error_description"]
    assert app.state.authenticator.oidc.fetches == 1


async def test_a_refused_stow_closes_the_connection_instead_of_reading_the_body(app: Any, issuer: Issuer) -> None:
    async with client(app) as c:
        for headers in ({}, bearer(token(issuer.url, scope=READ))):
            response = await stow(c, headers)
            assert response.status_code in (401, 403) and response.headers["connection"] == "close"
        assert "connection" not in (await c.get(SEARCH)).headers


async def test_jwks_from_a_file_or_a_url_instead_of_discovery(issuer: Issuer, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    discovery_hits = issuer.hits["/.well-known/openid-configuration"]
    jwks_hits = issuer.hits["/jwks.json"]
    for source in (str(jwks), issuer.url + "/jwks.json"):
        app = _app(tmp_path / str(len(source)), oidc_issuer=issuer.url, oidc_audience=AUDIENCE, oidc_jwks=source)
        async with client(app) as c:
            assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "ec-1")))).status_code == 200
            assert (await c.get(SEARCH, headers=bearer(token(issuer.url, "rsa-1")))).status_code == 200
    assert issuer.hits["/.well-known/openid-configuration"] == discovery_hits
    assert issuer.hits["/jwks.json"] == jwks_hits + 1


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(issuer: Issuer, tmp_path: Path) -> None:
    # the same server under another name: its discovery document says issuer=http://127.0.0.1:PORT
    other_name = issuer.url.replace("127.0.0.1", "localhost")
    app = _app(tmp_path, oidc_issuer=other_name, oidc_audience=AUDIENCE)
    async with client(app) as c:
        response = await c.get(SEARCH, headers=bearer(token(other_name)))
    assert response.status_code == 401
    assert "issuer" in app.state.authenticator.oidc.last_error


# -- Static tokens -----------------------------------------------------------------------------------------

def test_token_add_prints_the_token_once_and_stores_only_a_salted_hash(
        tokens_file: tuple[Path, dict[str, str]]) -> None:
    path, made = tokens_file
    text = path.read_text()
    for value in made.values():
        assert len(base64.urlsafe_b64decode(value + "=")) == 32  # 256 random bits
        assert value not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = {t.name: t for t in read_tokens(path)}
    assert entries["admin"].scopes == {READ, WRITE} and entries["reader"].scopes == {READ}
    assert len({t.salt for t in entries.values()}) == 3
    assert all(re.fullmatch(r"sha256\$[0-9a-f]{32}\$[0-9a-f]{64} \w+ [a-z.,]+", line) for line in text.splitlines())


def test_token_add_refuses_duplicates_and_unknown_scopes(tokens_file: tuple[Path, dict[str, str]],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = tokens_file
    before = path.read_text()
    for args in (["reader"], ["newcomer", "--scopes", "dicomweb.admin"], ["two words"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["token", "add", *args, "--tokens", str(path)])
        assert exit_info.value.code == 2
    assert path.read_text() == before
    assert "exists already" in capsys.readouterr().err


async def test_static_tokens_read_and_write_by_scope(app: Any, tokens_file: tuple[Path, dict[str, str]]) -> None:
    _, made = tokens_file
    async with client(app) as c:
        assert (await c.get(RETRIEVE, headers=bearer(made["reader"]) | ACCEPT_DICOM)).status_code == 200
        assert (await stow(c, bearer(made["reader"]))).status_code == 403
        assert (await c.get(SEARCH, headers=bearer(made["writer"]))).status_code == 403
        assert (await stow(c, bearer(made["writer"]))).status_code == 200
        assert (await c.get(SEARCH, headers=bearer(made["admin"]))).status_code == 200
        wrong = await c.get(SEARCH, headers=bearer(made["admin"][:-2] + "xx"))
        assert wrong.status_code == 401 and challenge(wrong)["error"] == "invalid_token"


async def test_tokens_added_and_removed_while_serving_need_no_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    first = _token_add("first", READ, path)
    app = _app(tmp_path, tokens_file=path)
    async with client(app) as c:
        assert (await c.get(SEARCH, headers=bearer(first))).status_code == 200
        second = _token_add("second", READ, path)
        assert (await c.get(SEARCH, headers=bearer(second))).status_code == 200
        # revoked with the CLI: refused on the next request, the other token still works
        assert main(["token", "remove", "first", "--tokens", str(path)]) == 0
        revoked = await c.get(SEARCH, headers=bearer(first))
        assert revoked.status_code == 401 and challenge(revoked)["error"] == "invalid_token"
        assert (await c.get(SEARCH, headers=bearer(second))).status_code == 200
        assert [t.name for t in read_tokens(path)] == ["second"]
        with pytest.raises(SystemExit):
            main(["token", "remove", "first", "--tokens", str(path)])
        # a JWT to a server without an OIDC issuer is refused, not crashed on
        assert (await c.get(SEARCH, headers=bearer("a.b.c"))).status_code == 401


# -- The viewer, the open server, the command line -----------------------------------------------------------

async def test_viewer_files_need_no_token_but_the_dicomweb_root_does(tmp_path: Path,
                                                                     tokens_file: tuple[Path, dict[str, str]]) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><div id=root></div>")
    (dist / "app.bundle.js").write_text("console.log('ohif')")
    app = build_app(Settings(data_dir=tmp_path / "data", tokens_file=tokens_file[0]), viewer_dir=dist)
    async with client(app) as c:
        for path in ("/", "/viewer", "/app.bundle.js", "/app-config.js"):
            assert (await c.get(path)).status_code == 200, path
        assert (await c.get(SEARCH)).status_code == 401
        assert (await c.get("/dicomweb")).status_code == 401
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get(SEARCH, headers=bearer(tokens_file[1]["reader"]))).status_code == 200


async def test_without_authentication_the_server_is_open(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert app.state.authenticator is None
    async with client(app) as c:
        assert (await c.get(SEARCH)).status_code == 200
        assert (await stow(c, {})).status_code == 200


def test_start_up_warnings(caplog: pytest.LogCaptureFixture) -> None:
    def warnings(**settings: Any) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING"):
            warn_if_open(Settings(**settings))
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    assert warnings(host="127.0.0.1") == [] and warnings(host="::1") == []
    assert "anyone who reaches port 8080" in warnings(host="0.0.0.0")[0]
    assert warnings(host="0.0.0.0", tokens_file=Path("tokens")) == []
    assert warnings(host="0.0.0.0", oidc_issuer="https://id.example", oidc_audience="a") == []
    assert "plain HTTP" in warnings(host="0.0.0.0", oidc_issuer="http://id.example", oidc_audience="a")[0]
    assert warnings(oidc_issuer="http://127.0.0.1:9000", oidc_audience="a") == []


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "pacs.example"))


@pytest.mark.parametrize("args", [["--tls-cert", "cert.pem"], ["--tls-key", "key.pem"],
                                  ["--oidc-issuer", "https://id.example"], ["--oidc-audience", "x"],
                                  ["--tokens", "missing-file"]])
def test_incomplete_or_wrong_auth_flags_are_parser_errors(args: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--data", str(tmp_path / "data"), *args])
    assert exit_info.value.code == 2


@pytest.mark.e2e
def test_an_open_server_on_all_interfaces_warns_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with live_server(tmp_path / "data", "--host", "0.0.0.0") as server:
        pass
    log = server.log.read_text()
    assert re.search(r"WARNING.*no authentication configured.*0\.0\.0\.0", log), log


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.e2e
def test_https_server_answers_an_authenticated_request(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tokens = tmp_path / "tokens"
    reader = _token_add("tls-reader", READ, tokens)
    data = tmp_path / "data"
    build_app(Settings(data_dir=data)).state.archive.ingest.store(io.BytesIO(prepared_bytes("CT_small")))
    with live_server(data, "--host", "0.0.0.0", "--tokens", str(tokens), "--tls-cert", str(cert),
                     "--tls-key", str(key), tls=True) as server:
        context = ssl.create_default_context(cafile=str(cert))
        url = f"{server.origin}{SEARCH}"
        with httpx.Client(verify=context, timeout=10) as http:
            refused = http.get(url)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="dicomweb"'
            answer = http.get(url, headers=bearer(reader) | {"Accept": "application/dicom+json"})
            assert answer.status_code == 200 and answer.json()[0]["0020000D"]["Value"] == [CT.study]
            assert answer.http_version == "HTTP/1.1" and answer.url.scheme == "https"
            # the certificate really is checked: a client that does not trust it gets no answer
            with httpx.Client(timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
                untrusting.get(url)
    log = server.log.read_text()
    assert "DICOMweb root: https://" in log and "no authentication configured" not in log
