"""The coded concepts of Quadrant's results: standard codes where they exist, Quadrant's own scheme elsewhere.

Standard: DICOM (DCM) for the report's structure, SNOMED CT (SCT) for yes, no, the chest imaging procedure and
the findings the paraphrase bank knows, UCUM for units. Nothing standard names "answered the same way in
every phrasing" or "the image's content moved the answer", so those are Quadrant's own concepts, in a private
coding scheme: DICOM wants its designator to start with "99" and the scheme to be declared in the object's
Coding Scheme Identification Sequence (`scheme_identification`). The same scheme, by its UID, is the FHIR
code system (`FHIR_SYSTEM`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..paraphrases import find_finding

SCHEME = "99QUADRANT"
SCHEME_VERSION = "1"
#: a UUID-derived OID (ISO/IEC 9834-8: the 2.25 arc needs no registration), fixed for the life of the scheme
SCHEME_UID = "2.25.122960357506522215026763941718136823989"
FHIR_SYSTEM = f"urn:oid:{SCHEME_UID}"


def quadrant_code(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning)


# names of the report's items
VERDICT = quadrant_code("VERDICT", "Quadrant verdict")
QUESTION = quadrant_code("QUESTION", "Question asked of the model")
ANSWER = quadrant_code("ANSWER", "Model's answer to the question as asked")
CONSISTENT = quadrant_code("CONSISTENT", "Same answer in every phrasing")
IMAGE_RELIANT = quadrant_code("IMAGE-RELIANT", "The image moved the answer")
TEXT_ONLY_ANSWER = quadrant_code("TEXT-ONLY-ANS", "Model's answer with the image taken away")
REFERENCE_ANSWER = quadrant_code("REFERENCE-ANS", "Model's answer with a content-free image")
RELIANCE_RULE = quadrant_code("RELIANCE-RULE", "Image-reliance rule")
PHRASINGS = quadrant_code("PHRASINGS", "Phrasings asked")
DISAGREEING = quadrant_code("DISAGREEING", "Phrasings whose answer differs from the question as asked")
P_YES = quadrant_code("P-YES", "Probability of yes for the question as asked")
RELATIVE_SHIFT = quadrant_code("REL-SHIFT", "Relative content shift of the yes/no margin")
THRESHOLD = quadrant_code("THRESHOLD", "Image-reliance threshold")
MEANING = quadrant_code("MEANING", "What the verdict means")
DECIDED_BY = quadrant_code("DECIDED-BY", "What decided image reliance")
ADVICE = quadrant_code("ADVICE", "What to do with the answer")
NOTICE = quadrant_code("NOTICE", "Notice")

# values
QUADRANT_VALUES = {q: quadrant_code(q.upper(), q) for q in ("Ideal", "Fragile", "Dangerous", "Worst")}
RULE_VALUES = {
    "content": quadrant_code("RULE-CONTENT", "Content rule: against a content-free image"),
    "flip": quadrant_code("RULE-FLIP", "Flip rule: against the image taken away"),
}
UNCLEAR = quadrant_code("UNCLEAR", "Unclear answer")
YES, NO = codes.SCT.Yes, codes.SCT.No
CHEST_IMAGING = codes.SCT.ChestImaging
NO_UNITS = codes.UCUM.NoUnits
PHRASING_UNITS = Code("{phrasings}", "UCUM", "phrasings")

_DATA = Path(__file__).with_name("findings.json")


def yes_no(value: bool | str) -> Code:
    """SNOMED CT's yes or no (for a boolean, or a model's answer); a hedged generated answer is unclear."""
    if isinstance(value, bool):
        return YES if value else NO
    return {"yes": YES, "no": NO}.get(value, UNCLEAR)


@lru_cache(maxsize=1)
def finding_codes() -> dict[str, Code]:
    """Bank finding name -> its SNOMED CT code, from findings.json."""
    table = json.loads(_DATA.read_text(encoding="utf-8"))["SCT"]
    return {name: Code(value, "SCT", meaning) for name, (value, meaning) in table.items()}


def finding_code(question: str) -> Code | None:
    """The SNOMED CT code of the finding a question asks about, when the built-in bank names one and it has
    a code; None otherwise (the report then carries the question alone)."""
    finding = find_finding(question)
    return None if finding is None else finding_codes().get(finding)


def scheme_identification() -> Dataset:
    """The Coding Scheme Identification Sequence item declaring Quadrant's private scheme."""
    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeUID = SCHEME_UID
    item.CodingSchemeName = "Quadrant model-behaviour concepts"
    item.CodingSchemeVersion = SCHEME_VERSION
    item.CodingSchemeResponsibleOrganization = "The Quadrant project"
    return item
