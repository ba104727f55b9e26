"""What authentication costs per request: JWT verification (RS256, ES256) and static-token look-up.

Prints microseconds per request, in-process (``Authenticator.authenticate`` plus ``require``, what the middleware
runs on the event loop for every request), with generated keys and a JWKS file, and a token file of 1 and of
``--tokens`` lines (each line is hashed on every check: constant time). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dicomweb_origin.auth import Authenticator, OidcVerifier, TokenFile, add_token, require


def per_call_us(check: object, repeat: int) -> float:
    assert callable(check)
    check()  # warm
    start = time.perf_counter()
    for _ in range(repeat):
        check()
    return (time.perf_counter() - start) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="checks per figure (default 2000)")
    parser.add_argument("--tokens", type=int, default=100, help="lines of the large token file (default 100)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    issuer, audience = "https://id.example", "dicomweb"
    keys = {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1())}
    with tempfile.TemporaryDirectory() as tmp:
        jwks = Path(tmp) / "jwks.json"
        jwks.write_text(json.dumps({"keys": [
            json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["rsa"].public_key())) | {"kid": "rsa"},
            json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys["ec"].public_key())) | {"kid": "ec"}]}))
        oidc = OidcVerifier(issuer, audience, str(jwks))
        oidc.refresh()
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "sub": "bench", "exp": now + 3600, "scope": "dicomweb.read"}
        auth = Authenticator(oidc=oidc)
        for kid, alg, what in (("rsa", "RS256", "2048-bit RSA"), ("ec", "ES256", "P-256")):
            value = jwt.encode(claims, keys[kid], algorithm=alg, headers={"kid": kid})
            fresh = [jwt.encode(claims | {"jti": str(i)}, keys[kid], algorithm=alg, headers={"kid": kid})
                     for i in range(args.repeat + 1)]

            def check(value: str = value) -> None:
                auth.needs_refresh(value)
                require(auth.authenticate(value), "GET")

            def check_new(tokens: list[str] = fresh) -> None:
                check(tokens.pop())

            print(f"JWT {alg} ({what}), a new token each request: {per_call_us(check_new, args.repeat):.1f} us")
            print(f"JWT {alg} ({what}), the same token again (verified cache): {per_call_us(check, args.repeat):.1f} us")
        for lines in (1, args.tokens):
            path = Path(tmp) / f"tokens-{lines}"
            values = [add_token(path, f"user{i}", ["dicomweb.read"]) for i in range(lines)]
            auth = Authenticator(tokens=TokenFile(path))

            def check_static(value: str = values[-1], auth: Authenticator = auth) -> None:
                require(auth.authenticate(value), "GET")

            print(f"static token, file of {lines} line(s): {per_call_us(check_static, args.repeat):.1f} us")


if __name__ == "__main__":
    main()
