"""The Store and Delete use cases: parse once, store the blob durably, then index it; unindex, then delete.

An instance appears in the index only after its blob is durable (fsynced, renamed, folder fsynced),
and its blob is deleted only after the index no longer points at it, so a crash leaves at worst an
orphan blob (``dicomweb-origin check --repair`` removes it), never an index row without its bytes.
Every write gets a blob of its own (a random token in its key), so deleting the blob of a deleted or
replaced instance can never delete the bytes a concurrent store of the same content is indexing.

Re-storing an instance is idempotent: the same bytes are "already present"; different bytes under a
stored SOP Instance UID are refused (stored instances are immutable, which keeps ETags and caches
valid) unless the server runs with ``on_conflict="replace"`` (``--on-conflict replace``).

``store_request`` and ``delete_request`` are what the web layer awaits: safe on the event loop, each does its work
in one trip to a worker thread (parsing, hashing and fsync block; 10,000 parts make a large response module).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import anyio.to_thread
import orjson

from .dicom import jsonwriter, reader
from .dicom.display import ICC_PROFILE, display_of_stored, extract_display
from .dicom.xml import json_to_xml
from .errors import BadRequest, IngestError, NotDicom, SeriesInOtherStudy
from .model.appearance import Display
from .model.media import counts_as_lossy
from .model.stored import InstanceRecord, StoredInstance
from .model.uids import uid_error
from .settings import Settings
from .storage.base import BlobStore, Index, metadata_folder

log = logging.getLogger(__name__)

# PS3.18 Annex I failure reasons (Table I.2-2) and our implementation-specific codes.
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000
STUDY_UID_MISMATCH = 0xC409  # ours: StudyInstanceUID differs from the {study} of the request URL
DIFFERENT_CONTENT = 0xC410  # ours: another object is already stored under this SOP Instance UID
OUT_OF_RESOURCES = 0xA700


class Outcome(enum.Enum):
    STORED = "stored"
    PRESENT = "already present"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StoreResult:
    outcome: Outcome
    sop_class_uid: str | None = None
    instance_uid: str | None = None
    record: InstanceRecord | None = None
    reason: str | None = None
    failure_reason: int | None = None
    not_dicom: bool = False  # FAILED because the input is no DICOM file at all


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """What one STOW-RS request gets: the status of Table 10.5.3-1, the response module as bytes, each result."""

    status: int
    body: bytes
    media_type: str
    results: list[StoreResult]


class Ingest:
    """Stores instances into an index and a blob store."""

    def __init__(self, index: Index, blobs: BlobStore, settings: Settings) -> None:
        self.index = index
        self.blobs = blobs
        self.settings = settings

    def store(self, source: BinaryIO, study_uid: str | None = None) -> StoreResult:
        """Store one Part 10 instance read from a seekable stream; never raises for bad input."""
        try:
            return self._store(source, study_uid)
        except IngestError as exc:
            return StoreResult(Outcome.FAILED, reason=one_line(exc.message), failure_reason=exc.failure_reason,
                               not_dicom=isinstance(exc, NotDicom))
        except Exception as exc:  # noqa: BLE001 - one bad instance must not fail the others of a request
            log.exception("cannot store an instance")
            return StoreResult(Outcome.FAILED, reason=one_line(f"processing failure: {exc}"),
                               failure_reason=PROCESSING_FAILURE)

    async def store_request(self, parts: Iterable[tuple[str, BinaryIO]], study_uid: str | None, root: str,
                            xml: bool) -> StoreAnswer:
        """Store every part of a STOW-RS request (PS3.18 §10.5), each given with its media type, and answer."""
        return await anyio.to_thread.run_sync(self._store_request, parts, study_uid, root, xml)

    def _store_request(self, parts: Iterable[tuple[str, BinaryIO]], study_uid: str | None, root: str,
                       xml: bool) -> StoreAnswer:
        results = []
        for media_type, content in parts:
            if media_type != "application/dicom":  # this server stores binary instances only (§10.5)
                results.append(StoreResult(Outcome.FAILED, reason=f"part of type {media_type!r} is not"
                                           " application/dicom", failure_reason=CANNOT_UNDERSTAND))
                continue
            results.append(self.store(content, study_uid))
        if not results:
            raise BadRequest("the multipart payload has no parts")
        status, module = store_response(results, root)
        body, media_type = render_store_response(module, xml)
        return StoreAnswer(status, body, media_type, results)

    async def delete_request(self, study_uid: str, series_uid: str | None = None,
                             instance_uid: str | None = None) -> int | None:
        """``delete`` for one DELETE request, off the event loop (the index and the blob store block)."""
        return await anyio.to_thread.run_sync(self.delete, study_uid, series_uid, instance_uid)

    def fill_missing_display(self, batch: int = 100) -> int:
        """Extract the display of instances stored before ingest did (index schema 4); return how many.

        Reads each blob up to its pixel data once. A blob that cannot be read stays pending for
        the next start; a malformed value only leaves out what it would have given.
        """
        after, filled = "", 0
        while records := self.index.records_missing_display(after, batch):
            for record in records:
                after = record.instance_uid
                starts = [offset for offset, _ in record.frames[0]] if record.frames else []
                try:
                    head = self.blobs.read(record.blob_key, 0, min(starts) if starts else None)
                    display, bulk = display_of_stored(head, self.settings.bulk_threshold)
                except reader.READ_ERRORS as exc:  # KeyError too: a missing blob
                    log.warning("cannot extract the display of %s: %s", record.instance_uid, exc)
                    continue
                known = {b.path for b in record.bulk}
                added = tuple(b for path, b in bulk.items() if path not in known and path.endswith(ICC_PROFILE))
                self.index.set_display(dataclasses.replace(
                    record, display=display or Display(), bulk=record.bulk + added))
                filled += 1
        if filled:
            log.info("extracted the display of %d stored instance(s)", filled)
        return filled

    def _store(self, source: BinaryIO, study_uid: str | None) -> StoreResult:
        with _reading():
            parsed = reader.parse(source, self.settings.bulk_threshold, self.settings.max_sequence_depth)
        try:
            return self._store_parsed(parsed, study_uid)
        finally:
            if parsed.stream is not source:
                parsed.stream.close()  # the re-encoded copy

    def _store_parsed(self, parsed: reader.ParsedFile, study_uid: str | None) -> StoreResult:
        ds = parsed.dataset
        with _reading():  # pydicom converts values when they are first read
            sop_class = str(ds.get("SOPClassUID", "")).strip()
            uids = {  # PS3.5 §6.2: a UI value is padded to even length with a trailing NUL
                "SOP Instance": str(ds.get("SOPInstanceUID", "")).rstrip("\0 "),
                "Study Instance": str(ds.get("StudyInstanceUID", "")).rstrip("\0 "),
                "Series Instance": str(ds.get("SeriesInstanceUID", "")).rstrip("\0 "),
            }
        instance_uid = uids["SOP Instance"]
        for what, uid in uids.items():
            if (error := uid_error(uid, f"{what} UID")) is not None:
                return self._failed(error, CANNOT_UNDERSTAND, sop_class, instance_uid)
        if study_uid is not None and uids["Study Instance"] != study_uid:
            return self._failed(
                f"StudyInstanceUID {uids['Study Instance']} differs from the study {study_uid} of the request",
                STUDY_UID_MISMATCH, sop_class, instance_uid,
            )
        existing = self.index.get(instance_uid)
        replace = False
        if existing is not None:
            digest = _digest(parsed.stream)
            if existing.digest == digest or self.settings.on_conflict != "replace":
                return self._already(existing, digest, sop_class)
            replace = True
        # Everything that can fail on the content is done before a byte is written.
        with _reading():
            unstored = self._record(parsed, uids, sop_class)
            body = jsonwriter.instance_json(
                ds, unstored.path, parsed.bulk, parsed.pixel_path, parsed.pixel_vr,
                unstored.transfer_syntax_uid, self.settings.bulk_threshold,
            )
            encoded = orjson.dumps(body)
        parsed.stream.seek(0)  # reading deferred values for the metadata moved it
        try:
            # A key of its own per write (see the module docstring): never shared with a concurrent store.
            name = f"{uids['Study Instance']}/{uids['Series Instance']}/{instance_uid}.{secrets.token_hex(4)}"
            info = self.blobs.put(parsed.stream, name)
        except OSError as exc:
            log.exception("cannot write blob")
            return self._failed(f"cannot write to storage: {exc.strerror}", OUT_OF_RESOURCES, sop_class, instance_uid)
        record = dataclasses.replace(unstored, blob_key=info.key, size=info.size, digest=info.digest)
        stored = StoredInstance(
            record=record,
            metadata=encoded,
            study_attributes=jsonwriter.level_attributes(body, jsonwriter.STUDY_TAGS),
            series_attributes=jsonwriter.level_attributes(body, jsonwriter.SERIES_TAGS),
            instance_attributes=jsonwriter.level_attributes(body, jsonwriter.INSTANCE_TAGS),
        )
        if replace:
            return self._replace(stored, sop_class)
        try:
            existing = self.index.add(stored)
        except SeriesInOtherStudy as exc:
            self.blobs.delete(info.key)
            return self._failed(str(exc), CANNOT_UNDERSTAND, sop_class, instance_uid)
        except BaseException:
            current = self.index.get(instance_uid)
            if current is None or current.blob_key != info.key:
                self.blobs.delete(info.key)  # no orphan blob behind a failed index write
            raise
        if existing is not None:  # lost a race with a concurrent store of the same instance
            if existing.digest != info.digest and self.settings.on_conflict == "replace":
                return self._replace(stored, sop_class)
            if existing.blob_key != info.key:
                self.blobs.delete(info.key)
            return self._already(existing, info.digest, sop_class)
        return StoreResult(Outcome.STORED, sop_class, instance_uid, record)

    def _replace(self, stored: StoredInstance, sop_class: str) -> StoreResult:
        """Point the index at the new blob, then delete the one it replaced (``on_conflict="replace"``)."""
        record = stored.record
        try:
            old = self.index.replace(stored)
        except ValueError as exc:
            self.blobs.delete(record.blob_key)
            return self._failed(str(exc), CANNOT_UNDERSTAND, sop_class, record.instance_uid)
        except BaseException:
            current = self.index.get(record.instance_uid)
            if current is None or current.blob_key != record.blob_key:
                self.blobs.delete(record.blob_key)
            raise
        if old is not None and old.blob_key != record.blob_key:
            self.blobs.delete(old.blob_key)
        log.info("replaced instance %s (digest %s -> %s)", record.instance_uid,
                 old.digest[:12] if old else "-", record.digest[:12])
        return StoreResult(Outcome.STORED, sop_class, record.instance_uid, record)

    def delete(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> int | None:
        """Delete a study, series or instance; return how many instances went, None if it never existed.

        Index rows first, then blobs: a crash in between leaves orphan blobs, never a dangling row.
        A resource deleted before answers 0 (DELETE is idempotent, RFC 9110 §9.2.2).
        """
        gone = self.index.remove(study_uid, series_uid, instance_uid)
        if gone:
            self._drop_metadata(study_uid, None if series_uid is None and instance_uid is None
                                else gone[0].series_uid)
        for record in gone:
            try:
                self.blobs.delete(record.blob_key)
            except OSError as exc:  # deleted all the same: what is left is an orphan for check --repair
                log.warning("cannot delete blob %s of a deleted instance: %s", record.blob_key, exc)
        if gone:
            log.info("deleted %d instance(s) of %s", len(gone), "/".join(
                u for u in (study_uid, series_uid, instance_uid) if u))
            return len(gone)
        return 0 if self.index.removed(study_uid, series_uid, instance_uid) else None

    def _drop_metadata(self, study_uid: str, series_uid: str | None) -> None:
        """Remove the stored metadata bodies a DELETE made wrong (retrieve/metadata.py): the study's own and the
        series' (every one, for a study). Their names already differ from the next request's; this frees them."""
        folders = ([metadata_folder(study_uid)] if series_uid is None
                   else [metadata_folder(study_uid, "study"), metadata_folder(study_uid, series_uid)])
        try:
            for folder in folders:
                for key in list(self.blobs.keys(folder)):
                    self.blobs.delete(key)
        except OSError as exc:  # left for the next build of the target to remove
            log.warning("cannot remove the metadata bodies of study %s: %s", study_uid, exc)

    def _record(self, parsed: reader.ParsedFile, uids: dict[str, str], sop_class: str) -> InstanceRecord:
        """The record of the instance, but for where its blob will be."""
        ds = parsed.dataset
        lossy = counts_as_lossy(parsed.transfer_syntax_uid, str(ds.get("LossyImageCompression", "")).strip())
        try:
            number = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
        except (TypeError, ValueError):
            number = None
        return InstanceRecord(
            study_uid=uids["Study Instance"],
            series_uid=uids["Series Instance"],
            instance_uid=uids["SOP Instance"],
            sop_class_uid=sop_class,
            transfer_syntax_uid=parsed.transfer_syntax_uid,
            source_transfer_syntax_uid=parsed.source_transfer_syntax_uid,
            instance_number=number,
            number_of_frames=parsed.pixel.number_of_frames if parsed.pixel else 0,
            pixel=parsed.pixel,
            pixel_path=parsed.pixel_path,
            frames=parsed.frames,
            bulk=tuple(parsed.bulk.values()),
            lossy=lossy,
            display=extract_display(ds) if parsed.pixel else None,  # once, never per request
            blob_key="",
            size=0,
            digest="",
        )

    def _already(self, existing: InstanceRecord, digest: str, sop_class: str) -> StoreResult:
        if existing.digest == digest:
            return StoreResult(Outcome.PRESENT, sop_class, existing.instance_uid, existing)
        return self._failed(
            "a different object is already stored under this SOP Instance UID (stored instances are immutable)",
            DIFFERENT_CONTENT, sop_class, existing.instance_uid,
        )

    @staticmethod
    def _failed(reason: str, code: int, sop_class: str | None, instance_uid: str | None) -> StoreResult:
        return StoreResult(Outcome.FAILED, sop_class or None, instance_uid or None, reason=one_line(reason),
                           failure_reason=code)


@contextmanager
def _reading() -> Iterator[None]:
    """Failures while reading an instance's content are the content's: refused as such (0xC000).

    pydicom raises many types on broken input (zlib errors in a Deflate stream, unknown VRs,
    missing tags): those are no failure of this server and need no traceback in its log. Any other
    type is a bug here: it stays a processing failure (0x0110), logged with its traceback.
    """
    try:
        yield
    except reader.READ_ERRORS as exc:
        log.info("cannot read an instance: %s: %s", type(exc).__name__, exc)
        raise IngestError(f"cannot read the file: {exc}") from exc


def one_line(text: str, limit: int = 300) -> str:
    """A reason fit for a report line or an HTTP header: one line of printable ASCII, no traceback."""
    first = text.strip().splitlines()[0] if text.strip() else "unknown reason"
    printable = "".join(c if " " <= c <= "~" else "?" for c in first)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def _digest(stream: BinaryIO) -> str:
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def store_response(results: list[StoreResult], root: str) -> tuple[int, dict[str, object]]:
    """The Store Instances Response Module (PS3.18 Annex I) and the status of Table 10.5.3-1.

    200 when every instance is stored (or already was), 202 when some failed, 409 when none was
    stored although the request was well-formed.
    """
    response: dict[str, object] = {}
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    stored = [r for r in results if r.outcome is not Outcome.FAILED]
    # RetrieveURL (Type 2): the one study the stored instances are in; empty when none was stored
    # (a refused POST /studies/{study} must not point at a study that may not exist).
    studies = {r.record.study_uid for r in stored if r.record is not None}
    if len(studies) == 1:
        response["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{studies.pop()}"]}
    else:
        response["00081190"] = {"vr": "UR"}
    if failed:
        response["00081198"] = {"vr": "SQ", "Value": [_reference(r) | {
            "00081197": {"vr": "US", "Value": [r.failure_reason or PROCESSING_FAILURE]},
        } for r in failed]}
    if stored:
        response["00081199"] = {"vr": "SQ", "Value": [_reference(r) | {
            "00081190": {"vr": "UR", "Value": [f"{root}{r.record.path}"]},
        } for r in stored if r.record is not None]}
    if not failed:
        return 200, response
    return (202 if stored else 409), response


def render_store_response(module: dict[str, object], xml: bool) -> tuple[bytes, str]:
    """The response module as a body and its media type: DICOM JSON (the default) or Native XML (§10.5.4)."""
    if xml:
        return json_to_xml(module), "application/dicom+xml"
    return orjson.dumps(module), "application/dicom+json"


def _reference(result: StoreResult) -> dict[str, object]:
    reference: dict[str, object] = {}
    reference["00081150"] = {"vr": "UI", "Value": [result.sop_class_uid]} if result.sop_class_uid else {"vr": "UI"}
    reference["00081155"] = {"vr": "UI", "Value": [result.instance_uid]} if result.instance_uid else {"vr": "UI"}
    return reference
