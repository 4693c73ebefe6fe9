"""The FHIR R5 form of a check: a transaction Bundle a FHIR server takes in one POST, validated by the
`fhir.resources` models (version 8 implements R5) before it is written.

The Bundle holds the algorithm as a Device (created only if no Device has its identifier yet), one Observation
per question (the verdict as its value, the answer, consistency and image reliance as components, the
wording as notes) and a DiagnosticReport gathering them. Each names the study by its Study Instance UID as a
logical ImagingStudy reference (system `urn:dicom:uid`), the way ImagingStudy identifies studies, and carries
no patient: a FHIR server links the report to the patient through that study. Every resource has an
identifier derived from the check and is created conditionally (`ifNoneExist`), so posting the same Bundle
twice leaves one copy. Timestamps are when the Bundle was made.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone

from .. import __version__, vocabulary
from ..errors import require
from ..verdict import Verdict
from . import codes
from .filing import MANUFACTURER, device_uid, filing_key, result_uid
from .source import Source

require("fhir.resources", "hospital")
from fhir.resources.bundle import Bundle  # noqa: E402

DICOM_UID = "urn:dicom:uid"
URI = "urn:ietf:rfc:3986"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def build_fhir(source: Source, verdicts: Sequence[Verdict]) -> Bundle:
    """The validated transaction Bundle for `verdicts` on `source` (raises pydantic's error if invalid)."""
    key = filing_key(source.sop_instance_uid, verdicts)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    study = {"type": "ImagingStudy", "identifier": {"system": DICOM_UID, "value": f"urn:oid:{source.study_uid}"}}
    device_id = f"urn:oid:{device_uid(verdicts[0])}"
    device_url = _url(device_id)
    entries = [_entry(device_url, _device(verdicts[0], device_id), "Device", device_id)]
    results = []
    for index, verdict in enumerate(verdicts, 1):
        identifier = f"urn:oid:{result_uid(key, f'fhir-observation-{index}')}"
        observation = _observation(verdict, identifier, device_url, study, now)
        entries.append(_entry(_url(identifier), observation, "Observation", identifier))
        results.append({"reference": _url(identifier)})
    report_id = f"urn:oid:{result_uid(key, 'fhir-report')}"
    report = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": URI, "value": report_id}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": _concept(codes.quadrant_code("REPORT", "Quadrant model check"), "Quadrant model check"),
        "study": [study],
        "effectiveDateTime": now,
        "issued": now,
        "result": results,
        "conclusion": " ".join(f"{v.question} {vocabulary.title(v)}: {vocabulary.meaning(v)}" for v in verdicts)
                      + " " + vocabulary.NOT_FOR_DIAGNOSIS,
    }
    entries.append(_entry(_url(report_id), report, "DiagnosticReport", report_id))
    return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def to_json(bundle: Bundle) -> str:
    return bundle.model_dump_json(indent=2)


def _url(identifier: str) -> str:
    """A Bundle entry's full URL: a UUID derived from its resource's identifier."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, identifier)}"


def _entry(url: str, resource: dict, kind: str, identifier: str) -> dict:
    system = DICOM_UID if kind == "Device" else URI
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": kind, "ifNoneExist": f"identifier={system}|{identifier}"}}


def _device(verdict: Verdict, identifier: str) -> dict:
    model = verdict.model
    return {
        "resourceType": "Device",
        "identifier": [{"system": DICOM_UID, "value": identifier}],
        "displayName": f"Quadrant {__version__} checking {model['name']}",
        "name": [{"value": "Quadrant", "type": "registered-name"}],
        "manufacturer": MANUFACTURER,
        "modelNumber": model["name"],
        "version": [{"type": {"text": "Quadrant"}, "value": __version__},
                    {"type": {"text": "model fingerprint (weights and adapter)"}, "value": model["fingerprint"]}],
        "note": [{"text": vocabulary.NOT_FOR_DIAGNOSIS}],
    }


def _observation(verdict: Verdict, identifier: str, device_url: str, study: dict, now: str) -> dict:
    components = [
        _component(codes.QUESTION, valueString=verdict.question),
        _component(codes.ANSWER, valueCodeableConcept=_concept(codes.yes_no(verdict.answer))),
        _component(codes.CONSISTENT, valueBoolean=verdict.consistent),
        _component(codes.IMAGE_RELIANT, valueBoolean=verdict.image_reliant),
        _component(codes.PHRASINGS, valueInteger=len(verdict.prompts)),
        _component(codes.DISAGREEING, valueInteger=verdict.flip_count),
        _component(codes.RELIANCE_RULE, valueCodeableConcept=_concept(codes.RULE_VALUES[verdict.reliance["rule"]])),
        _component(codes.TEXT_ONLY_ANSWER, valueCodeableConcept=_concept(codes.yes_no(verdict.text_only.answer))),
    ]
    if verdict.content_free is not None:
        components.append(_component(codes.REFERENCE_ANSWER,
                                     valueCodeableConcept=_concept(codes.yes_no(verdict.content_free.answer))))
    if verdict.prompts[0].p_yes is not None:
        components.append(_component(codes.P_YES, valueQuantity=_unitless(verdict.prompts[0].p_yes)))
    relative = (verdict.shifts or {}).get("relative_content")
    if verdict.reliance["rule"] == "content" and relative is not None:
        components.append(_component(codes.RELATIVE_SHIFT, valueQuantity=_unitless(relative)))
        components.append(_component(codes.THRESHOLD, valueQuantity=_unitless(verdict.reliance["threshold"])))
    finding = codes.finding_code(verdict.question)
    if finding is not None:
        components.append({"code": {"coding": [{"system": SNOMED, "code": "404684003",
                                                "display": "Clinical finding"}]},
                           "valueCodeableConcept": _concept(finding)})
    return {
        "resourceType": "Observation",
        "identifier": [{"system": URI, "value": identifier}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": _concept(codes.VERDICT, f"Quadrant verdict: {verdict.question}"),
        "effectiveDateTime": now,
        "issued": now,
        "device": {"reference": device_url},
        "derivedFrom": [study],
        "valueCodeableConcept": _concept(codes.QUADRANT_VALUES[verdict.quadrant], vocabulary.title(verdict)),
        "component": components,
        "note": [{"text": vocabulary.meaning(verdict)}, {"text": vocabulary.decided_by(verdict)},
                 {"text": vocabulary.advice(verdict)}, {"text": vocabulary.NOT_FOR_DIAGNOSIS}],
    }


def _concept(code, text: str | None = None) -> dict:
    """A DICOM-style code (pydicom Code) as a FHIR CodeableConcept, in its scheme's FHIR system."""
    system = {"SCT": SNOMED, codes.SCHEME: codes.FHIR_SYSTEM}[code.scheme_designator]
    concept = {"coding": [{"system": system, "code": code.value, "display": code.meaning}]}
    if text:
        concept["text"] = text
    return concept


def _component(code, **value) -> dict:
    return {"code": _concept(code), **value}


def _unitless(value: float) -> dict:
    return {"value": round(float(value), 6), "unit": "1", "system": UCUM, "code": "1"}
