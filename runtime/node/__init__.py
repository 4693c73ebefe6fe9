"""The DICOM node: a PACS routes chest studies to it, and it sends each one's verdicts back as a structured
report and a secondary capture filed in the study (service.py; the DICOM side in network.py, the on-disk queue
in spool.py). `pip install 'quadrant[hospital]'`."""

from .network import Destination
from .service import Node, NodeOptions

__all__ = ["Destination", "Node", "NodeOptions"]
