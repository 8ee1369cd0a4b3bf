"""Admin operations: reindex and reconcile as background jobs, and their progress."""

from __future__ import annotations

from aiohttp import web

from services.search import maintenance
from services.search.deps import JOBS, PROJECTOR
from services.search.domain.errors import bad_parameter
from services.search.jobs import Job
from shared.problems import Problem, problem_type


def _accepted(job: Job) -> web.Response:
    return web.json_response(job.model_dump(mode="json"), status=202, headers={"Location": f"/v1/admin/jobs/{job.id}"})


def _refuse_if_running(request: web.Request) -> None:
    running = request.app[JOBS].running("reindex")
    if running is not None:
        raise Problem(
            409, "Conflict", f"A reindex is already running (job {running.id}); follow it at /v1/admin/jobs/{running.id}.",
            type_=problem_type("job-running"),
        )


async def start_reindex(request: web.Request) -> web.Response:
    _refuse_if_running(request)
    projector = request.app[PROJECTOR]
    return _accepted(request.app[JOBS].start("reindex", lambda progress: maintenance.reindex(projector, progress=progress)))


async def start_reconcile(request: web.Request) -> web.Response:
    unknown = set(request.query) - {"repair"}
    if unknown:
        raise bad_parameter(f"Unknown parameter(s) {', '.join(sorted(unknown))}; the only parameter is repair.", "unknown-parameter")
    repair = request.query.get("repair", "true").lower()
    if repair not in ("true", "false"):
        raise bad_parameter(f"repair must be true or false, not {repair!r}.")
    _refuse_if_running(request)
    projector = request.app[PROJECTOR]
    return _accepted(
        request.app[JOBS].start(
            "reconcile", lambda progress: maintenance.reconcile(projector, repair=repair == "true", progress=progress)
        )
    )


async def get_job(request: web.Request) -> web.Response:
    job = request.app[JOBS].jobs.get(request.match_info["job_id"])
    if job is None:
        raise Problem(404, "Not Found", "No such job in this process (jobs are kept in memory, the last 50).", type_=problem_type("not-found"))
    return web.json_response(job.model_dump(mode="json"))
