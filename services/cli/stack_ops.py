"""``corpus bus``: inspect and replay parked (dead-lettered) messages."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from shared.bus import SUBSCRIPTIONS, Bus
from shared.settings import CorpusSettings, settings_or_exit

app = typer.Typer(no_args_is_help=True)
console = Console()


async def _counts(settings: CorpusSettings) -> list[tuple[str, int, int]]:
    bus = Bus(settings)
    await bus.connect()  # declares the topology (idempotent): a fresh broker has none yet
    try:
        return await bus.queue_depths()
    finally:
        await bus.close()


@app.command("status")
def status() -> None:
    """Messages waiting and parked, per service queue."""
    table = Table("queue", "waiting", "parked")  # the words of the API and the admin page
    for queue, waiting, parked in asyncio.run(_counts(settings_or_exit(CorpusSettings, service_name="cli"))):
        table.add_row(queue, str(waiting), f"[red]{parked}[/red]" if parked else "0")
    console.print(table)


@app.command("replay")
def replay(
    service: str = typer.Argument(..., help=f"one of {', '.join(SUBSCRIPTIONS)}"),
    limit: int = typer.Option(1000, help="At most this many messages are moved"),
) -> None:
    """Move the messages parked now for a service back onto its own queue (after fixing the cause), each once.

    Only that service takes them again (not every subscriber of their type); one that fails again is parked again."""
    if service not in SUBSCRIPTIONS:
        raise typer.BadParameter(f"unknown service {service!r}")

    async def run() -> int:
        bus = Bus(settings_or_exit(CorpusSettings, service_name="cli"))
        await bus.connect()
        try:
            return await bus.replay_parked(service, limit)
        finally:
            await bus.close()

    console.print(f"replayed {asyncio.run(run())} message(s) to {service}")
