"""The verdict: everything one check found, as the schema-v1 JSON the README documents (and read back from it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PromptReading:
    """One phrasing with the image: its text, how it was rendered, and what the model answered."""

    text: str
    inverted: bool
    rendered: str
    answer: str
    p_yes: float | None
    margin: float | None
    entropy: float | None
    generated: str | None = None
    source: str | None = None  # where the phrasing came from: question, bank, rewrite, frame, model, user, file


@dataclass(frozen=True)
class TextOnlyReading:
    """The ablated pass of prompt 0 (or of every phrasing, with `ablate_all`)."""

    text: str
    ablation: str
    rendered: str
    answer: str
    p_yes: float | None
    margin: float | None
    generated: str | None = None
    image_sha256: str | None = None  # the other study's image under `swap` (None for every other ablation)


@dataclass(frozen=True)
class CounterfactualReading(TextOnlyReading):
    """Prompt 0 asked with another labelled study's image (`--reference opposite` or `same-label`, in
    `ablation`): which study, its label, and its image's hash (`image_sha256`)."""

    study_id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Verdict:
    quadrant: str
    consistent: bool
    image_reliant: bool
    answer: str
    question: str
    prompts: list[PromptReading]
    text_only: TextOnlyReading
    margin_shift: float | None
    reliance: dict
    flip_count: int
    pairwise_disagreement: float
    margin_spread: float | None
    entropy: float | None
    label: str | None
    correct: bool | None
    model: dict
    image: dict
    timing_ms: dict
    scoring: str = "logits"
    flip_reliant: bool | None = None  # the paper's rule, kept beside the chosen one for dataset reports
    text_only_all: list[TextOnlyReading] | None = None
    study_id: str | None = None
    extra: dict = field(default_factory=dict)
    #: prompt 0 with a content-free image (the `content` rule's reference), and every phrasing's with ablate-all
    content_free: TextOnlyReading | None = None
    content_free_all: list[TextOnlyReading] | None = None
    #: prompt 0's margin shifts: text_only = presence + content, and relative_content (see reliance.py)
    shifts: dict | None = None
    evidence: dict | None = None  # with --evidence: the occlusion map of prompt 0 (runtime/evidence.py)
    #: the study scope rule's findings (quadrant.scope): in_scope, reasons, verified_from_header, frame, ...
    scope: dict | None = None
    #: one-line notes every surface shows beside the verdict (a spelling corrected, a scope not verified)
    warnings: list[str] | None = None
    #: with a counterfactual reference: prompt 0 (every phrasing's with ablate-all) asked with the other study's
    #: image, and the content-free image's judgement kept beside the counterfactual one
    counterfactual: CounterfactualReading | None = None
    counterfactual_all: list[CounterfactualReading] | None = None
    content_free_reliant: bool | None = None

    @property
    def in_scope(self) -> bool:
        """False only for a study checked under the research override (`scope` "any") that is not a chest
        radiograph: such a verdict is never to be shown as a plain quadrant. Verdicts from before the scope
        rule count as in scope."""
        return bool((self.scope or {}).get("in_scope", True))

    def to_json(self) -> dict:
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        optional = ("text_only_all", "content_free_all", "evidence", "scope", "warnings", "counterfactual",
                    "counterfactual_all", "content_free_reliant")
        for key in optional:  # optional parts: absent, not null
            if data[key] is None:
                del data[key]
        if not data["extra"]:
            del data["extra"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        """Read back what `to_json` wrote (samples.jsonl lines included). Keys that are not a verdict's (a run's
        bookkeeping in samples.jsonl, such as the manifest row's digest) are left out, as a tolerant reader does."""
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in names}
        data["prompts"] = [PromptReading(**p) for p in data["prompts"]]
        data["text_only"] = TextOnlyReading(**data["text_only"])
        for key in ("text_only_all", "content_free_all"):
            if data.get(key) is not None:
                data[key] = [TextOnlyReading(**t) for t in data[key]]
        if data.get("content_free") is not None:
            data["content_free"] = TextOnlyReading(**data["content_free"])
        if data.get("counterfactual") is not None:
            data["counterfactual"] = CounterfactualReading(**data["counterfactual"])
        if data.get("counterfactual_all") is not None:
            data["counterfactual_all"] = [CounterfactualReading(**c) for c in data["counterfactual_all"]]
        return cls(**data)
