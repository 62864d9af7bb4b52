"""`scicat-pipeline publish request|amend|withdraw`: ask the doi-minter for a DOI, amend, withdraw.

The metadata comes from a JSON or YAML file in the shape of the contract payload
(`PublicationRequestedData`, or `PublicationDescription` for an amendment; the field table is in
`libs/schemas/contract/events.schema.json`). It is validated before Kafka is contacted: a missing
title or a malformed ORCID iD exits 2 naming the field. The event goes to
`catalogue.publications`, keyed by the publication id; the command prints its id and exits 0 once
Kafka has it. What the doi-minter then does is visible on the landing page, in the doi-minter's
logs, and as `publication.registered` / `publication.withdrawn` on the same topic. Ids derive from
the content, so re-running a command after a timeout sends a duplicate the doi-minter ignores.
`--dry-run` prints the event instead of sending it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from scicat_pipeline.sending import (
    DEFAULT_KAFKA,
    BadInput,
    IdOpt,
    KafkaOpt,
    SourceOpt,
    bad_input,
    problems,
    send_one,
)
from scicat_schemas.events import (
    CloudEvent,
    PublicationDescription,
    PublicationRequestedData,
    encode,
)
from scicat_schemas.producer import (
    EventProducer,
    publication_amendment_requested,
    publication_requested,
    publication_withdrawal_requested,
)

app = typer.Typer(
    name="publish",
    help="Ask the doi-minter to publish, amend or withdraw a DOI.",
    no_args_is_help=True,
)
DEFAULT_SOURCE = "/scicat-pipeline/publish"
Model = TypeVar("Model", bound=BaseModel)

FileArg = Annotated[Path, typer.Argument(help="The metadata, as a JSON or YAML file.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the event (JSON) instead of sending it.")
]


def read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping from `path` (YAML is a superset of JSON, so one parser reads both)."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise BadInput(f"{path} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise BadInput(f"{path} is neither JSON nor YAML: {error}") from None
    if not isinstance(document, dict):
        raise BadInput(f"{path} must hold a mapping of fields, not {type(document).__name__}")
    return document


def validated(model: type[Model], document: dict[str, Any], where: Path) -> Model:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise BadInput(f"{where}: {problems(error)}") from None


def _deliver(event: CloudEvent, *, kafka: str, dry_run: bool) -> None:
    if dry_run:
        typer.echo(json.dumps(json.loads(encode(event)), indent=2))
        return

    async def send(producer: EventProducer) -> CloudEvent:
        return await producer.send(event)

    send_one(kafka, event.source, send)


@app.command("request")
def request(
    file: FileArg,
    draft: Annotated[
        bool, typer.Option("--draft", help="Only reserve the DOI (DataCite draft).")
    ] = False,
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
    dry_run: DryRunOpt = False,
) -> None:
    """Publish datasets (or a proposal) under a new DOI, from a metadata file."""
    with bad_input():
        document = read_document(file)
        if draft:
            document["draft"] = True
        data = validated(PublicationRequestedData, document, file)
    _deliver(
        publication_requested(data, source=source, event_id=event_id), kafka=kafka, dry_run=dry_run
    )


@app.command("amend")
def amend(
    publication_id: Annotated[str, typer.Argument(help="The registered publication.")],
    file: Annotated[Path, typer.Argument(help="Only the fields to change, as JSON or YAML.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
    dry_run: DryRunOpt = False,
) -> None:
    """Change a registered publication's metadata at DataCite and on its landing page."""
    with bad_input():
        changes = validated(PublicationDescription, read_document(file), file)
        if not changes.model_fields_set:
            raise BadInput(f"{file} changes nothing: name at least one field to change")
    event = publication_amendment_requested(
        publication_id, changes, source=source, reason=reason, event_id=event_id
    )
    _deliver(event, kafka=kafka, dry_run=dry_run)


@app.command("withdraw")
def withdraw(
    publication_id: Annotated[str, typer.Argument(help="The publication to withdraw.")],
    reason: Annotated[str, typer.Option(help="Why; shown on the tombstone page.")],
    event_id: IdOpt = None,
    kafka: KafkaOpt = DEFAULT_KAFKA,
    source: SourceOpt = DEFAULT_SOURCE,
    dry_run: DryRunOpt = False,
) -> None:
    """Withdraw a publication: its DOI is hidden at DataCite, its datasets unpublished."""
    with bad_input():
        try:
            event = publication_withdrawal_requested(
                publication_id, reason=reason, source=source, event_id=event_id
            )
        except ValidationError as error:
            raise BadInput(problems(error)) from None
    _deliver(event, kafka=kafka, dry_run=dry_run)


def register(root: typer.Typer) -> None:
    root.add_typer(app)
