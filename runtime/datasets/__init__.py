"""Manifests from public chest X-ray datasets as they are distributed: one module per dataset, each with a
`build(root, ...)` that returns the rows (`BuildResult`) for `quadrant.manifest.write_manifest`.

    mimic.py      MIMIC-CXR-JPG: CheXpert labels, metadata views, optional official split
    padchest.py   PadChest: its label CSV, projections, physician-only labels
    findings.json which dataset labels answer which finding of the paraphrase bank (data, editable)

Images and labels stay the user's own files (both datasets need credentialed access): nothing is
downloaded, and no patient identifier is copied into a manifest column.
"""

from .common import BuildResult

__all__ = ["BuildResult"]
