"""One error hierarchy for the whole server; each class carries its HTTP status.

Domain code raises these; one handler in ``web/`` turns them into responses (PS3.18 §8.5,
Table 10.4.3-1). Nothing below ``web/`` knows about HTTP objects.

    DicomWebError (500)
     ├── BadRequest (400)            malformed UID, parameter or header value
     │    └── InvalidFrameList (400) frame numbers not 1-based integers
     ├── NotFound (404)              unknown study / series / instance / frame / bulk data
     ├── NotAcceptable (406)         none of the Acceptable Media Types can be served
     ├── RequestTimeout (408)        STOW: the request body stopped arriving
     ├── Conflict (409)              STOW: well-formed but conflicting (e.g. study UID mismatch)
     ├── Gone (410)                  known to have been deleted
     ├── PayloadTooLarge (413)       request or response too large for this server
     ├── UnsupportedMediaType (415)  STOW: request Content-Type not supported
     ├── DecodeError (406)           stored pixel data cannot be decoded into the acceptable types
     └── NotImplementedFeature (501) SOP class / feature not supported
"""

from __future__ import annotations


class DicomWebError(Exception):
    """Base class: a failure with a short, client-safe message and an HTTP status."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DicomWebError):
    status = 400


class InvalidFrameList(BadRequest):
    pass


class NotFound(DicomWebError):
    status = 404


class NotAcceptable(DicomWebError):
    status = 406


class RequestTimeout(DicomWebError):
    status = 408


class Conflict(DicomWebError):
    status = 409


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
    (``transfer-syntax=*``). Found by tests/test_fuzz.py.
    """

    status = 406


class NotImplementedFeature(DicomWebError):
    status = 501


class IngestError(Exception):
    """An instance was refused at ingest; ``failure_reason`` is the PS3.18 Annex I code."""

    def __init__(self, message: str, failure_reason: int = 0xC000) -> None:
        super().__init__(message)
        self.message = message
        self.failure_reason = failure_reason


class NotDicom(IngestError):
    """The input is no DICOM file at all (no ``DICM`` preamble and no readable dataset with SOP UIDs)."""
