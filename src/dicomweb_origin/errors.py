"""One error hierarchy for the whole server; each class carries its HTTP status.

Domain code raises these; one handler in ``web/`` turns them into responses (PS3.18 §8.5,
Table 10.4.3-1). Nothing below ``web/`` knows about HTTP objects; a class that must send a response
header (the authentication errors' ``WWW-Authenticate``) carries it in ``headers``.

    DicomWebError (500)
     ├── BadRequest (400)            malformed UID, parameter or header value
     │    ├── InvalidFrameList (400) frame numbers not 1-based integers
     │    ├── InvalidAuthRequest (400) malformed Authorization: Bearer header (RFC 6750 §3.1 invalid_request)
     │    └── InvalidVolume (400)    frames that do not form a volume (PS3.3 C.11.23.1)
     ├── Unauthorized (401)          no or no valid credentials (RFC 6750 §3: WWW-Authenticate: Bearer)
     ├── Forbidden (403)             valid credentials without the scope the request needs (insufficient_scope)
     ├── CrossOriginRefused (403)    a CORS pre-flight to a server that allows no other origin
     ├── NotFound (404)              unknown study / series / instance / frame / bulk data
     ├── NotAcceptable (406)         none of the Acceptable Media Types can be served
     ├── RequestTimeout (408)        STOW: the request body stopped arriving
     ├── Conflict (409)              STOW: well-formed but conflicting (e.g. study UID mismatch)
     │    └── SeriesInOtherStudy (409) the series is stored under another study
     ├── Gone (410)                  known to have been deleted
     ├── PayloadTooLarge (413)       request or response too large for this server
     ├── UnsupportedMediaType (415)  STOW: request Content-Type not supported
     ├── DecodeError (406)           stored pixel data cannot be decoded into the acceptable types
     └── NotImplementedFeature (501) SOP class / feature not supported
"""

from __future__ import annotations

import re

# What a library's error text may hold that means nothing to a client and tells an attacker about the
# process: object reprs with their addresses (``<_io.BytesIO object at 0x7fe6...>``) and errno prefixes
# (``[Errno 1094995529]``).
_INTERNAL = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>|\[Errno -?\d+\]\s*")


def client_safe(text: str) -> str:
    """``text`` without Python object reprs (and their memory addresses) or errno numbers."""
    return _INTERNAL.sub("", text) if " at 0x" in text or "[Errno" in text else text


class DicomWebError(Exception):
    """Base class: a failure with a short, client-safe message and an HTTP status.

    Messages often quote a codec's error text: what is internal in it is dropped here, once.
    """

    status: int = 500

    def __init__(self, message: str) -> None:
        message = client_safe(message)
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}


class BadRequest(DicomWebError):
    status = 400


class InvalidFrameList(BadRequest):
    pass


def _bearer_challenge(error: str | None, description: str, scope: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of RFC 6750 §3; quoted values keep to its %x20-21 / %x23-5B / %x5D-7E."""
    parts = ['Bearer realm="dicomweb"']
    if error is not None:
        clean = "".join(c for c in description if " " <= c <= "~" and c not in '"\\')
        parts += [f'error="{error}"', f'error_description="{clean}"']
    if scope is not None:
        parts.append(f'scope="{scope}"')
    return ", ".join(parts)


class InvalidAuthRequest(BadRequest):
    """``Authorization: Bearer`` with no token or one that is not a b64token (RFC 6750 §2.1, §3.1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = _bearer_challenge("invalid_request", message)


class Unauthorized(DicomWebError):
    """No credentials (no error attribute, RFC 6750 §3.1) or a token that is not valid (``invalid_token``)."""

    status = 401

    def __init__(self, message: str, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = _bearer_challenge(error, message)


class Forbidden(DicomWebError):
    """A valid token that lacks the scope this request needs (RFC 6750 §3.1 ``insufficient_scope``)."""

    status = 403

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = _bearer_challenge("insufficient_scope", message, scope)


class CrossOriginRefused(DicomWebError):
    """A CORS pre-flight (Fetch §4.8) when no origin is allowed (no ``--cors-origin``): not a Capabilities request."""

    status = 403


class InvalidVolume(BadRequest):
    """The selected frames fail the Volume Input Requirements (PS3.3 C.11.23.1); the message names the reason."""


class NotFound(DicomWebError):
    status = 404


class NotAcceptable(DicomWebError):
    status = 406


class RequestTimeout(DicomWebError):
    status = 408


class Conflict(DicomWebError):
    status = 409


class SeriesInOtherStudy(Conflict):
    """A Series Instance UID already stored under another study: a series belongs to one study (PS3.3 C.7.3)."""

    def __init__(self, series_uid: str, owner: str, study_uid: str) -> None:
        super().__init__(f"series {series_uid} already belongs to study {owner}, not {study_uid}")


class Gone(DicomWebError):
    status = 410


class PayloadTooLarge(DicomWebError):
    status = 413


class UnsupportedMediaType(DicomWebError):
    status = 415


class DecodeError(DicomWebError):
    """Stored data that no decoder accepts: no representation in the acceptable media types exists.

    406 (PS3.18 Table 10.4.3-1; RFC 9110 §15.5.7: no current representation is acceptable), not
    500: the condition is permanent and expected, and the stored bytes remain retrievable
    (``transfer-syntax=*``). Found by tests/web/test_fuzz.py.
    """

    status = 406


class NotImplementedFeature(DicomWebError):
    status = 501


class ServiceUnavailable(DicomWebError):
    """A transient condition (RFC 9110 §15.6.4): the same request may succeed when repeated after Retry-After."""

    status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class IngestError(Exception):
    """An instance was refused at ingest; ``failure_reason`` is the PS3.18 Annex I code."""

    def __init__(self, message: str, failure_reason: int = 0xC000) -> None:
        super().__init__(message)
        self.message = message
        self.failure_reason = failure_reason


class NotDicom(IngestError):
    """The input is no DICOM file at all (no ``DICM`` preamble and no readable dataset with SOP UIDs)."""
