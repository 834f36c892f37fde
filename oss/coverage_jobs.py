"""Coverage bulk jobs: up to 100,000 locations predicted in the background of the API process.

A job is stored with its request (oss.storage.coverage_jobs), computed off the event loop, and its
answer stored with it. A job left running by a stopped process is computed again by the next API
process that starts (`resume`); the answer is written once (the first to finish), so two processes
computing the same job waste time, not correctness.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson

from backhaul.tasks import TaskSet
from oss.clock import new_id
from oss.coverage_answers import LocationsQuery, predict_locations
from oss.coverage_sites import SitesCache
from oss.storage import coverage_jobs
from radio.link_budget import RadioConfiguration

log = logging.getLogger(__name__)


class CoverageJobs:
    """Runs this process's coverage jobs as tasks."""

    def __init__(self, pool: asyncpg.Pool, sites: SitesCache, rc: RadioConfiguration) -> None:
        self.pool, self.sites, self.rc = pool, sites, rc
        self._tasks = TaskSet()

    async def submit(self, group_id: str, query: LocationsQuery) -> str:
        """Store a job for the caller's group and start it; its id."""
        job_id = new_id()
        async with self.pool.acquire() as conn, conn.transaction():
            await coverage_jobs.create(conn, job_id, group_id, query.stored())
        self._start(job_id)
        return job_id

    def _start(self, job_id: str) -> None:
        self._tasks.start(self.run(job_id))

    async def run(self, job_id: str) -> None:
        try:
            async with self.pool.acquire() as conn:
                stored = await coverage_jobs.request_of(conn, job_id)
                if stored is None:
                    return
                sites = await self.sites.get(conn)
            answers = await asyncio.to_thread(predict_locations, sites, LocationsQuery.from_stored(stored), self.rc)
            async with self.pool.acquire() as conn:
                await coverage_jobs.finish(conn, job_id, orjson.dumps(answers))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("coverage job failed", extra={"job": job_id})
            async with self.pool.acquire() as conn:
                await coverage_jobs.finish(conn, job_id, orjson.dumps({"message": "internal error; the job stopped"}),
                                           failed=True)

    async def resume(self) -> None:
        """Compute the jobs a stopped process left running."""
        async with self.pool.acquire() as conn:
            for job_id in await coverage_jobs.running(conn):
                self._start(job_id)

    async def close(self) -> None:
        await self._tasks.cancel()

    async def wait(self) -> None:
        """Until every running job has finished (tests)."""
        await self._tasks.wait()
