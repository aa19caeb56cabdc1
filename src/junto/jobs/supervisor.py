"""The node's own job workers: `settings.workers` child processes kept running.

Workers are processes, not threads or tasks of the node, so transcription and rendering never
touch the web and realtime event loop, and a worker that crashes (a bad file, out of memory)
takes nothing else down. Each child runs `python -m junto worker` with the node's settings
passed through the environment (junto.config.worker_environment) and writes its log lines to
the node's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from junto.config import Settings, process_environment, worker_environment

log = logging.getLogger("junto.jobs")

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STOP_GRACE_S = 10.0
# A worker that ran this long before exiting was healthy: restart it without waiting long.
HEALTHY_RUN_S = 60.0


class WorkerPool:
    """Start, watch and stop this node's worker processes."""

    def __init__(self, settings: Settings, *, extra_args: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.extra_args = extra_args
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    def name(self, index: int) -> str:
        return f"{self.settings.node_id}-w{index}"

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    async def start(self) -> None:
        """Start every worker; returns at once (they connect to the database by themselves)."""
        self._stopping = False
        for index in range(self.settings.workers):
            self._keepers.append(asyncio.create_task(self._keep(index), name=self.name(index)))

    def _command(self, index: int) -> list[str]:
        return [sys.executable, "-m", "junto", "worker", "--name", self.name(index),
                "--parent-pid", str(os.getpid()), *self.extra_args]  # fmt: skip

    async def _keep(self, index: int) -> None:
        """Run worker `index`, restarting it with backoff whenever it exits unasked."""
        backoff = RESTART_MIN_S
        env = {**process_environment(), **worker_environment(self.settings)}
        while not self._stopping:
            began = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(*self._command(index), env=env)
            except OSError as exc:
                log.error("could not start worker %s: %s", self.name(index), exc)
            else:
                self._procs[index] = proc
                try:
                    code = await proc.wait()
                except asyncio.CancelledError:
                    # stop() gave up waiting, or this one started while stop() was running.
                    if proc.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        await proc.wait()
                    raise
                if self._stopping:
                    return
                log.warning("worker %s exited with status %s", self.name(index), code)
            if time.monotonic() - began > HEALTHY_RUN_S:
                backoff = RESTART_MIN_S
            log.info("restarting worker %s in %.0f s", self.name(index), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)

    async def stop(self) -> None:
        """SIGTERM every worker (each puts its current job back in the queue), SIGKILL those
        still running after STOP_GRACE_S."""
        self._stopping = True
        running = [p for p in self._procs.values() if p.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if running:
            waiting = asyncio.gather(*(p.wait() for p in running))
            try:
                await asyncio.wait_for(waiting, STOP_GRACE_S)
            except TimeoutError:
                for proc in running:
                    if proc.returncode is None:
                        log.warning("worker pid %s did not stop; killing it", proc.pid)
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                await asyncio.gather(*(p.wait() for p in running))
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()
        self._procs.clear()
