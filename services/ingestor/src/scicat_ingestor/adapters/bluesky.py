"""bluesky documents as bluesky-kafka publishes them → run and file events.

The wire form is the msgpack 2-tuple `(name, doc)` with msgpack-numpy's extension for arrays.
`start` → `run.started`, `resource` / `stream_resource` → `file.closed`, `stop` → `run.stopped`
(`exit_status` → status). Descriptors, events, datums and pages carry nothing the catalogue
needs: they yield no event. The run id is the start document's `uid` (globally unique;
`scan_id` is not), the dataset name `<plan_name> <scan_id>` when both are known.

Only the start document says which beamtime and instrument a run belongs to; resources and the
stop name their run by `run_start`. So the caller keeps each run's `BlueskyRun` (from
`run_of_start`) and passes it back for the later documents.

Start documents name the beamtime with `beamtime_id`, `proposal_id`, `proposal` (a string or an
object with `proposal_id`) or `data_session` (NSLS-II `pass-<id>`), the instrument with
`beamline_id`, `beamline` or `instrument`, else the topic prefix `<tla>` of
`<tla>.bluesky.runengine.documents`. Resource documents carry no size and no time: `size` is 0
for the native handler to fill in from the file, `closed_at` is the Kafka record time.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

import msgpack
import msgpack_numpy

from scicat_ingestor.adapters.common import BrokenMessage, NotThisKind, event_id
from scicat_ingestor.adapters.timestamps import from_epoch
from scicat_schemas.events import (
    FileClosed,
    FileClosedData,
    RunStarted,
    RunStartedData,
    RunStopped,
    RunStoppedData,
)

TOPIC_SUFFIX = ".bluesky.runengine.documents"
IGNORED_DOCUMENTS = frozenset({"descriptor", "event", "event_page", "datum", "datum_page"})
FILE_DOCUMENTS = frozenset({"resource", "stream_resource"})
BEAMTIME_KEYS = ("beamtime_id", "proposal_id", "proposal", "data_session")
INSTRUMENT_KEYS = ("beamline_id", "beamline", "instrument")
_NOT_METADATA = frozenset({"uid", "time", "hints", *BEAMTIME_KEYS, *INSTRUMENT_KEYS})

BlueskyEvent = RunStarted | FileClosed | RunStopped


@dataclass(frozen=True)
class BlueskyRun:
    """What the start document told about a run, needed to route its later documents."""

    uid: str
    beamtime_id: str
    instrument: str
    source: str


def decode_document(value: bytes | None) -> tuple[str, dict[str, Any]]:
    """The `(name, doc)` pair of a record value; `NotThisKind` if it is not one."""
    if not value:
        raise NotThisKind("empty record value")
    try:
        decoded = msgpack.unpackb(value, object_hook=msgpack_numpy.decode, strict_map_key=False)
    except Exception as error:
        raise NotThisKind(f"not msgpack: {error!r}") from error
    if (
        not isinstance(decoded, list | tuple)
        or len(decoded) != 2
        or not isinstance(decoded[0], str)
        or not isinstance(decoded[1], dict)
    ):
        raise NotThisKind("msgpack value is not a (name, document) pair")
    return decoded[0], decoded[1]


def run_uid_of(name: str, doc: dict[str, Any]) -> str | None:
    """The start uid a document belongs to; None for documents the catalogue does not need."""
    if name in IGNORED_DOCUMENTS:
        return None
    if name not in FILE_DOCUMENTS and name not in ("start", "stop"):
        raise NotThisKind(f"{name!r} is not a bluesky document name")
    key = "uid" if name == "start" else "run_start"
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise BrokenMessage(f"bluesky {name} document without {key!r}; cannot tell its run")
    return value


def run_of_start(doc: dict[str, Any], *, topic: str) -> BlueskyRun:
    uid = run_uid_of("start", doc)
    assert uid is not None
    beamtime = _beamtime_of(doc)
    if beamtime is None:
        raise BrokenMessage(
            f"bluesky start {uid!r} names no beamtime: set `beamtime_id` (or `proposal_id`, "
            "`proposal`, `data_session`) in the RunEngine metadata (RE.md)"
        )
    instrument = _text(doc, INSTRUMENT_KEYS) or _topic_prefix(topic)
    if instrument is None:
        raise BrokenMessage(
            f"bluesky start {uid!r} names no instrument: set `beamline_id` in RE.md or publish "
            f"on `<beamline>{TOPIC_SUFFIX}`"
        )
    prefix = topic.removesuffix(TOPIC_SUFFIX) or "bluesky"
    return BlueskyRun(
        uid=uid, beamtime_id=beamtime, instrument=instrument, source=f"/bluesky/{prefix}"
    )


def events_of(
    name: str,
    doc: dict[str, Any],
    *,
    topic: str,
    run: BlueskyRun | None,
    received_at: datetime,
) -> list[BlueskyEvent]:
    """The events one document becomes; `run` is the run's context (unused for `start`)."""
    if name in IGNORED_DOCUMENTS:
        return []
    if name == "start":
        return [_started(doc, run_of_start(doc, topic=topic))]
    if name not in FILE_DOCUMENTS and name != "stop":
        raise NotThisKind(f"{name!r} is not a bluesky document name")
    uid = run_uid_of(name, doc)
    if run is None or run.uid != uid:
        raise BrokenMessage(
            f"bluesky {name} document of run {uid!r} arrived, but that run's start document was "
            "never ingested (dead-lettered, or published before the ingestor subscribed); "
            "replay the start document, then this one"
        )
    if name == "stop":
        return [_stopped(doc, run)]
    return [_file_closed(name, doc, run, received_at)]


def _started(doc: dict[str, Any], run: BlueskyRun) -> RunStarted:
    started_at = _time(doc, "start", run.uid)
    plan, scan = doc.get("plan_name"), doc.get("scan_id")
    return RunStarted(
        id=event_id("bluesky", run.uid, "start"),
        source=run.source,
        time=started_at,
        data=RunStartedData(
            run_id=run.uid,
            beamtime_id=run.beamtime_id,
            instrument=run.instrument,
            started_at=started_at,
            dataset_name=f"{plan} {scan}" if plan is not None and scan is not None else None,
            metadata={k: _plain(v) for k, v in doc.items() if k not in _NOT_METADATA},
        ),
    )


def _stopped(doc: dict[str, Any], run: BlueskyRun) -> RunStopped:
    stopped_at = _time(doc, "stop", run.uid)
    status = doc.get("exit_status", "success")
    if status not in ("success", "abort", "fail"):
        raise BrokenMessage(
            f"bluesky stop of run {run.uid!r} has exit_status {status!r}; "
            "expected success, abort or fail"
        )
    num_events = doc.get("num_events")
    return RunStopped(
        id=event_id("bluesky", run.uid, "stop"),
        source=run.source,
        time=stopped_at,
        data=RunStoppedData(
            run_id=run.uid,
            beamtime_id=run.beamtime_id,
            instrument=run.instrument,
            stopped_at=stopped_at,
            status=status,
            reason=doc.get("reason") or None,
            metadata={"num_events": _plain(num_events)} if num_events else {},
        ),
    )


def _file_closed(
    name: str, doc: dict[str, Any], run: BlueskyRun, received_at: datetime
) -> FileClosed:
    uid = doc.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BrokenMessage(f"bluesky {name} of run {run.uid!r} has no uid")
    path = _resource_path(doc) if name == "resource" else _stream_resource_path(doc)
    return FileClosed(
        id=event_id("bluesky", run.uid, uid),
        source=run.source,
        time=received_at,
        subject=path,
        data=FileClosedData(
            run_id=run.uid,
            beamtime_id=run.beamtime_id,
            instrument=run.instrument,
            path=path,
            size=0,
            closed_at=received_at,
        ),
    )


def _resource_path(doc: dict[str, Any]) -> str:
    root, relative = doc.get("root"), doc.get("resource_path")
    if not isinstance(relative, str) or not relative:
        raise BrokenMessage(f"bluesky resource {doc.get('uid')!r} has no resource_path")
    if doc.get("path_semantics", "posix") != "posix":
        raise BrokenMessage(
            f"bluesky resource {doc.get('uid')!r} has {doc.get('path_semantics')!r} path "
            "semantics; only posix paths are catalogued"
        )
    path = posixpath.normpath(posixpath.join(root if isinstance(root, str) else "", relative))
    if not path.startswith("/"):
        raise BrokenMessage(
            f"bluesky resource {doc.get('uid')!r}: root {root!r} + resource_path {relative!r} "
            "is not an absolute path"
        )
    return path


def _stream_resource_path(doc: dict[str, Any]) -> str:
    uri = doc.get("uri")
    parsed = urlparse(uri) if isinstance(uri, str) else None
    if parsed is None or parsed.scheme != "file" or not parsed.path.startswith("/"):
        raise BrokenMessage(
            f"bluesky stream_resource {doc.get('uid')!r} has uri {uri!r}; only file:// URIs "
            "with an absolute path name a file the catalogue can list"
        )
    return posixpath.normpath(unquote(parsed.path))


def _time(doc: dict[str, Any], name: str, uid: str) -> datetime:
    try:
        return from_epoch(doc.get("time"), "s")  # type: ignore[arg-type]
    except ValueError as error:
        raise BrokenMessage(f"bluesky {name} of run {uid!r}: {error}") from error


def _beamtime_of(doc: dict[str, Any]) -> str | None:
    explicit = _text(doc, ("beamtime_id", "proposal_id"))
    if explicit is not None:
        return explicit
    proposal = doc.get("proposal")
    if isinstance(proposal, dict) and _text(proposal, ("proposal_id",)):
        return _text(proposal, ("proposal_id",))
    value = _text(doc, ("proposal", "data_session"))
    return None if value is None else value.removeprefix("pass-")


def _text(doc: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = doc.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _topic_prefix(topic: str) -> str | None:
    if topic.endswith(TOPIC_SUFFIX) and len(topic) > len(TOPIC_SUFFIX):
        return topic.removesuffix(TOPIC_SUFFIX).upper()
    return None


def _plain(value: Any) -> Any:
    """numpy values (msgpack-numpy decodes arrays) as JSON-able Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
