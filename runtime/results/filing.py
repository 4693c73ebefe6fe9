"""Where a result is filed in its study: its UIDs, series and the words every viewer lists it by.

UIDs are derived from what the result says (the source instance, the model's fingerprint, the reliance rule,
each question with its verdict and answer), not drawn at random: the same check of the same image gives the
same SOP Instance UID, so a result sent twice (a node restarted between sending and recording it, an
evaluation rerun) is one object to a PACS, never a duplicate, while a different verdict is always a new one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from .. import __version__
from ..verdict import Verdict

MANUFACTURER = "Quadrant"
#: what a PACS worklist shows for the result's series (DICOM allows 64 characters)
SERIES_DESCRIPTION = "Quadrant model check - NOT FOR DIAGNOSTIC USE"
#: high series numbers keep derived results after the acquired series in a viewer's list
SERIES_NUMBERS = {"sr": 9901, "sc": 9902}
#: the namespace of Quadrant's name-based UUIDs (itself name-based, so fixed for good)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "quadrant:result-uids")


def filing_key(source_uid: str, verdicts: Sequence[Verdict]) -> str:
    """What a result's identity rests on: the source image's SOP Instance UID and the verdicts (margins left
    out: they may differ in the last digits between runs on other hardware, and must not make a second object
    of the same result)."""
    return json.dumps({
        "quadrant": __version__,
        "source": source_uid,
        "checks": [[v.model["fingerprint"], v.reliance, v.prompts[0].text, v.quadrant, v.answer] for v in verdicts],
    }, sort_keys=True)


def result_uid(key: str, kind: str) -> str:
    """A UID derived from the key and what it names ("sr", "sr-series", ...): a name-based UUID under the
    2.25 arc (ISO/IEC 9834-8), which needs no registered root."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, f'{kind}:{key}').int}"


def device_uid(verdict: Verdict) -> str:
    """The algorithm as an observing device: one UID per Quadrant version and model weights."""
    return result_uid(json.dumps([__version__, verdict.model["fingerprint"]]), "device")
