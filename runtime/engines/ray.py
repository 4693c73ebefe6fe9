"""The Ray engine: Ray actors that each load the model once (one per GPU where the cluster has GPUs, else
`workers` CPU actors) and check the batches they are handed; the driver writes each batch as it comes back.

Plain actors rather than Ray Data: the driver must append every finished batch itself, at once, so that a
killed run resumes like a local one, and a handful of long-lived actors with two batches queued each keeps
every worker busy without a dataset pipeline. Actors are owned by the driver: when it dies, so do they.

Workers rebuild the checker from the driver's Settings (ModelSpec, CheckOptions): no model is
pickled. Relative paths (a model directory, a manifest's images) are resolved from the driver's working
directory, which each worker adopts when it exists on that worker's machine (a cluster needs the model and
the images on a shared path).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence

from ..errors import ModelError, OptionError, QuadrantError, one_line, require
from .base import BatchResult, Engine, Job, Settings, check_read
from .reading import StudyReader

#: batches queued per worker: one running, one waiting, so no worker idles while the driver writes
IN_FLIGHT = 2


class _Worker:
    """One Ray actor: one loaded model, checking whatever batches it is given."""

    def __init__(self, settings: Settings, cwd: str):
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.settings = settings
        self.failure: QuadrantError | None = None
        try:
            self.checker = settings.load_checker()
            self.reader = StudyReader()
        except QuadrantError as exc:  # kept for record(): Ray would report a failed __init__ without its cause
            self.failure = exc

    def record(self) -> dict:
        from ..run_folder import run_record

        if self.failure is not None:
            raise self.failure
        return run_record(self.checker, self.settings.spec)

    def check(self, jobs: Sequence[Job]) -> BatchResult:
        return check_read(self.checker, self.reader.read(jobs))


class RayEngine(Engine):
    """Joins the Ray cluster at `address`, or starts a local Ray sized to `workers`."""

    def __init__(self, settings: Settings, workers: int | None = None, address: str | None = None):
        super().__init__(settings)
        if workers is not None and workers < 1:
            raise OptionError(f"--workers must be at least 1, got {workers}")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self._ray = require("ray", "ray")
        self.workers = workers
        self.address = address
        self._actors: list = []
        self._started_ray = False

    def start(self) -> dict:
        ray = self._ray
        gpus = self._connect()
        count = self.workers or int(gpus) or 1
        capacity = int(gpus) or int(ray.cluster_resources().get("CPU", 0))
        if count > capacity:
            unit = "GPUs" if gpus else "CPUs"
            raise OptionError(f"the Ray cluster has {capacity} {unit}, too few for {count} workers; "
                              f"ask for at most --workers {capacity}")
        resources = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}
        worker = ray.remote(**resources)(_Worker)
        self._actors = [worker.remote(self.settings, os.getcwd()) for _ in range(count)]
        records = self._get([actor.record.remote() for actor in self._actors])
        if any(record != records[0] for record in records[1:]):
            raise ModelError("Ray workers loaded the model differently (another dtype or device on some node); "
                             "pin --device and --dtype")
        return records[0]

    def _connect(self) -> float:
        """Join or start Ray; the GPUs the workers may use."""
        ray = self._ray
        if ray.is_initialized():
            return ray.cluster_resources().get("GPU", 0)
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if self.address:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise OptionError(f"cannot join the Ray cluster at {self.address}: {one_line(exc)}") from exc
            self._started_ray = True  # connected: disconnect at the end (the cluster itself stays)
            return ray.cluster_resources().get("GPU", 0)
        import torch

        gpus = torch.cuda.device_count()
        ray.init(num_cpus=self.workers or gpus or 1, num_gpus=gpus, **quiet)
        self._started_ray = True
        return gpus

    def run(self, batches: Iterable[Sequence[Job]]) -> Iterator[BatchResult]:
        ray = self._ray
        queue = iter(batches)
        pending: dict = {}
        for actor in self._actors:
            for _ in range(IN_FLIGHT):
                self._submit(actor, queue, pending)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready)
            self._submit(actor, queue, pending)
            yield self._get(ready)

    @staticmethod
    def _submit(actor, queue: Iterator[Sequence[Job]], pending: dict) -> None:
        batch = next(queue, None)
        if batch is not None:
            pending[actor.check.remote(list(batch))] = actor

    def _get(self, refs):
        """ray.get, with a worker's own Quadrant error raised as itself (one line, exit 2 where it is bad input)."""
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, QuadrantError):
                raise cause from None
            raise ModelError(f"a Ray worker failed: {one_line(cause or exc)}") from None
        except ray.exceptions.RayActorError as exc:
            raise ModelError(f"a Ray worker died: {one_line(exc)}") from None

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
