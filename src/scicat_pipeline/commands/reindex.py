"""`scicat-pipeline reindex`: rebuild the dataset search index from MongoDB with no downtime.

Reads the indexer's own configuration (`INDEXER_OPENSEARCH__*`, `INDEXER_MONGO__*`), so it runs
wherever the indexer runs; options override it. See `scicat_indexer.reindex` for how searches
keep working and how changes made during the rebuild are caught up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


async def run_reindex(
    *,
    opensearch: str | None,
    mongodb: str | None,
    database: str | None,
    alias: str | None,
    batch_size: int,
    delete_old: bool,
    console: Console,
) -> dict[str, Any]:
    """Rebuild with a progress bar on `console`; returns the report as a dict."""
    from opensearchpy import AsyncOpenSearch

    from scicat_indexer.catalogue import MongoCatalogue
    from scicat_indexer.reindex import rebuild
    from scicat_indexer.settings import Settings
    from scicat_indexer.store import OpenSearchDatasetIndex

    settings = Settings()
    if opensearch:
        settings.opensearch.url = opensearch
    if alias:
        settings.opensearch.alias = alias
    if mongodb:
        settings.mongo.uri = mongodb
    if database:
        settings.mongo.database = database
    catalogue = MongoCatalogue(settings.mongo, appname="scicat-reindex")
    index = OpenSearchDatasetIndex(settings.opensearch)
    client = AsyncOpenSearch(**index.client_options())
    columns = (
        TextColumn("[bold]reindex[/bold] {task.fields[target]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    try:
        async with catalogue.connected():
            total = await catalogue.count_datasets()
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task(
                    "reindex", total=total, target=settings.opensearch.alias, rate=""
                )

                def advance(count: int) -> None:
                    progress.advance(task, count)
                    speed = progress.tasks[task].speed
                    progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

                report = await rebuild(
                    client=client,
                    catalogue=catalogue,
                    alias=settings.opensearch.alias,
                    batch_size=batch_size,
                    delete_old=delete_old,
                    progress=advance,
                )
    finally:
        await client.close()
    return {
        "alias": report.alias,
        "new_index": report.new_index,
        "old_indices": report.old_indices,
        "indexed": report.indexed,
        "caught_up": report.caught_up,
        "removed": report.removed,
        "deleted_old": report.deleted_old,
        "refused": [{"pid": pid, "reason": reason} for pid, reason in report.refused],
        "invalid": [{"pid": pid, "reason": reason} for pid, reason in report.invalid],
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def reindex(
        opensearch: Annotated[
            str | None, typer.Option("--opensearch", help="OpenSearch URL (default: INDEXER_ env).")
        ] = None,
        mongodb: Annotated[
            str | None, typer.Option("--mongodb", help="MongoDB URI (default: INDEXER_ env).")
        ] = None,
        database: Annotated[
            str | None, typer.Option("--database", help="SciCat database name.")
        ] = None,
        alias: Annotated[str | None, typer.Option("--alias", help="The searched alias.")] = None,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, max=10_000, help="Datasets per _bulk.")
        ] = 500,
        delete_old: Annotated[
            bool, typer.Option("--delete-old", help="Delete the previous index after the switch.")
        ] = False,
    ) -> None:
        """Rebuild the search index from MongoDB into <alias>-vN+1, then switch the alias."""
        console = Console(stderr=True)
        report = asyncio.run(
            run_reindex(
                opensearch=opensearch,
                mongodb=mongodb,
                database=database,
                alias=alias,
                batch_size=batch_size,
                delete_old=delete_old,
                console=console,
            )
        )
        typer.echo(json.dumps(report))
        if report["refused"] or report["invalid"]:
            raise typer.Exit(code=1)
