"""The DICOM structured report of one or more verdicts on one study, made with highdicom.

TID 1500 (Imaging Measurement Report): the template the IHE AI Results profile names for an algorithm's
results, the one viewers and archives parse. One Measurement Group (TID 1501) per question asked, holding the
question, the verdict, its meaning in one sentence, the answer, consistency (phrasings asked and how many
disagree), image reliance (the rule and the figure that decided it), the algorithm's identity and the notice
that it is not for diagnostic use. The content tree is drawn in the README.

Filed in the source study: highdicom copies the patient and study modules from the source header, the report
takes a new series, and references the source image (each group's source image, and the evidence sequence)
and, when one was made, the secondary capture (as the group's visual explanation). There is no image library:
highdicom builds its projection-radiography entries only from headers that name the patient orientation and
the imager pixel spacing, which many radiographs leave out, and a viewer finds the image through the groups.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as dcm

from .. import __version__, vocabulary
from ..errors import require
from ..verdict import Verdict
from . import codes
from .filing import MANUFACTURER, SERIES_DESCRIPTION, SERIES_NUMBERS, device_uid, filing_key, result_uid
from .source import Source

hd = require("highdicom", "hospital")


def build_sr(source: Source, verdicts: Sequence[Verdict], visual: Dataset | None = None):
    """The report (a highdicom ComprehensiveSR) for `verdicts` on `source`; `visual` is the secondary
    capture of the same check, referenced as each group's visual explanation."""
    key = filing_key(source.sop_instance_uid, verdicts)
    first = verdicts[0]
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(first), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
        model_name=first.model["name"][:64], serial_number=first.model["fingerprint"][:64])
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=dcm.DCM.Device,
                                                      observer_identifying_attributes=device))
    groups = [_group(source.dataset, verdict, key, index, visual) for index, verdict in enumerate(verdicts, 1)]
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=codes.CHEST_IMAGING, imaging_measurements=groups)
    evidence = [source.dataset] + ([visual] if visual is not None else [])
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=result_uid(key, "sr-series"),
        series_number=SERIES_NUMBERS["sr"], sop_instance_uid=result_uid(key, "sr"), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=SERIES_DESCRIPTION)
    sr.ManufacturerModelName = "Quadrant"
    sr.SoftwareVersions = __version__
    sr.CodingSchemeIdentificationSequence = [*sr.get("CodingSchemeIdentificationSequence", []),
                                             codes.scheme_identification()]
    return sr


def _group(source: Dataset, verdict: Verdict, key: str, index: int, visual: Dataset | None):
    """One question's Measurement Group: the question, its verdict and what decided it."""
    shifts = verdict.shifts or {}
    measurements = [
        _number(codes.PHRASINGS, len(verdict.prompts), codes.PHRASING_UNITS),
        _number(codes.DISAGREEING, verdict.flip_count, codes.PHRASING_UNITS),
    ]
    if verdict.prompts[0].p_yes is not None:
        measurements.append(_number(codes.P_YES, verdict.prompts[0].p_yes, codes.NO_UNITS))
    if verdict.reliance["rule"] == "content" and shifts.get("relative_content") is not None:
        measurements.append(_number(codes.RELATIVE_SHIFT, shifts["relative_content"], codes.NO_UNITS))
        measurements.append(_number(codes.THRESHOLD, verdict.reliance["threshold"], codes.NO_UNITS))
    evaluations = [
        hd.sr.QualitativeEvaluation(codes.VERDICT, codes.QUADRANT_VALUES[verdict.quadrant]),
        hd.sr.QualitativeEvaluation(codes.ANSWER, codes.yes_no(verdict.answer)),
        hd.sr.QualitativeEvaluation(codes.CONSISTENT, codes.yes_no(verdict.consistent)),
        hd.sr.QualitativeEvaluation(codes.IMAGE_RELIANT, codes.yes_no(verdict.image_reliant)),
        hd.sr.QualitativeEvaluation(codes.RELIANCE_RULE, codes.RULE_VALUES[verdict.reliance["rule"]]),
        hd.sr.QualitativeEvaluation(codes.TEXT_ONLY_ANSWER, codes.yes_no(verdict.text_only.answer)),
    ]
    if verdict.content_free is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(codes.REFERENCE_ANSWER,
                                                       codes.yes_no(verdict.content_free.answer)))
    model = verdict.model
    algorithm = hd.sr.AlgorithmIdentification(
        name="Quadrant", version=__version__,
        parameters=[f"model {model['name']}", f"model fingerprint {model['fingerprint']}",
                    f"backend {model.get('backend')}", f"ablation {verdict.text_only.ablation}",
                    "reliance " + ", ".join(f"{k} {v}" for k, v in verdict.reliance.items())])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=result_uid(key, f"group-{index}"),
                                                     identifier=f"Quadrant question {index}"),
        finding_type=codes.finding_code(verdict.question), algorithm_id=algorithm,
        measurements=measurements, qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)])
    items = group[0].ContentSequence
    for name, text in ((codes.QUESTION, verdict.question), (codes.MEANING, vocabulary.meaning(verdict)),
                       (codes.DECIDED_BY, vocabulary.decided_by(verdict)), (codes.ADVICE, vocabulary.advice(verdict)),
                       (codes.NOTICE, vocabulary.NOT_FOR_DIAGNOSIS)):
        items.append(hd.sr.TextContentItem(name=name, value=text,
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    if visual is not None:  # TID 1501 puts a visual explanation before the measurements
        first_number = next(i for i, item in enumerate(items) if item.ValueType == "NUM")
        items.insert(first_number, hd.sr.ImageContentItem(
            name=dcm.DCM.VisualExplanation, referenced_sop_class_uid=visual.SOPClassUID,
            referenced_sop_instance_uid=visual.SOPInstanceUID,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _number(name, value: float, unit):
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)
