"""One check: a study and a yes/no question in, a verdict out (preprocess, forward, postprocess).

Preprocess judges the study's scope (`quadrant.scope`: a study that is not a chest radiograph is refused
here, so every surface that checks applies the same rule), writes the phrasings (`quadrant.paraphrases`: a
question that is not a yes/no question in English, with no phrasings of the user's own, is refused there)
and renders every phrasing with the image and the ablated prompt 0; forward hands all of them to a scoring
backend in one call (so a fast backend can share the image prefix, and `check_many` can batch
studies); postprocess orients inverted answers and classifies.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from .ablation import ablated_image, check_ablation, default_ablation
from .answers import Answer, read_generated
from .backends import BACKENDS, Scorer, ScoreRequest
from .bank import Bank
from .errors import InputError, OptionError, UnsupportedModelError
from .evidence import CHUNK, EvidenceOptions, Margins, Stage, evidence_stages, study_sides, warm_copies
from .images import Study
from .kept import kept
from .loading import Loaded
from .paraphrase_model import LocalParaphraser
from .paraphrases import Phrasing, check_k, paraphrase_plan, validate_question
from .reliance import (
    Reliance,
    counterfactual_shifts,
    flip_count,
    majority_reliant,
    margin_spread,
    oriented,
    pairwise_disagreement,
    quadrant,
    shifts,
)
from .scope import DEFAULT_MODALITIES, DEFAULT_SCOPE, StudyScope, check_scope_options, require_scope
from .verdict import CounterfactualReading, PromptReading, TextOnlyReading, Verdict

SCORING_MODES = ("logits", "generate")
RENDERED_KEPT = 4096  # rendered prompts kept per checker (a few hundred characters each)
#: content-free reference images kept per checker, one per study size: a DICOM's is tens of megabytes, and a
#: server sees many sizes over its life (the backend keeps as many of their prefixes)
REFERENCE_IMAGES = 8
#: the question a study is warmed with (`Checker.warm`): its prefix holds the template's opening and the image
ANY_QUESTION = "Is there a pleural effusion?"


@dataclass(frozen=True)
class CheckOptions:
    """How a check is run; every documented default is an option here."""

    ablation: str | None = None  # None: `none` where the family allows it, else `blank`
    reliance: Reliance = Reliance()
    k: int = 5
    scoring: str | None = None  # None: the preset's mode (generate for reasoning models), else logits
    ablate_all: bool = False  # ablate every phrasing and judge reliance by majority
    max_new_tokens: int | None = None  # generate mode's budget; None: the preset's
    bank: Bank | None = None  # the paraphrase bank (None: the built-in one)
    paraphraser: LocalParaphraser | None = None  # a local language model writing candidate paraphrases
    evidence: EvidenceOptions | None = None  # an occlusion map of prompt 0 in every verdict (runtime/evidence.py)
    scope: str = DEFAULT_SCOPE  # "chest-radiograph": refuse other studies; "any": check them, recorded out of scope
    modalities: tuple[str, ...] = DEFAULT_MODALITIES  # the DICOM modalities that count as chest radiographs

    def __post_init__(self):
        if self.evidence is not None and self.scoring == "generate":
            raise OptionError("evidence maps need margins: use them with --scoring logits")
        if self.scoring is not None and self.scoring not in SCORING_MODES:
            raise OptionError(f"unknown scoring mode {self.scoring!r}; choose one of {', '.join(SCORING_MODES)}")
        check_k(self.k)
        _, modalities = check_scope_options(self.scope, self.modalities)
        object.__setattr__(self, "modalities", modalities)
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise OptionError(f"the token budget must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class OtherStudy:
    """Another study of the same labelled dataset, asked prompt 0 as the counterfactual reference
    (`--reference opposite` or `same-label`); chosen by the evaluation (evaluate.reference_partners)."""

    study: Study
    study_id: str
    label: str


@dataclass(frozen=True)
class CheckRequest:
    """One study and one question, as a dataset row or a command line gives them."""

    study: Study
    question: str
    paraphrases: Sequence[Phrasing] | None = None
    label: str | None = None
    study_id: str | None = None
    swap_image: Image.Image | None = None
    extra: dict | None = None  # manifest columns carried into the verdict (e.g. finding)
    other_study: OtherStudy | None = None  # the counterfactual reference's study, with a counterfactual reference


@dataclass
class _Prepared:
    request: CheckRequest
    scope: StudyScope
    warnings: list[str]  # the study's and the phrasings' (a corrected spelling, an out-of-scope study)
    phrasings: list[Phrasing]
    with_image: list[ScoreRequest]
    ablated: list[ScoreRequest]
    ablation: str
    reference: list[ScoreRequest] | None  # None: the text-only pass already shows the reference image
    counterfactual: list[ScoreRequest] | None = None  # the other labelled study's image, when the rule uses one

    @property
    def scored(self) -> list[ScoreRequest]:
        return self.with_image + self.ablated + (self.reference or []) + (self.counterfactual or [])


class Checker:
    """Runs checks on one loaded model through one backend."""

    def __init__(self, loaded: Loaded, backend: str | None = None, options: CheckOptions = CheckOptions(),
                 scorer: Scorer | None = None):
        """`backend`: another backend for the same loaded model (the naive way beside the fast path);
        by default the one the model was loaded for. `scorer`: another checker's scorer on this model and
        backend, shared so that checks under other options (a server's variants) reuse what it keeps, a
        study's prefix among them, and its self-check runs once."""
        self.loaded = loaded
        self.backend = BACKENDS.canonical(backend or loaded.backend)
        self.options = options
        self.ablation = check_ablation(
            options.ablation or default_ablation(loaded.family.accepts_imageless),
            loaded.family.accepts_imageless,
            loaded.family.name,
        )
        self.scoring = options.scoring or loaded.generation.scoring
        self.max_new_tokens = options.max_new_tokens or loaded.generation.max_new_tokens
        if self.scoring == "logits" and loaded.answer_tokens is None:
            raise UnsupportedModelError(loaded.answer_tokens_problem or "no single-token yes/no answers")
        if options.evidence is not None:
            self._require_margins()
        self.scorer: Scorer = scorer or BACKENDS.get(self.backend)(loaded)
        self._references: OrderedDict[tuple[str, int, int], Image.Image] = OrderedDict()
        self._rendered: OrderedDict[tuple[str, bool], str] = OrderedDict()

    def prepare(self) -> Checker:
        """The one-time work before the first check, kept out of every check's timing: the backend's self-check
        (logits mode) and loading a --paraphraser. A server or a benchmark calls it before its first request;
        without it the first check does the same work and pays for it."""
        if self.scoring == "logits":
            self.scorer.prepare()
        if self.options.paraphraser is not None:
            self.options.paraphraser.load()
        return self

    def warm(self, study: Study) -> None:
        """Have the model read a study's image, and its content-free reference's, before any question is asked
        of it (the app does this while the question is typed): where the backend keeps prefixes, the first check
        then runs as a follow-up question does. Nothing in generate mode, or for a study whose check would be
        refused as out of scope."""
        if not self._worth_warming(study):
            return
        rendered = self._render(ANY_QUESTION, True)  # the kept prefix ends at the image, whatever the question
        requests = [ScoreRequest(rendered, study.image, study_key=_picture(study))]
        if self.reference_mode != self.ablation:
            reference, key = self._reference_image(study)
            if key is not None:  # a reference drawn per study (noise) is not kept
                requests.append(ScoreRequest(rendered, reference, key))
        self.scorer.warm(requests)

    def warm_map(self, study: Study, options: EvidenceOptions | None = None, *, first_look: bool = False,
                 still_wanted: Callable[[], bool] | None = None, chunk: int = CHUNK) -> int:
        """Have the model read the filled copies a map of the study shows whatever the question, before any is
        asked (the app does this while the question is typed, with the map on): its first map then costs what the
        next question's map does. `still_wanted` is asked between chunks of `chunk` copies, and the reading stops
        when it says no; nothing where `warm` does nothing, or for a study not named by its pixels. Returns the
        copies read."""
        options = options or self.options.evidence
        picture = _picture(study)
        if options is None or picture is None or not self._worth_warming(study):
            return 0
        return warm_copies(self.scorer.warm, self._render(ANY_QUESTION, True), study.image, options, picture,
                           first_look=first_look, still_wanted=still_wanted, chunk=chunk)

    def _worth_warming(self, study: Study) -> bool:
        """Whether reading a study ahead can serve a check: in logits mode, and for a study in scope."""
        if self.scoring != "logits":
            return False
        try:
            require_scope(study, self.options.scope, self.options.modalities)
        except InputError:
            return False
        return True

    def check(self, study: Study, question: str, paraphrases: Sequence[Phrasing] | None = None,
              label: str | None = None) -> Verdict:
        (verdict,) = self.check_many([CheckRequest(study, question, paraphrases, label)])
        return verdict

    def check_many(self, requests: Sequence[CheckRequest]) -> list[Verdict]:
        """Several studies in one scoring call; timing is the batch's, shared evenly. The first request that
        cannot be checked raises its InputError, before any model work."""
        started = time.perf_counter()
        return self._check_prepared([self._prepare(r) for r in requests], started)

    def check_each(self, requests: Sequence[CheckRequest]) -> list[Verdict | InputError]:
        """Like `check_many`, but a request that cannot be checked (a question that is not yes/no, a bad label
        or paraphrase) gets its InputError in its place: a dataset or a server sets that one aside without
        losing its batch, and every prompt is prepared once (a local paraphraser's generation included)."""
        started = time.perf_counter()
        prepared: list[_Prepared | InputError] = []
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except InputError as exc:
                prepared.append(exc)
        checkable = [p for p in prepared if not isinstance(p, InputError)]
        verdicts = iter(self._check_prepared(checkable, started) if checkable else [])
        return [p if isinstance(p, InputError) else next(verdicts) for p in prepared]

    def _check_prepared(self, prepared: list[_Prepared], started: float) -> list[Verdict]:
        """Score prepared requests in one call and assemble their verdicts (timing counted from `started`)."""
        score_requests = [s for p in prepared for s in p.scored]
        scoring_started = time.perf_counter()
        readings, path = self._score(score_requests)
        scoring_ms = (time.perf_counter() - scoring_started) * 1000
        verdicts = []
        offset = 0
        for p in prepared:
            n_with, n_ablated = len(p.with_image), len(p.ablated)
            answers = readings[offset : offset + n_with]
            ablated = readings[offset + n_with : offset + n_with + n_ablated]
            offset += n_with + n_ablated
            reference = ablated
            if p.reference is not None:
                reference = readings[offset : offset + len(p.reference)]
                offset += len(p.reference)
            counterfactual = readings[offset : offset + len(p.counterfactual or [])]
            offset += len(counterfactual)
            verdicts.append(self._verdict(p, answers, ablated, reference, counterfactual))
        share = len(prepared) or 1
        timing = {"scoring": round(scoring_ms / share, 3), "path": path, "studies_in_batch": len(prepared)}
        verdicts = [_with_timing(v, timing) for v in verdicts]
        if self.options.evidence:
            verdicts = self.draw_evidence([(p.request.study, v) for p, v in zip(prepared, verdicts, strict=True)])
        total = round((time.perf_counter() - started) * 1000 / share, 3)
        return [replace(v, timing_ms={"total": total, **v.timing_ms}) for v in verdicts]

    def draw_evidence(self, checked: Sequence[tuple[Study, Verdict]], options: EvidenceOptions | None = None, *,
                      margins: Margins | None = None, chunk: int = CHUNK) -> list[Verdict]:
        """Each verdict with prompt 0's occlusion map over its study (`options`: the checker's own by default),
        every study's copies scored together; its time goes into `timing_ms["evidence"]`. Apart from the check
        so that a page can show the verdict while its map, many forwards more, is drawn.

        `margins` scores each `chunk` of filled copies (this checker's scorer by default): a server passes its
        model thread's queue, which serves the checks asked meanwhile between the chunks."""
        *_, (verdicts, _) = self.evidence_stages(checked, options, margins=margins, chunk=chunk)
        return verdicts

    def evidence_stages(self, checked: Sequence[tuple[Study, Verdict]], options: EvidenceOptions | None = None, *,
                        margins: Margins | None = None, chunk: int = CHUNK,
                        first_look: bool = False) -> Iterator[tuple[list[Verdict], Stage]]:
        """`draw_evidence` a stage at a time: the verdicts with their maps as far as they are drawn, and the stage
        (`quadrant.evidence.evidence_stages`: whether it is the last, how long its copies took; `first_look` as
        there), for a page that shows the map as it comes."""
        options = options or self.options.evidence
        if options is None:
            raise OptionError("no evidence map options: give them, or check with --evidence")
        self._require_margins()
        started = time.perf_counter()
        for stage in evidence_stages(margins or self.scorer.margins,
                                     [(v.prompts[0].rendered, s.image, v.prompts[0].margin) for s, v in checked],
                                     options, [study_sides(s.facts) for s, _ in checked], chunk=chunk,
                                     first_look=first_look, pictures=[_picture(s) for s, _ in checked]):
            ms = round((time.perf_counter() - started) * 1000 / (len(checked) or 1), 3)
            yield [replace(v, evidence=m, timing_ms={**v.timing_ms, "evidence": ms})
                   for (_, v), m in zip(checked, stage.maps, strict=True)], stage

    def _require_margins(self) -> None:
        """An evidence map is made of margins, which a model answering in generate mode does not give."""
        if self.scoring != "logits":
            raise OptionError(f"evidence maps need margins, and {self.loaded.name} answers in generate mode")

    # -- preprocess ----------------------------------------------------------------------------------

    def _prepare(self, request: CheckRequest) -> _Prepared:
        """Validate the inputs (the study's scope included) and render every prompt, before any model work."""
        question = validate_question(request.question)
        scope = require_scope(request.study, self.options.scope, self.options.modalities)
        _check_label(request.label)
        plan = paraphrase_plan(question, k=self.options.k, user=request.paraphrases, bank=self.options.bank,
                               paraphraser=self.options.paraphraser)
        phrasings = plan.phrasings
        warnings = list(scope.warnings) + list(plan.warnings)
        if not scope.in_scope:
            warnings.insert(0, f"OUT OF SCOPE, research only: {'; '.join(scope.reasons)}")
        image = request.study.image
        with_image = [ScoreRequest(self._render(p.text, True), image, study_key=_picture(request.study))
                      for p in phrasings]
        blank = ablated_image(self.ablation, image, request.study.sha256, request.swap_image)
        ablated_phrasings = phrasings if self.options.ablate_all else phrasings[:1]
        ablated = [ScoreRequest(self._render(p.text, blank is not None), blank) for p in ablated_phrasings]
        reference = None
        if self.reference_mode != self.ablation:
            reference_image, key = self._reference_image(request.study)
            reference = [ScoreRequest(self._render(p.text, True), reference_image, key) for p in ablated_phrasings]
        counterfactual = None
        if self.options.reliance.counterfactual:
            other = _other_study(request, self.options.reliance)
            counterfactual = [ScoreRequest(self._render(p.text, True), other.study.image, study_key=_picture(other.study))
                              for p in ablated_phrasings]
        return _Prepared(request, scope, warnings, phrasings, with_image, ablated, self.ablation, reference, counterfactual)

    @property
    def reference_mode(self) -> str:
        """The content-free image every verdict is also asked with (the `content` rule's reference unless the
        rule compares with another labelled study)."""
        return self.options.reliance.content_free

    def _reference_image(self, study: Study) -> tuple[Image.Image, str | None]:
        """The content-free image for a study, and its reuse key. Blank and white depend only on the study's
        size, so one object per size serves every study and the backend computes its prefix once per model;
        noise is seeded by the study's hash, so it is drawn per study and not reused."""
        mode, image = self.reference_mode, study.image
        if mode == "noise":
            return ablated_image(mode, image, study.sha256), None
        reference = kept(self._references, (mode, image.width, image.height),
                         lambda: ablated_image(mode, image, study.sha256), REFERENCE_IMAGES)
        return reference, f"{mode}:{image.width}x{image.height}"

    def _render(self, text: str, with_image: bool) -> str:
        """The prompt as the model reads it, kept per phrasing: the chat template is a Jinja program, and a
        check renders each phrasing twice or more (with the study, its references, without the image)."""
        loaded = self.loaded

        def render() -> str:
            return loaded.family.render(loaded.processor, loaded.wrap(text), with_image, loaded.chat_template)

        return kept(self._rendered, (text, with_image), render, RENDERED_KEPT)

    # -- forward -------------------------------------------------------------------------------------

    def _score(self, requests: list[ScoreRequest]) -> tuple[list[Answer], str]:
        """Answers in request order, and which computation produced them (recorded in timing_ms)."""
        if self.scoring == "generate":
            texts = self.scorer.generate(requests, max_new_tokens=self.max_new_tokens)
            return [read_generated(t, self.loaded.generation.answer_format) for t in texts], "generate"
        results = self.scorer.margins(requests)
        return [Answer.from_margin(r.margin) for r in results], "+".join(sorted({r.path for r in results}))

    # -- postprocess ---------------------------------------------------------------------------------

    def _verdict(self, p: _Prepared, answers: list[Answer], ablated: list[Answer],
                 reference: list[Answer], counterfactual: list[Answer]) -> Verdict:
        inverted = [ph.inverted for ph in p.phrasings]
        seen = oriented(answers, inverted)
        consistent = flip_count(seen) == 0
        reliance = self.options.reliance
        reliant = self._reliant(reliance, answers, ablated, counterfactual or reference)
        flip_reliant = self._reliant(Reliance("flip"), answers, ablated, reference)
        label = _check_label(p.request.label)
        first = answers[0]
        prompt_shifts = shifts(first, ablated[0], reference[0])
        content_free_reliant, other = None, None
        if counterfactual:  # the content-free image's judgement is kept beside, for reports to compare
            content_free_reliant = self._reliant(replace(reliance, reference=reliance.content_free), answers,
                                                 ablated, reference)
            prompt_shifts.update(counterfactual_shifts(first, counterfactual[0]))
            other = _counterfactual_readings(p, counterfactual, reliance.counterfactual)
        texts_only = _readings(p.phrasings, p.ablated, ablated, p.ablation)
        content_free = _readings(p.phrasings, p.reference or p.ablated, reference, self.reference_mode)
        return Verdict(
            quadrant=quadrant(consistent, reliant),
            consistent=consistent,
            image_reliant=reliant,
            answer=first.answer,
            question=p.phrasings[0].text,
            prompts=[
                PromptReading(
                    text=ph.text, inverted=ph.inverted, rendered=req.rendered, answer=a.answer,
                    p_yes=a.p_yes, margin=a.margin, entropy=a.entropy, generated=a.generated,
                    source=ph.source,
                )
                for ph, req, a in zip(p.phrasings, p.with_image, answers, strict=True)
            ],
            text_only=texts_only[0],
            margin_shift=prompt_shifts["text_only"],
            reliance=reliance.to_json(),
            flip_count=flip_count(seen),
            pairwise_disagreement=pairwise_disagreement(seen),
            margin_spread=margin_spread(seen),
            entropy=first.entropy,
            label=label,
            correct=None if label is None else first.answer == label,
            model=self.loaded.to_json(self.backend),
            image=p.request.study.to_json(),
            timing_ms={},
            scoring=self.scoring,
            flip_reliant=flip_reliant,
            text_only_all=texts_only if self.options.ablate_all else None,
            study_id=p.request.study_id,
            extra=dict(p.request.extra or {}),
            content_free=content_free[0],
            content_free_all=content_free if self.options.ablate_all else None,
            shifts=prompt_shifts,
            scope=p.scope.to_json(self.options.scope, self.options.modalities),
            warnings=list(p.warnings),
            counterfactual=other[0] if other else None,
            counterfactual_all=other if other and self.options.ablate_all else None,
            content_free_reliant=content_free_reliant,
        )

    def _reliant(self, rule: Reliance, answers: list[Answer], ablated: list[Answer], reference: list[Answer]) -> bool:
        """Whether the image moved the answer under `rule`: prompt 0's, or by majority with --ablate-all."""
        if self.options.ablate_all:
            return majority_reliant(rule, answers, ablated, reference)
        return rule.is_reliant(answers[0], ablated[0], reference[0])


def _readings(phrasings: Sequence[Phrasing], requests: Sequence[ScoreRequest], answers: Sequence[Answer],
              ablation: str) -> list[TextOnlyReading]:
    """Ablated readings (image removed or replaced), one per phrasing asked that way: the first
    len(requests) phrasings (prompt 0 alone unless --ablate-all)."""
    return [
        TextOnlyReading(text=ph.text, ablation=ablation, rendered=req.rendered, answer=a.answer, p_yes=a.p_yes,
                        margin=a.margin, generated=a.generated)
        for ph, req, a in zip(phrasings[:len(requests)], requests, answers, strict=True)
    ]


def _counterfactual_readings(p: _Prepared, answers: Sequence[Answer], mode: str) -> list[CounterfactualReading]:
    """The other labelled study's readings, named by its study id, label and image hash."""
    other = p.request.other_study
    return [
        CounterfactualReading(text=reading.text, ablation=mode, rendered=reading.rendered, answer=reading.answer,
                              p_yes=reading.p_yes, margin=reading.margin, generated=reading.generated,
                              image_sha256=other.study.sha256, study_id=other.study_id, label=other.label)
        for reading in _readings(p.phrasings, p.counterfactual, answers, mode)
    ]


def _other_study(request: CheckRequest, reliance: Reliance) -> OtherStudy:
    """The request's counterfactual study, checked: it exists, it is another image, its label is the one the
    reference asks for. Only an evaluation with labels can supply one."""
    mode, other = reliance.reference, request.other_study
    if request.label is None or other is None:
        raise OptionError(f"--reference {mode} compares each study with another study of a labelled dataset: it "
                          "needs quadrant evaluate with a manifest that has labels (use --reference blank for a "
                          "single study)")
    if other.study.sha256 == request.study.sha256:
        raise InputError(f"--reference {mode}: the study to compare with ({other.study_id}) has the same image")
    wanted = reliance.partner_label(_check_label(request.label))
    if _check_label(other.label) != wanted:
        raise InputError(f"--reference {mode}: the study to compare with ({other.study_id}) is labelled "
                         f"{other.label!r}, not {wanted!r}")
    return other


def _check_label(label: str | None) -> str | None:
    if label is None:
        return None
    normalized = str(label).strip().lower()
    if normalized not in ("yes", "no"):
        raise InputError(f"a label must be 'yes' or 'no', got {label!r}")
    return normalized


def _with_timing(verdict: Verdict, timing: dict) -> Verdict:
    return replace(verdict, timing_ms=dict(timing))


def _picture(study: Study) -> str | None:
    """The key a backend may keep a study's prefix under: its pixels' hash, which names exactly the picture
    the model is given (a file's own hash changes with its header); None for a study built without one."""
    return study.pixels_sha256 or None
