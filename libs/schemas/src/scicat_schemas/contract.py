"""The published event contract: JSON Schema and AsyncAPI 3.0, generated from the models.

The documents are committed under `libs/schemas/contract/` so producers can read them without
running Python; a test fails when they are stale. Regenerate with
`uv run python -m scicat_schemas.contract`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from scicat_schemas import events, topics

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "contract"
CONTRACT_VERSION = "1.0.0"

CHANNELS: dict[str, tuple[str, str, tuple[type[events.CloudEvent], ...]]] = {
    "acquisitionEvents": (
        topics.ACQUISITION_EVENTS,
        "run id",
        (events.RunStarted, events.FileClosed, events.RunStopped),
    ),
    "proposalsEvents": (topics.PROPOSALS_EVENTS, "beamtime id", (events.BeamtimeUpdated,)),
    "catalogueDatasets": (
        topics.CATALOGUE_DATASETS,
        "dataset pid",
        (events.DatasetStored, events.DatasetDeleted),
    ),
    "cataloguePublications": (
        topics.CATALOGUE_PUBLICATIONS,
        "publication id",
        (
            events.PublicationRequested,
            events.PublicationAmendmentRequested,
            events.PublicationWithdrawalRequested,
            events.PublicationRegistered,
            events.PublicationWithdrawn,
        ),
    ),
}


def _event_type(model: type[events.CloudEvent]) -> str:
    return str(model.model_fields["type"].default)


def _all_models() -> list[type[events.CloudEvent]]:
    return [model for _, _, models in CHANNELS.values() for model in models]


def json_schema() -> dict[str, Any]:
    """One JSON Schema: any event on any contract topic (`oneOf`, discriminated by `type`)."""
    _, defs = models_json_schema(
        [(m, "validation") for m in _all_models()], ref_template="#/$defs/{model}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://scicat-pipeline.example.org/schemas/events.schema.json",
        "title": "scicat-pipeline events (CloudEvents 1.0, structured JSON mode)",
        "oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in _all_models()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {_event_type(m): f"#/$defs/{m.__name__}" for m in _all_models()},
        },
        "$defs": defs["$defs"],
    }


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0: one channel per topic, one message per event type, Kafka key described."""
    _, defs = models_json_schema(
        [(m, "validation") for m in _all_models()], ref_template="#/components/schemas/{model}"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel_id, (address, key, models) in CHANNELS.items():
        channel_messages = {}
        for model in models:
            name = _event_type(model)
            message_id = name.replace(".", "_")
            messages[message_id] = {
                "name": name,
                "title": model.__name__,
                "contentType": "application/cloudevents+json",
                "summary": (model.__doc__ or name).strip(),
                "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": key},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
            channel_messages[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        channels[channel_id] = {
            "address": address,
            "description": f"Kafka topic `{address}`; message key: {key}.",
            "messages": channel_messages,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "scicat-pipeline events",
            "version": CONTRACT_VERSION,
            "description": (
                "CloudEvents 1.0 in structured JSON mode on Kafka. `source` + `id` identify an "
                "event; delivering it twice changes nothing. Each consuming service owns a "
                "dead-letter topic `<service>.dlq`."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": defs["$defs"]},
    }


def rendered() -> dict[str, str]:
    """File name → content, exactly as committed."""
    return {
        "events.schema.json": json.dumps(json_schema(), indent=2, sort_keys=True) + "\n",
        "asyncapi.json": json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n",
    }


def write(directory: Path = CONTRACT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in rendered().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
