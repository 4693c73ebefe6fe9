"""What the app does for one check, with no Gradio in it: read the upload, run the check, keep the record.

The page's Run button and the API endpoint `check` both go through `CheckService.check_upload`, which is also
where /metrics counts checks and errors; an evidence map is drawn after its check (`draw_map`), its filled
copies going to the model a few at a time through the same queue as the checks, so that the page can show the
verdict while the map's many forwards run, a check asked meanwhile waits for a few of them and not for the
whole map, and a map nobody waits for any more stops. Models are loaded once,
before the server starts, and shared by every request; all model work runs on the batcher's one thread
(see batcher.py), so concurrent checks are scored together and never race on the model.

Per-request options (ablation, reliance rule, threshold, reference) make a checker variant on the same loaded
model: built with the public Checker constructor, so its self-check runs once per variant, and kept in a small
cache so that a second request with the same options reuses it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from quadrant.backends import ScoreRequest, ScoreResult
from quadrant.bank import Bank, load_bank
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.errors import InputError, OptionError, ParaphraseError, QuadrantError, StudyError
from quadrant.evidence import EvidenceOptions, Stage
from quadrant.images import MAX_FILE_BYTES, Study, load_study_bytes
from quadrant.kept import kept
from quadrant.paraphrases import Phrasing, paraphrase_set, parse_paraphrase_text, validate_question
from quadrant.telemetry import telemetry
from quadrant.verdict import Verdict

from quadrant.audit import AuditLog
from quadrant.batcher import Batcher

from .uploads import UPLOAD_NAME, refusal

log = logging.getLogger("quadrant.app")

__all__ = ["CheckService", "CheckedUpload", "MapDropped", "UPLOAD_NAME"]
#: checker variants kept per loaded model (options and rendered prompts; the scorer is the base checker's)
_VARIANTS_KEPT = 16
#: uploads kept decoded: the preview decodes a study and every question asked of it would decode it again (a
#: 2,048 x 2,500 DICOM: 150 ms, where a follow-up question's model work is a tenth of that); 15 MB each at that size
_DECODED_KEPT = 4


@dataclass(frozen=True)
class CheckedUpload:
    """An upload as checked: its bytes (for the report's header facts), the study decoded once (for the map's
    picture), the verdict, the model that gave it, and its row in the audit log (None without a log), which
    the map drawn after it names."""

    data: bytes
    study: Study
    verdict: Verdict
    model: str
    audit_id: int | None = None


@dataclass(frozen=True)
class _Job:
    model: str
    options: CheckOptions
    request: CheckRequest


class MapDropped(Exception):
    """A map stopped half drawn because nobody waits for it any more (the page's verdict was cleared)."""


@dataclass(frozen=True)
class _Margins:
    """A chunk of an evidence map's filled copies, scored for `CheckService.draw_map`."""

    model: str
    requests: Sequence[ScoreRequest]


@dataclass(frozen=True)
class _Warm:
    """A study's image read by a model before it is asked anything, and with `evidence` its map's copies
    (`CheckService.warm`)."""

    model: str
    study: Study
    evidence: bool = False


class CheckService:
    """Checks for the app: one or more loaded models by name (the first is the default), and an audit log."""

    def __init__(self, checkers: dict[str, Checker], audit: AuditLog | None, *, upload_dir: str | Path | None = None,
                 max_batch: int = 8, evidence_options: EvidenceOptions = EvidenceOptions(),
                 evidence_by_default: bool = False):
        """`evidence_options`: how a map is drawn when one is asked for (the app's --evidence-grid,
        --evidence-fill and --evidence-mode); `evidence_by_default`: whether a check that does not say draws one (--evidence: the
        API's checks, and the page's toggle as it starts)."""
        if not checkers:
            raise ValueError("the app needs at least one model")
        if any(c.options.evidence is not None for c in checkers.values()):
            raise ValueError("the app's checkers check without maps: the service draws them (draw_map)")
        self.checkers = dict(checkers)
        self.audit = audit
        self.evidence_options = evidence_options
        self.evidence_by_default = evidence_by_default
        self.upload_dir = None if upload_dir is None else Path(upload_dir).resolve()
        self._variants: OrderedDict[tuple[str, CheckOptions], Checker] = OrderedDict()
        self._decoded: OrderedDict[str, Study] = OrderedDict()  # the upload's bytes' sha256 -> its study
        self._decoded_lock = threading.Lock()  # the page's calls come on several threads
        self.batcher: Batcher[_Job | _Margins | _Warm, object] = Batcher(self._handle, max_batch=max_batch)

    @property
    def default_model(self) -> str:
        return next(iter(self.checkers))

    def start(self) -> "CheckService":
        """Start the batcher, whose thread prepares every model before its first check: the one thread that runs
        them (quadrant.batcher says why)."""
        self.batcher.start(prepare=self._prepare)
        return self

    def stop(self) -> None:
        self.batcher.stop()

    def check(self, image: str | os.PathLike | None, question: str, paraphrases: str = "", ablation: str | None = "",
              *, evidence: bool | None = None, **options) -> dict:
        """One check of an uploaded file, with its evidence map when asked (`evidence`; None: the app's
        default), as the verdict JSON (the API's answer). `options` as `check_upload`'s."""
        checked = self.check_upload(image, question, paraphrases, ablation, **options)
        if self.wants_map(evidence):
            checked = self.draw_map(checked)
        return checked.verdict.to_json()

    def wants_map(self, evidence: bool | None) -> bool:
        """Whether a check draws its evidence map: as asked, else as the app was started (--evidence)."""
        return self.evidence_by_default if evidence is None else bool(evidence)

    def check_upload(self, image: str | os.PathLike | None, question: str, paraphrases: str = "",
                     ablation: str | None = "", *, model: str | None = None, rule: str | None = None,
                     threshold: float | None = None, reference: str | None = None,
                     user: str | None = None) -> CheckedUpload:
        """One check of an uploaded file, without its map; the audit row is written before this returns. Counted
        and timed for /metrics: a completed check by model and quadrant, a refusal (an unreadable file included)
        by its kind.

        `paraphrases` is one a line ('!' marks an inverted one), empty for the built-in set; empty `ablation`,
        `rule`, `threshold` or `reference` keep the app's own settings. Raises InputError subclasses on bad
        input."""
        started = time.perf_counter()
        try:
            question = validate_question(question)  # a bad question is named before the file is read
            data = self.read_upload(image)
            checked = self._check_study(data, self.study_of(data), question, paraphrases, ablation, model=model,
                                        rule=rule, threshold=threshold, reference=reference, user=user)
        except Exception as exc:
            telemetry().failed(exc)
            raise
        telemetry().observe(checked.verdict.model["name"], checked.verdict.quadrant, time.perf_counter() - started)
        return checked

    def draw_map(self, checked: CheckedUpload, still_wanted: Callable[[], bool] | None = None) -> CheckedUpload:
        """A check's evidence map (the app's --evidence-grid, --evidence-fill and --evidence-mode), drawn by the
        model that checked it after its verdict was given: a with-image forward per cell, `max_batch` filled
        copies a job on the model's queue, so that checks asked meanwhile are served between them. Before each
        chunk `still_wanted` is asked, and a map nobody waits for any more stops there (MapDropped). The map
        is audited in a row of its own naming the check's (the check's row was written before its verdict was
        shown)."""
        *_, (mapped, _) = self.map_stages(checked, still_wanted)
        return mapped

    def map_stages(self, checked: CheckedUpload, still_wanted: Callable[[], bool] | None = None, *,
                   first_look: bool = False) -> Iterator[tuple[CheckedUpload, Stage]]:
        """`draw_map` a stage at a time, for a page that shows the map as it comes: the check with its map as far
        as it is drawn, and the stage (`quadrant.evidence.evidence_stages`: whether it is the last, how long its
        copies took; `first_look` fills the image in coarse blocks first). Only the finished map is audited."""
        def margins(requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
            if still_wanted is not None and not still_wanted():
                raise MapDropped("the verdict this map was for is no longer shown")
            return self.batcher.submit(_Margins(checked.model, requests)).result()

        for (verdict,), stage in self.checkers[checked.model].evidence_stages(
                [(checked.study, checked.verdict)], self.evidence_options, margins=margins,
                chunk=self.batcher.max_batch, first_look=first_look):
            if stage.finished:
                if self.audit is not None and checked.audit_id is not None:
                    self.audit.record_evidence(checked.audit_id, verdict.evidence)
                log.info("evidence map: %d forwards, study %s", verdict.evidence["forwards"],
                         checked.study.pixels_sha256[:12])
            yield replace(checked, verdict=verdict), stage

    def _check_study(self, data: bytes, study: Study, question: str, paraphrases: str, ablation: str | None, *,
                     model: str | None, rule: str | None, threshold: float | None, reference: str | None,
                     user: str | None) -> CheckedUpload:
        """The check itself, once the upload is read and decoded, and its audit row."""
        try:
            phrasings = parse_paraphrase_text(paraphrases or "")
        except ParaphraseError as exc:
            raise ParaphraseError(f"paraphrases, {exc}") from None
        name = self._model_name(model)
        phrasings = self._as_suggested(question, phrasings, name)
        options = self._options(name, ablation, rule, threshold, reference)
        verdict = self.batcher.submit(_Job(name, options, CheckRequest(study, question, phrasings or None))).result()
        data_json = verdict.to_json()
        audit_id = self.audit.record(data_json, user) if self.audit is not None else None
        log.info("check: %s, answer %s, model %s, study %s, %s studies in the batch", data_json["quadrant"],
                 data_json["answer"], name, data_json["image"]["pixels_sha256"][:12],
                 data_json["timing_ms"].get("studies_in_batch"))
        return CheckedUpload(data, study, verdict, name, audit_id)

    def warm(self, study: Study, model: str | None = None, *, evidence: bool = False) -> Future:
        """Have a model read a newly uploaded study's image now, while the clinician types the question, so that
        its first check costs what a follow-up question does; with `evidence` (the page's map is on), the copies its
        map fills too (a chunk of them at a time), so that its first map costs what the next question's does. It
        runs on the batcher's thread after the checks of its batch, and stops (or does not start) while anything
        is queued, so a flood of uploads never holds a check back by more than a study's or a chunk's reading;
        nobody needs to wait on the Future."""
        return self.batcher.submit(_Warm(self._model_name(model), study, evidence))

    def bank(self, model: str | None = None) -> Bank:
        """The paraphrase bank a model's checks use (`--paraphrase-bank`, else the built-in one)."""
        return self.checkers[self._model_name(model)].options.bank or load_bank()

    def suggestions(self, question: str, model: str | None = None) -> list[Phrasing]:
        """The paraphrases the page offers for a question, to edit before checking: the model's own bank and
        K, from the rules (a `--paraphraser` is not run per keystroke). Empty when none can be written."""
        options = self.checkers[self._model_name(model)].options
        try:
            return paraphrase_set(question, k=options.k, bank=options.bank)[1:]
        except QuadrantError:
            return []

    def _as_suggested(self, question: str, phrasings: list[Phrasing], model: str) -> list[Phrasing] | None:
        """The page sends back the paraphrases it offered, edited or not. Unedited, the model writes its own set
        (None: its bank, and its --paraphraser where it has one); edited, each line still offered keeps the
        source it had (bank, rewrite, frame) and only the lines the user wrote are the user's."""
        offered = {(p.text, p.inverted): p for p in self.suggestions(question, model)}
        if not phrasings or [(p.text, p.inverted) for p in phrasings] == list(offered):
            return None
        return [offered.get((p.text, p.inverted), p) for p in phrasings]

    def load_upload(self, image: str | os.PathLike | None) -> Study:
        """The uploaded file as a study."""
        return self.study_of(self.read_upload(image))

    def study_of(self, data: bytes) -> Study:
        """An upload's bytes decoded, once for the last few uploads: by their hash, so that the same bytes are
        the same study whatever file they came in. A file that cannot be decoded is refused each time."""
        key = hashlib.sha256(data).hexdigest()
        with self._decoded_lock:
            if key in self._decoded:
                self._decoded.move_to_end(key)
                return self._decoded[key]
        study = load_study_bytes(data, UPLOAD_NAME)  # outside the lock: one large upload holds up no other
        with self._decoded_lock:
            return kept(self._decoded, key, lambda: study, _DECODED_KEPT)

    def read_upload(self, image: str | os.PathLike | None) -> bytes:
        """An uploaded file's bytes; only files inside the app's upload folder are read, and an upload that was
        not kept (uploads.py) is refused with the reason noted in its place."""
        if image is None or str(image) == "":
            raise StudyError("no study given: upload a PNG, JPEG or DICOM file")
        path = Path(image).resolve()
        if self.upload_dir is not None and not path.is_relative_to(self.upload_dir):
            raise StudyError("the study must be uploaded to the app; files elsewhere on the server are not read")
        if not path.is_file():
            raise StudyError(f"{UPLOAD_NAME}: the file is missing (was it removed from the app's cache?)")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StudyError(f"{UPLOAD_NAME}: the file is {size / 2**20:.0f} MiB, over the "
                             f"{MAX_FILE_BYTES // 2**20} MiB limit for a study")
        data = path.read_bytes()
        reason = refusal(data)
        if reason is not None:
            raise StudyError(reason)
        return data

    # -- options -------------------------------------------------------------------------------------

    def _model_name(self, model: str | None) -> str:
        if not model:
            return self.default_model
        if model not in self.checkers:
            raise OptionError(f"unknown model {model!r}; this app serves {', '.join(self.checkers)}")
        return model

    def _options(self, name: str, ablation: str | None, rule: str | None, threshold: float | None,
                 reference: str | None = None) -> CheckOptions:
        """The model's own options with this request's choices; validated here, before any model work."""
        base = self.checkers[name].options
        options = base
        if ablation:
            options = replace(options, ablation=str(ablation).strip().lower())
        if rule or reference or threshold not in (None, ""):
            reliance = options.reliance
            reliance = replace(reliance, rule=rule or reliance.rule, reference=reference or reliance.reference,
                               threshold=reliance.threshold if threshold in (None, "") else _number(threshold))
            reliance.require_single_study()
            options = replace(options, reliance=reliance)
        return options

    # -- the batcher's side: everything that touches a model runs here, on one thread ----------------

    def _prepare(self) -> None:
        for checker in self.checkers.values():
            checker.prepare()

    def _handle(self, jobs: Sequence[_Job | _Margins | _Warm]) -> list[object]:
        """Score every check of one checker in one call; a job that cannot be checked gets its error instead.
        Maps' filled copies come after the checks, each model's in one call; warm-ups come last, and are dropped
        while anything else is queued."""
        results: list[object] = [None] * len(jobs)  # a verdict, a chunk's margins, or an error
        groups: dict[int, tuple[Checker, list[int]]] = {}
        copies: dict[str, list[int]] = {}
        warms = [job for job in jobs if isinstance(job, _Warm)]
        for index, job in enumerate(jobs):
            if isinstance(job, _Warm):
                continue
            if isinstance(job, _Margins):
                copies.setdefault(job.model, []).append(index)
                continue
            try:
                checker = self._checker(job.model, job.options)
            except InputError as exc:
                results[index] = exc
                continue
            groups.setdefault(id(checker), (checker, []))[1].append(index)
        for checker, indices in groups.values():
            for i, outcome in zip(indices, checker.check_each([jobs[i].request for i in indices]), strict=True):
                results[i] = outcome
        for name, indices in copies.items():
            try:
                scored = iter(self.checkers[name].scorer.margins([r for i in indices for r in jobs[i].requests]))
                for i in indices:
                    results[i] = [next(scored) for _ in jobs[i].requests]
            except Exception as exc:  # the verdicts stand; each waiting page says its map could not be drawn
                for i in indices:
                    results[i] = exc
        for warm in warms:
            if self.batcher.waiting():  # a check may be queued: a study not read now is read at its check
                break
            try:
                self.checkers[warm.model].warm(warm.study)
                if warm.evidence:
                    read = self.checkers[warm.model].warm_map(warm.study, self.evidence_options, first_look=True,
                                                              still_wanted=lambda: not self.batcher.waiting(),
                                                              chunk=self.batcher.max_batch)
                    log.info("read ahead: %d map copies, study %s", read, warm.study.pixels_sha256[:12])
            except Exception as exc:  # a warm-up is an optimisation: its check will say what is wrong
                log.warning("warming a study failed: %s", type(exc).__name__)
        return results

    def _checker(self, name: str, options: CheckOptions) -> Checker:
        base = self.checkers[name]
        if options == base.options:
            return base
        return kept(self._variants, (name, options),
                    lambda: Checker(base.loaded, base.backend, options, scorer=base.scorer).prepare(), _VARIANTS_KEPT)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"the reliance threshold must be a number, got {value!r}") from exc
