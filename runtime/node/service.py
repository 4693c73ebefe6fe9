"""The DICOM node: studies in from a PACS, verdicts back to it as a structured report and secondary capture.

Four kinds of thread, each doing one thing:

- pynetdicom's, receiving: each C-STORE is written to the spool (fsynced) before it is acknowledged, and
  refused with Out of Resources (0xA700) when the spool is full (network.py, spool.py);
- the dispatcher: reads waiting studies from the spool and submits each, with every question, to the batcher;
- the batcher's one worker (quadrant.batcher, as the app uses it): studies that wait together are scored in one
  model call, and no two calls ever run the model at once;
- the finisher: makes each checked study's results, writes the audit rows, stages the results in the outbox
  (which retires the study) and logs one line; the sender: delivers the outbox by C-STORE, retrying while
  the destination is down.

A study that cannot be checked (unreadable, out of scope) gets one log line with its reason and no result;
an unexpected error sets it aside in the spool's failed/ folder. The node keeps serving either way. Log lines
name a study by its file's hash and say its verdicts: never an identifier.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..audit import AuditLog
from ..batcher import Batcher
from ..check import Checker, CheckRequest
from ..errors import InputError, one_line, unexpected
from ..images import Study, load_study_bytes
from ..results import Source, build_results, source_from_bytes
from ..telemetry import telemetry
from ..verdict import Verdict
from .network import Destination, Receiver, Sender
from .spool import Spool

log = logging.getLogger("quadrant.node")

#: how messages name a received study: never by its identifiers
RECEIVED = "received study"
_RETRY = (2.0, 60.0)  # seconds between delivery attempts while the destination is down: first, longest


@dataclass(frozen=True)
class NodeOptions:
    ae_title: str
    host: str
    port: int
    questions: tuple[str, ...]
    store_to: Destination
    spool: Path
    queue_size: int = 64
    batch: int = 8
    send_sc: bool = True
    allowed: tuple[str, ...] = ()  # calling AE titles allowed to send (empty: any)


@dataclass
class _Job:
    path: Path
    study: Study
    source: Source
    started: float


class Node:
    """One loaded checker serving DICOM studies: `start()`, then `stop()`."""

    def __init__(self, checker: Checker, options: NodeOptions, audit: AuditLog | None = None):
        self.checker = checker
        self.options = options
        self.audit = audit
        self.spool = Spool(options.spool, options.queue_size)
        self.batcher: Batcher[_Job, list[Verdict | InputError]] = Batcher(self._check, max_batch=options.batch)
        self.receiver = Receiver(options.ae_title, self.spool, allowed=options.allowed, on_refused=self._refused)
        self.sender = Sender(options.ae_title, options.store_to)
        self._stopping = threading.Event()
        self._checked: queue.Queue = queue.Queue(maxsize=2 * options.batch)  # (job, future), in submission order
        self._delivery = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._in_flight: set[Path] = set()  # studies handed to the model and not yet finished, or left alone
        self._metrics = _node_metrics()

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> "Node":
        """Prepare the model on the batcher's thread, the one that runs it, then start receiving."""
        self.spool.open()
        self.batcher.start(prepare=self.checker.prepare)
        for target in (self._dispatch, self._finish, self._deliver):
            thread = threading.Thread(target=target, name=f"quadrant-node{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.receiver.start(self.options.host, self.options.port)
        return self

    def stop(self) -> None:
        """Stop receiving, finish the studies already handed to the model, stage their results; what is still
        waiting stays in the spool for the next start."""
        self.receiver.stop()
        self._stopping.set()
        with self.spool.arrived:
            self.spool.arrived.notify_all()
        with self._delivery:
            self._delivery.notify_all()
        for thread in self._threads:
            thread.join()
        self.batcher.stop()
        self._deliver_once()  # what the last studies staged, if the destination takes it now

    @property
    def user(self) -> str:
        """Who the audit rows say checked: this node, by its AE title."""
        return f"node {self.options.ae_title}"

    # -- dispatcher: spool -> batcher ----------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._metrics["waiting"].set(self.spool.waiting())
            with self._lock:
                waiting = [p for p in self.spool.incoming() if p not in self._in_flight]
            if not waiting:
                with self.spool.arrived:
                    self.spool.arrived.wait(timeout=1.0)
                continue
            for path in waiting[: self.options.batch]:
                with self._lock:
                    self._in_flight.add(path)  # until finished; for good if it cannot even be read
                try:
                    job = self._read(path)
                except Exception as exc:  # the dispatcher must outlive whatever one study does
                    log.error("a study cannot be read from the spool (%s); it stays there until the next start",
                              unexpected(exc))
                    continue
                if job is None:  # refused or set aside: gone from the spool's incoming
                    with self._lock:
                        self._in_flight.discard(path)
                    continue
                self._checked.put((job, self.batcher.submit(job)))
        self._checked.put(None)  # the finisher stops after what was submitted

    def _read(self, path: Path) -> _Job | None:
        """A spooled study, decoded; None (logged, and retired or set aside) when it cannot be checked."""
        started = time.perf_counter()
        data = path.read_bytes()
        study_hash = hashlib.sha256(data).hexdigest()[:12]
        try:
            study = load_study_bytes(data, RECEIVED)
            source = source_from_bytes(data, RECEIVED, "the node's results")
        except InputError as exc:
            self._refuse(path, exc, study_hash)
            return None
        except Exception as exc:  # a reader's bug on an odd file: set it aside, keep serving
            self._set_aside(path, exc, study_hash)
            return None
        return _Job(path, study, source, started)

    # -- the batcher's side: everything that touches the model ---------------------------------

    def _check(self, jobs: Sequence[_Job]) -> list[list[Verdict | InputError]]:
        """Every question of every study in one scoring call; each study's outcomes in question order."""
        questions = self.options.questions
        requests = [CheckRequest(job.study, q) for job in jobs for q in questions]
        outcomes = self.checker.check_each(requests)
        return [outcomes[i * len(questions):(i + 1) * len(questions)] for i in range(len(jobs))]

    # -- finisher: verdicts -> results, audit, log -----------------------------------------------

    def _finish(self) -> None:
        while True:
            item = self._checked.get()
            if item is None:
                return
            job, future = item
            try:
                self._finish_one(job, future)
            except Exception as exc:  # the finisher must outlive whatever one study does
                log.error("study %s: unexpected %s while finishing", job.study.sha256[:12], unexpected(exc))
            finally:
                with self._lock:
                    self._in_flight.discard(job.path)

    def _finish_one(self, job: _Job, future: Future) -> None:
        """Results made, audit rows written, results staged (which retires the study), one log line. The audit
        comes before staging: a node killed between the two checks the study again at restart (a second audit
        row, the same results), where the other order could lose the row of a check whose results went out."""
        study_hash = job.study.sha256[:12]
        try:
            outcomes = future.result()
            problems = [o for o in outcomes if isinstance(o, InputError)]
            if problems:
                self._refuse(job.path, problems[0], study_hash)
                return
            results = build_results(job.source, outcomes, job.study.image, sr=True, sc=self.options.send_sc)
            files = {"1-sc.dcm": _encoded(results.sc)} if results.sc is not None else {}
            files["2-sr.dcm"] = _encoded(results.sr)
            verdicts = [verdict.to_json() for verdict in outcomes]
            if self.audit is not None:
                for data in verdicts:
                    self.audit.record(data, self.user)
            self.spool.stage(job.path, files)
        except Exception as exc:  # a bug or a model failure: set the study aside, keep serving
            self._set_aside(job.path, exc, study_hash)
            return
        seconds = time.perf_counter() - job.started
        for data in verdicts:
            telemetry().observe(data["model"]["name"], data["quadrant"], seconds)
        self._metrics["studies"].labels(outcome="checked").inc()
        summary = "; ".join(f"{v.quadrant} ({v.answer}) {v.question!r}" for v in outcomes)
        log.info("study %s: %s (%.0f ms)", study_hash, summary, seconds * 1000)
        with self._delivery:
            self._delivery.notify_all()

    def _refuse(self, path: Path, exc: BaseException, study_hash: str) -> None:
        """A study that cannot be checked: one log line with the reason, no result, the study retired."""
        log.warning("study %s: not checked, no result sent: %s", study_hash, one_line(exc, 300))
        self._metrics["studies"].labels(outcome="refused").inc()
        telemetry().failed(exc)
        self.spool.retire(path)

    def _set_aside(self, path: Path, exc: BaseException, study_hash: str) -> None:
        """A study an unexpected error stopped: moved to the spool's failed/ folder for a person, logged."""
        where = self.spool.quarantine(path) or "(already retired)"
        log.error("study %s: not checked, set aside in %s: unexpected %s", study_hash, where, unexpected(exc))
        self._metrics["studies"].labels(outcome="failed").inc()
        telemetry().failed(exc)

    def _refused(self, reason: str) -> None:
        self._metrics["studies"].labels(outcome=reason).inc()

    # -- sender: outbox -> destination -----------------------------------------------------------

    def _deliver(self) -> None:
        pause, failing = _RETRY[0], False
        while not self._stopping.is_set():
            outcome = self._deliver_once(quiet=failing)
            if outcome is True:
                if failing:
                    log.info("results delivered to %s again", self.options.store_to)
                pause, failing = _RETRY[0], False
                continue  # more may have been staged meanwhile
            if outcome is False:
                pause = min(pause * 2, _RETRY[1]) if failing else _RETRY[0]
                failing = True
            with self._delivery:
                self._delivery.wait(timeout=pause if failing else 1.0)

    def _deliver_once(self, quiet: bool = False) -> bool | None:
        """Send the whole outbox: True when it was delivered, False when the destination failed (logged once
        per outage: `quiet` while one lasts), None when there was nothing to send."""
        folders = self.spool.outbox()
        if not folders:
            return None
        try:
            self.sender.send(folders, self._delivered)
            return True
        except Exception as exc:  # SendError, a socket error, or pynetdicom refusing a file: retried later
            self._metrics["send_failures"].inc()
            if not quiet:
                log.error("cannot deliver results (%d studies waiting): %s; retrying", len(folders), one_line(exc))
            return False

    def _delivered(self, folder: Path) -> None:
        self.spool.delivered(folder)
        self._metrics["sent"].inc()


def _encoded(dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _node_metrics() -> dict:
    """The node's own metrics, in the same registry as the check metrics (one scrape shows both)."""
    from ..errors import require

    prometheus = require("prometheus_client", "hospital")
    registry = telemetry().registry
    return {
        "studies": prometheus.Counter("quadrant_node_studies", "Studies by outcome: checked, refused (unreadable "
                                      "or out of scope), failed, queue_full, own_result", ["outcome"],
                                      registry=registry),
        "waiting": prometheus.Gauge("quadrant_node_waiting", "Studies and results waiting in the spool",
                                    registry=registry),
        "sent": prometheus.Counter("quadrant_node_results_delivered", "Studies whose results were delivered",
                                   registry=registry),
        "send_failures": prometheus.Counter("quadrant_node_delivery_failures", "Failed delivery attempts",
                                            registry=registry),
    }
