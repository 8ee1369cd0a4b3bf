"""Admin operations: reindex and reconcile as background jobs, their progress, and the bus's queues."""

from __future__ import annotations

from aiohttp import web

from services.search import maintenance
from services.search.deps import JOBS, PROJECTOR
from services.search.domain.errors import bad_parameter
from services.search.jobs import KEEP_DAYS, JobRunning
from shared.problems import Problem, problem_type
from shared.web.query import refuse_unknown
from shared.web.resources import BUS


async def _start(request: web.Request, kind: str, work: maintenance.Work) -> web.Response:
    """Start the job (one maintenance job at a time, across replicas) and answer 202 with where to follow it."""
    try:
        job = await request.app[JOBS].start(kind, work)
    except JobRunning as running:
        other = running.job
        raise Problem(
            409, "Conflict", f"A {other.kind} is already running (job {other.id}); follow it at /v1/admin/jobs/{other.id}.",
            type_=problem_type("job-running"),
        ) from None
    return web.json_response(job.model_dump(mode="json"), status=202, headers={"Location": f"/v1/admin/jobs/{job.id}"})


async def start_reindex(request: web.Request) -> web.Response:
    projector = request.app[PROJECTOR]
    return await _start(request, "reindex", lambda progress: maintenance.reindex(projector, progress=progress))


async def start_reconcile(request: web.Request) -> web.Response:
    refuse_unknown(request.query, {"repair"})
    repair = request.query.get("repair", "true").lower()
    if repair not in ("true", "false"):
        raise bad_parameter(f"repair must be true or false, not {repair!r}.")
    projector = request.app[PROJECTOR]
    return await _start(
        request, "reconcile", lambda progress: maintenance.reconcile(projector, repair=repair == "true", progress=progress)
    )


async def get_job(request: web.Request) -> web.Response:
    job = await request.app[JOBS].get(request.match_info["job_id"])
    if job is None:
        raise Problem(404, "Not Found", f"No job has this id (finished jobs are kept {KEEP_DAYS} days).", type_=problem_type("not-found"))
    return web.json_response(job.model_dump(mode="json"))


async def bus_queues(request: web.Request) -> web.Response:
    """Messages waiting and parked in each subscribing service's queue (as ``corpus bus status`` shows them)."""
    depths = await request.app[BUS].queue_depths()
    return web.json_response({"queues": [{"queue": queue, "waiting": waiting, "parked": parked} for queue, waiting, parked in depths]})
