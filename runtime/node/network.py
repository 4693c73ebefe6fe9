"""The node's DICOM side, through pynetdicom: a storage and verification SCP that spools what it receives, and
the storage SCU that sends results on.

Every storage SOP class and transfer syntax pynetdicom knows is accepted: what can be checked is decided by
reading the study (and by the checker's scope rule), which says why in one log line, rather than by an
association a PACS would report only as "no presentation context". Instances Quadrant made itself (its own
report and secondary capture, routed back by a PACS that forwards everything) are acknowledged and ignored,
so a result never comes back as a study.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, one_line, require
from ..results.filing import MANUFACTURER
from .spool import Spool, study_key

pynetdicom = require("pynetdicom", "hospital")
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.presentation import AllStoragePresentationContexts  # noqa: E402
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage, Verification  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian  # noqa: E402

log = logging.getLogger("quadrant.node")

#: C-STORE statuses (DICOM PS3.4, storage service class)
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
_WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or elements discarded: delivered all the same
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash, 16 at most


@dataclass(frozen=True)
class Destination:
    """Where results go: `AET@HOST:PORT`."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Destination":
        title, at, address = text.rpartition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and title and host):
            raise OptionError(f"--store-to {text!r}: expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
        check_ae_title(title, "--store-to")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise OptionError(f"--store-to {text!r}: the port must be a number from 1 to 65535")
        return cls(title, host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str, option: str) -> str:
    if not _AE_TITLE.match(title) or not title.strip():
        raise OptionError(f"{option}: {title!r} is not an AE title (1 to 16 printable ASCII characters, no "
                          "backslash)")
    return title


class Receiver:
    """The storage and verification SCP: each C-STORE is spooled before it is acknowledged."""

    def __init__(self, ae_title: str, spool: Spool, *, allowed: Sequence[str] = (),
                 on_refused: Callable[[str], None] = lambda reason: None):
        self.ae = AE(ae_title=ae_title)
        self.ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, pynetdicom.ALL_TRANSFER_SYNTAXES)
        if allowed:
            self.ae.require_calling_aet = list(allowed)
        self.spool = spool
        self.on_refused = on_refused
        self.server = None

    def start(self, host: str, port: int) -> None:
        try:
            self.server = self.ae.start_server((host, port), block=False,
                                               evt_handlers=[(evt.EVT_C_STORE, self._store)])
        except OSError as exc:
            raise OptionError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another node or PACS "
                              "running there? choose another --port)") from exc

    def stop(self) -> None:
        """Stop accepting; associations in progress finish their current request."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _store(self, event) -> int:
        try:
            dataset = event.dataset
            if str(dataset.get("Manufacturer", "")) == MANUFACTURER and str(dataset.SOPClassUID) in (
                    ComprehensiveSRStorage, SecondaryCaptureImageStorage):
                log.info("ignored an instance Quadrant made itself (a result routed back to the node)")
                self.on_refused("own_result")
                return SUCCESS
            key = study_key(str(event.request.AffectedSOPInstanceUID))
            if not self.spool.accept(key, event.encoded_dataset()):
                log.warning("refused a study: the queue is full (%d studies and results waiting)",
                            self.spool.capacity)
                self.on_refused("queue_full")
                return OUT_OF_RESOURCES
        except OSError as exc:
            log.error("refused a study: the spool cannot be written (%s)", exc.strerror or exc)
            self.on_refused("spool_error")
            return OUT_OF_RESOURCES
        except Exception as exc:  # a dataset pynetdicom cannot decode: refused, the node keeps serving
            log.warning("refused a study that cannot be read (%s)", one_line(exc))
            self.on_refused("unreadable")
            return CANNOT_UNDERSTAND
        return SUCCESS


class SendError(Exception):
    """The destination could not be reached, or refused a result; the message says which."""


class Sender:
    """The storage SCU sending result files to the destination, one association per delivery round."""

    def __init__(self, ae_title: str, destination: Destination, timeout: float = 30.0):
        self.destination = destination
        self.ae = AE(ae_title=ae_title)
        for sop_class in (ComprehensiveSRStorage, SecondaryCaptureImageStorage):
            self.ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = timeout
        self.ae.connection_timeout = min(timeout, 10.0)

    def send(self, folders: Sequence[Path], delivered: Callable[[Path], None]) -> None:
        """Send each folder's files; `delivered(folder)` once all of a folder's are stored. Raises SendError
        at the first failure (what was delivered before it stays delivered)."""
        d = self.destination
        assoc = self.ae.associate(d.host, d.port, ae_title=d.ae_title)
        if not assoc.is_established:
            raise SendError(f"{d} did not accept an association (is it running, and does it know this node's "
                            "AE title?)")
        try:
            for folder in folders:
                for path in sorted(folder.glob("*.dcm")):
                    status = assoc.send_c_store(path)
                    code = getattr(status, "Status", None)
                    if code is None:
                        raise SendError(f"{d} did not answer a C-STORE (connection lost or timed out)")
                    if code != SUCCESS and code not in _WARNINGS:
                        raise SendError(f"{d} refused a result with status 0x{code:04X}")
                delivered(folder)
        finally:
            if assoc.is_established:
                assoc.release()
