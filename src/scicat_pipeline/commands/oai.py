"""`scicat-pipeline oai rebuild`: rebuild the OAI-PMH read model from the catalogue in MongoDB.

Settings that shape the records (repository identifier, datacentre symbol, facility) are the
oai-provider's own (`OAI_PROVIDER_*`), so the rebuilt records are the ones the service renders;
`--mongodb` / `--database` override where the catalogue and the read model live.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from scicat_oai_provider.rebuild import Catalogue, RebuildOptions, RebuildReport, rebuild
from scicat_oai_provider.settings import Settings
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_schemas.runtime.settings import MongoSettings

console = Console(stderr=True)


async def run_rebuild(
    mongo: MongoSettings, options: RebuildOptions, *, show_progress: bool = True
) -> RebuildReport:
    """Rebuild with a progress bar on stderr; returns what was (or would be) done."""
    catalogue = Catalogue(mongo)
    store = MongoOaiRecordStore(mongo)
    await store.open()
    try:
        total = await catalogue.count()
        with Progress(
            TextColumn("[bold]OaiRecord[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show_progress,
        ) as progress:
            task = progress.add_task("rebuild", total=total)
            return await rebuild(
                catalogue=catalogue,
                store=store,
                options=options,
                advance=lambda n: progress.advance(task, n),
            )
    finally:
        await store.close()
        await catalogue.close()


def _summary(report: RebuildReport, *, dry_run: bool) -> Table:
    verb = "would be " if dry_run else ""
    table = Table(title="OAI-PMH read model rebuild" + (" (dry run)" if dry_run else ""))
    table.add_column("publications")
    table.add_column("count", justify="right")
    table.add_row("examined", str(report.examined))
    table.add_row(f"{verb}created", str(report.created))
    table.add_row(f"{verb}re-rendered (new datestamp)", str(report.changed))
    table.add_row("unchanged (datestamp kept)", str(report.unchanged))
    table.add_row("refused (see below)", str(len(report.refused)))
    return table


def register(app: typer.Typer) -> None:
    oai = typer.Typer(help="The OAI-PMH provider's read model.", no_args_is_help=True)
    app.add_typer(oai, name="oai")

    @oai.command("rebuild")
    def rebuild_command(
        mongodb: Annotated[
            str | None,
            typer.Option(
                "--mongodb", help="MongoDB URI (default: OAI_PROVIDER_MONGO__URI or localhost)."
            ),
        ] = None,
        database: Annotated[
            str | None,
            typer.Option("--database", help="Database (default: OAI_PROVIDER_MONGO__DATABASE)."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
        ] = False,
    ) -> None:
        """Rebuild `OaiRecord` from PublishedData (registered, amended, withdrawn) and datasets.

        Idempotent: unchanged records keep their datestamp; only changed ones are re-dated, so
        harvesters fetch just those. Exits 1 when a publication cannot be disseminated.
        """
        settings = Settings()
        updates = {k: v for k, v in (("uri", mongodb), ("database", database)) if v is not None}
        mongo = settings.mongo.model_copy(update=updates)
        options = RebuildOptions(
            repository_identifier=settings.repository_identifier,
            datacentre_symbol=settings.datacentre_symbol,
            facility=settings.facility,
            dry_run=dry_run,
        )
        report = asyncio.run(run_rebuild(mongo, options))
        console.print(_summary(report, dry_run=dry_run))
        for doi, reason in report.refused:
            console.print(f"[red]refused[/red] {doi}: {reason}")
        if report.refused:
            raise typer.Exit(code=1)
