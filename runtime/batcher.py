"""Dynamic batching: requests from many threads, served one batch at a time by one worker thread.

Why: the model is one shared object, and the fast scoring path scores several studies in one call
(`Checker.check_many`) for little more than the cost of one. So every check goes through a single worker:
while it scores one batch, new requests queue up, and the next batch takes all of them (up to a limit).
A lone request waits for nothing; a burst is scored in a few calls instead of one each. Keeping every
model call on one thread also means no two requests ever run the model at once.

That thread should be the only one that ever runs the model, its one-time preparation included (`start`'s
`prepare`): PyTorch's CPU kernels run on an OpenMP team per calling thread, and once two threads' teams exist
with more threads between them than the machine has cores, GNU OpenMP cuts its spin-wait between parallel
regions to almost nothing in the whole process. A check on the bench model took 111.6 ms on this thread after
the model's self-check had run on the main thread, and 81.6 ms with both on this one (2-core EPYC); one large
tensor operation on another thread was enough.

Each request gets its own Future, so one bad request fails alone and never takes its batch down.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from .errors import unexpected

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)
_STOP = object()


class Batcher(Generic[T, R]):
    """Runs `handle(items) -> results` on one worker thread, for batches of up to `max_batch` items.

    `handle` returns one entry per item, in order: a result, or the exception that item raised.
    """

    def __init__(self, handle: Callable[[Sequence[T]], list[R | BaseException]], max_batch: int = 8):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.handle = handle
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, prepare: Callable[[], object] | None = None) -> "Batcher[T, R]":
        """Start the worker thread. `prepare` runs on it before any item is handled (a model's one-time work, on
        the thread that will run the model); this returns once it has, raising what it raised."""
        if self._thread is None:
            ready: Future = Future()
            self._thread = threading.Thread(target=self._work, args=(prepare, ready), name="quadrant-batcher",
                                            daemon=True)
            self._thread.start()
            try:
                ready.result()
            except BaseException:
                self._thread.join()
                self._thread = None
                raise
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def submit(self, item: T) -> "Future[R]":
        """Queue one item; the Future resolves to its result or raises its exception."""
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def waiting(self) -> bool:
        """Whether items are queued behind the batch being handled (a handler may then put off optional work)."""
        return not self._queue.empty()

    def _work(self, prepare: Callable[[], object] | None, ready: Future) -> None:
        try:
            if prepare is not None:
                prepare()
        except BaseException as exc:  # raised by start(), in the thread that started the worker
            ready.set_exception(exc)
            return
        ready.set_result(None)
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future]]) -> None:
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self.handle([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch handler returned {len(results)} results for {len(live)} items")
        except BaseException as exc:  # the worker must survive whatever one batch does
            log.error("batch of %d failed: %s", len(live), unexpected(exc))
            results = [exc] * len(live)
        for (_, future), result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
