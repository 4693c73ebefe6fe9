"""Study scope: whether a study is what Quadrant judges, a projection radiograph of the chest.

A verdict says whether a model's answer about a chest radiograph can be trusted. On a CT slice, a head MR, a
dose grid or a colour photograph the same numbers come out, and they mean nothing. So every check applies
one rule (`require_scope`, called by the Checker's preparation step: `quadrant check`, `evaluate`, the app,
its API and the DICOM node alike):

- DICOM, judged from its header: Modality in the configured list (CR and DX by default); BodyPartExamined,
  when present, names the chest (`CHEST_WORDS`); not an image FOR PROCESSING (a DX detector's raw data, sent
  beside the processed FOR PRESENTATION image that radiologists and models see); one frame, or the frame the
  caller chose (`--frame N`); MONOCHROME1 or MONOCHROME2; at least MIN_SIDE pixels on its short side.
- PNG, JPEG and other rasters have no header: in scope unless colour (real chroma, not grayscale saved as
  RGB) or tiny, and the verdict says the scope could not be verified from a header.
- Either kind, blank (`Study.spread` under MIN_SPREAD): a flat gray, a black or white page, a film windowed
  into white. The model sees nothing there, yet the comparison with a mid-gray reference can still find the
  answer moved, and a blank page would get a green Ideal.

Why MIN_SIDE = 64: it is the input size of the bundled demo model (the smallest any model Quadrant ships
works at), and at 64 pixels a 35-43 cm detector is still 6-7 mm a pixel, so the heart, the diaphragm, an
effusion or a consolidation span many pixels. Below it are thumbnails, icons and dose grids (pydicom's RT dose
is 10 x 10), not radiographs; above it, 128 would refuse downscaled exports that still show every finding a
question names.

Out of scope under the default ("chest-radiograph"): StudyScopeError with one line saying what the study is
and what Quadrant checks. Under the research override ("any") the check runs and the verdict records
`scope.in_scope = false` with the reasons; no surface shows such a verdict as a plain Ideal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import OptionError, StudyScopeError
from .images import Facts, Study
from .images.base import has_chroma

#: the scope rules a check can apply: the default, and the research override that records instead of refusing
SCOPES = ("chest-radiograph", "any")
DEFAULT_SCOPE = "chest-radiograph"
#: DICOM modalities that are projection radiographs: computed and digital radiography
DEFAULT_MODALITIES = ("CR", "DX")
MIN_SIDE = 64
#: a digital radiograph's raw detector data (PresentationIntentType), which no model was trained on or shown
FOR_PROCESSING = "FOR PROCESSING"
#: the least spread of gray levels (`Study.spread`) a radiograph shows; a picture with less is blank
MIN_SPREAD = 16
#: words of BodyPartExamined that name the chest (DICOM's defined term is CHEST; the rest are seen in the wild)
CHEST_WORDS = frozenset({"CHEST", "THORAX", "TORAX", "TORACE", "THORAKS", "LUNG", "LUNGS", "CHESTABDOMEN",
                         "PECHO", "POITRINE"})
#: lateral views are in scope, but most chest models were trained on frontal (PA/AP) ones
_LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD"})
_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")


def check_scope_options(scope: str, modalities: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The scope rule and modality list, validated and normalised (modalities upper-case, in order given);
    OptionError for an unknown rule or a malformed modality."""
    if scope not in SCOPES:
        raise OptionError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",")]
    normalised = tuple(dict.fromkeys(str(m).strip().upper() for m in modalities))
    if not normalised or any(not _MODALITY.match(m) for m in normalised):
        raise OptionError(f"modalities must be DICOM modality codes separated by commas, e.g. CR,DX; "
                          f"got {','.join(map(str, modalities)) or 'nothing'}")
    return scope, normalised


@dataclass(frozen=True)
class StudyScope:
    """What the scope rule found about one study (the verdict's `scope` block, less the rule applied)."""

    in_scope: bool
    reasons: list[str]  # one line each, empty when in scope
    verified_from_header: bool  # False for PNG, JPEG and other rasters: modality and body part unknown
    frame: int | None  # the frame checked, counted from 1, for a multi-frame study; None for a single frame
    facts: Facts
    description: str  # what the study is, for messages: "an MR of the HEAD, 10 frames"
    warnings: list[str] = field(default_factory=list)  # in scope, but worth saying

    def message(self, modalities: Sequence[str]) -> str:
        """The one line an out-of-scope study is refused with. What it would take is added only where the
        study is otherwise a chest radiograph: no frame choice turns a head MR into one."""
        line = f"the study is {self.description}; Quadrant checks chest radiographs ({', '.join(modalities)})"
        if any(r.startswith(("modality", "body part", "the DICOM header")) for r in self.reasons):
            return line
        needs = [need for word, need in (("FOR PROCESSING", "FOR PRESENTATION (the processed image a viewer shows)"),
                                         ("pixels", f"of at least {MIN_SIDE} pixels on the short side"),
                                         ("colour", "in grayscale"),
                                         ("blank", "that show an image (a DICOM's window can also turn one "
                                                   "black or white)"))
                 if any(word in r for r in self.reasons)]
        line += f" {' and '.join(needs)}" if needs else ""
        if any("frames" in r for r in self.reasons):
            line += f", one frame at a time: choose one with --frame N (1 to {self.facts.frames})"
        return line

    def to_json(self, rule: str, modalities: Sequence[str]) -> dict:
        f = self.facts
        return {
            "in_scope": self.in_scope, "reasons": list(self.reasons), "verified_from_header": self.verified_from_header,
            "frame": self.frame, "frames": f.frames, "rule": rule, "modalities": list(modalities),
            "min_side": MIN_SIDE, "modality": f.modality, "body_part": f.body_part, "view": f.view,
            "laterality": f.laterality, "photometric": f.photometric, "colour": f.colour, "bits": f.bits,
            "presentation_intent": f.intent,
        }


def study_scope(study: Study, modalities: Sequence[str] = DEFAULT_MODALITIES) -> StudyScope:
    """Judge a study against the scope rule (see the module docstring); never raises."""
    facts = study.facts or Facts(colour=has_chroma(study.image))
    reasons = []
    if facts.from_header:
        if facts.modality is None:
            reasons.append("the DICOM header names no Modality")
        elif facts.modality.upper() not in modalities:
            reasons.append(f"modality {facts.modality} is not a radiograph Quadrant checks ({', '.join(modalities)})")
        if facts.body_part is not None and not names_chest(facts.body_part):
            reasons.append(f"body part {facts.body_part} is not the chest")
        if (facts.intent or "").upper() == FOR_PROCESSING:
            reasons.append("an image FOR PROCESSING: the detector's raw data, not the picture a viewer shows")
    if facts.frames > 1 and facts.frame is None:
        reasons.append(f"{facts.frames} frames and none chosen (--frame N)")
    if facts.colour:
        reasons.append(f"colour ({facts.photometric or 'RGB'}), not a grayscale radiograph")
    if min(study.width, study.height) < MIN_SIDE:
        reasons.append(f"{study.width} x {study.height} pixels, under {MIN_SIDE} on the short side")
    elif study.spread < MIN_SPREAD:
        reasons.append(f"blank: the picture spans {study.spread} of 255 gray levels")
    frame = facts.frame if facts.frame is not None else (1 if facts.frames > 1 else None)
    return StudyScope(not reasons, reasons, facts.from_header, frame, facts, describe(study, facts),
                      _warnings(facts, study.format) if not reasons else [])


def require_scope(study: Study, scope: str = DEFAULT_SCOPE,
                  modalities: Sequence[str] = DEFAULT_MODALITIES) -> StudyScope:
    """`study_scope`, refusing an out-of-scope study with StudyScopeError (one line) unless `scope` is "any",
    the research override, under which the result records `in_scope = False` and the check goes on."""
    judged = study_scope(study, modalities)
    if not judged.in_scope and scope != "any":
        raise StudyScopeError(judged.message(modalities))
    return judged


def names_chest(body_part: str) -> bool:
    """Whether BodyPartExamined names the chest: one of CHEST_WORDS among its words ("CHEST", "Chest PA",
    "CHEST_LAT", "THORAX"), whatever the case and separators."""
    return bool(set(re.split(r"[^A-Z]+", body_part.upper())) & CHEST_WORDS)


def describe(study: Study, facts: Facts) -> str:
    """What a study is, in a few words: "an MR of the HEAD, 10 frames", "a colour PNG, 40 x 30 pixels"."""
    if facts.from_header:
        what = facts.modality or "DICOM object with no modality"
        what = f"{_article(what)} {what}"
        if facts.body_part:
            what += f" of the {facts.body_part}"
    else:
        what = f"{'a colour' if facts.colour else _article(study.format)} {study.format}"
    extras = []
    if (facts.intent or "").upper() == FOR_PROCESSING:
        extras.append(FOR_PROCESSING)
    if facts.from_header and facts.colour:
        extras.append(f"colour ({facts.photometric})")
    if facts.frames > 1:
        extras.append(f"{facts.frames} frames")
    if min(study.width, study.height) < MIN_SIDE:
        extras.append(f"{study.width} x {study.height} pixels")
    elif study.spread < MIN_SPREAD:
        extras.append("blank (one flat gray)" if study.spread == 0 else "nearly blank")
    return ", ".join([what, *extras])


def _article(word: str) -> str:
    """"an" before a word read as a vowel sound, letter by letter for initialisms (an MR, an RTDOSE, a CT)."""
    first = word[:1].upper()
    if word.isupper() or len(word) <= 4:
        return "an" if first in "AEFHILMNORSX" else "a"
    return "an" if first in "AEIOU" else "a"


def _warnings(facts: Facts, fmt: str) -> list[str]:
    """What an in-scope study still leaves unsaid."""
    out = []
    if not facts.from_header:
        out.append(f"scope not verified from a header (a {fmt} file names no modality or body part): make sure it "
                   "is a chest radiograph")
    elif facts.body_part is None:
        out.append(f"the DICOM header names no body part; checked as a chest radiograph because its modality is "
                   f"{facts.modality}")
    if facts.view and facts.view.upper() in _LATERAL_VIEWS:
        out.append(f"a lateral view ({facts.view}): most chest models were trained on frontal (PA, AP) views")
    return out
