"""How many studies a minute the node answers on this machine: `python -m quadrant.node.throughput`.

A node (the same Node class `quadrant node` runs) with the model asked for, and a storage SCP standing in for
the PACS that receives the results, both on loopback. One warm-up study, then N copies of a study (new UIDs
each, and a picture of their own: the fast path keeps a picture's prefix and shares it between the copies of
one picture, which a PACS's stream of patients does not have) sent in one association; the clock runs from the first C-STORE to the last result received, so it
counts receiving, spooling, reading, checking, making the SR and SC, and sending them. Once per number of
questions asked (default: one, then three).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..bank import load_bank
from ..check import Checker
from ..backends import load_model
from ..loading import ModelSpec
from .network import Destination
from .service import Node, NodeOptions

_FINDINGS = ("pleural effusion", "cardiomegaly", "pneumothorax")


def measure(checker: Checker, study: Path, n: int, questions: tuple[str, ...], *, batch: int = 8,
            send_sc: bool = True) -> dict:
    """Send `n` copies of `study` through a fresh node asking `questions`; the rates measured."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

    per_study = 2 if send_sc else 1
    received: list[float] = []
    done = threading.Condition()

    def store(event) -> int:
        with done:
            received.append(time.perf_counter())
            done.notify_all()
        return 0x0000

    collector = AE(ae_title="COLLECTOR")
    for sop_class in (ComprehensiveSRStorage, SecondaryCaptureImageStorage):
        collector.add_supported_context(sop_class)
    server = collector.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    port = server.server_address[1]
    with tempfile.TemporaryDirectory(prefix="quadrant-throughput-") as spool:
        node = Node(checker, NodeOptions(ae_title="QUADRANT", host="127.0.0.1", port=_free_port(),
                                         questions=questions, store_to=Destination("COLLECTOR", "127.0.0.1", port),
                                         spool=Path(spool), queue_size=n + 1, batch=batch, send_sc=send_sc))
        node.start()
        try:
            wanted = per_study
            _send(node.options.port, _copies(study, 1))  # warm-up: the model's first call, fonts, caches
            _wait(done, received, wanted)
            copies = _copies(study, n)
            started = time.perf_counter()
            _send(node.options.port, copies)
            sent = time.perf_counter()
            _wait(done, received, wanted + n * per_study)
            finished = received[-1]
        finally:
            node.stop()
            server.shutdown()
    seconds = finished - started
    return {"studies": n, "questions": len(questions), "seconds": round(seconds, 2),
            "studies_per_minute": round(n / seconds * 60, 1), "checks_per_minute": round(n * len(questions) /
                                                                                          seconds * 60, 1),
            "sending_seconds": round(sent - started, 2), "batch": batch, "secondary_capture": send_sc}


def _copies(study: Path, n: int) -> list[bytes]:
    out = []
    for index in range(n):
        ds = pydicom.dcmread(study)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        _mark(ds, index)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _mark(ds: pydicom.Dataset, index: int) -> None:
    """Spell `index` in the first 16 pixels of the top row, each the image's darkest or brightest value, so that
    every copy's picture differs from every other's whatever the window makes of the rest."""
    pixels = ds.pixel_array.copy()
    low, high = pixels.min(), pixels.max()
    for bit in range(16):
        pixels[0, bit] = high if index >> bit & 1 else low
    ds.PixelData = pixels.tobytes()


def _send(port: int, studies: list[bytes]) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    sop_classes = {pydicom.dcmread(io.BytesIO(s), stop_before_pixels=True).SOPClassUID for s in studies}
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="QUADRANT")
    if not assoc.is_established:
        raise RuntimeError("the node did not accept the association")
    try:
        for data in studies:
            status = assoc.send_c_store(pydicom.dcmread(io.BytesIO(data)))
            if getattr(status, "Status", None) != 0x0000:
                raise RuntimeError(f"the node refused a study: {status}")
    finally:
        assoc.release()


def _wait(done: threading.Condition, received: list, count: int, timeout: float = 3600) -> None:
    with done:
        if not done.wait_for(lambda: len(received) >= count, timeout=timeout):
            raise RuntimeError(f"only {len(received)} of {count} results arrived in {timeout} s")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    from quadrant.models.presets import MODELS_DIR

    parser = argparse.ArgumentParser(prog="python -m quadrant.node.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=MODELS_DIR / "samples" / "cardiomegaly-dicom.dcm",
                        help="the DICOM study to send copies of (default: the bundled 256 x 256 phantom)")
    parser.add_argument("-n", type=int, default=24, help="studies per measurement (default 24)")
    parser.add_argument("--questions", type=int, nargs="+", default=[1, 3], help="questions per study (default: 1 3)")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-sc", action="store_true", help="send the structured report only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bank = load_bank()
    checker = Checker(load_model(ModelSpec(args.model)))  # prepared by the node, on its batcher's thread
    rows = []
    for count in args.questions:
        questions = tuple(bank.questions[f] for f in _FINDINGS[:count])
        rows.append(measure(checker, args.study, args.n, questions, batch=args.batch, send_sc=not args.no_sc))
        if not args.json:
            r = rows[-1]
            print(f"{r['questions']} question(s): {r['studies']} studies in {r['seconds']} s = "
                  f"{r['studies_per_minute']} studies/min ({r['checks_per_minute']} checks/min; sending took "
                  f"{r['sending_seconds']} s)", flush=True)
    if args.json:
        print(json.dumps({"model": args.model, "study": str(args.study), "rows": rows}))


if __name__ == "__main__":
    main()
