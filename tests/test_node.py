"""`quadrant node` between a real PACS and the demo model: Debian's Orthanc routes studies to the node (and
receives its results), pynetdicom associations send bursts, and the node is killed and restarted.

One Orthanc for the module and one node process (restarted once by the kill test): each costs seconds to
start, and sharing them also shows the node keeps serving after every bad study. The studies are real chest
radiographs (RG1_UNCR, a Philips CR, and the bundled phantom), copied with new UIDs and a made-up patient.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from highdicom.sr.utils import find_content_items
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage, CTImageStorage, Verification

from conftest import QUADRANT, stop_process
from orthanc import Orthanc, free_port
from quadrant.models.presets import MODELS_DIR
from quadrant.node.network import Destination, Receiver, Sender, SendError
from quadrant.node.spool import Spool
from quadrant.results import codes
from test_results import rg1, written_as_is

SAMPLE = MODELS_DIR / "samples" / "cardiomegaly-dicom.dcm"
NODE_AET = "QUADRANT"
#: the README's routing rule: Orthanc sends each chest radiograph it stores to the node
ROUTING = Path(__file__).resolve().parents[1] / "docs" / "orthanc" / "route-to-quadrant.lua"
QUESTIONS = ("Is there a pleural effusion?", "Is the heart enlarged?")
#: written into every copy: the node may put them in the SR and SC, and nowhere else
PATIENT_NAME, PATIENT_ID = "Secretpatient", "PID-SECRET-4711"
pytestmark = pytest.mark.slow  # a PACS and a node process


def copies(source: Path, n: int, folder: Path, shrink: int = 1) -> list[tuple[Path, str]]:
    """`n` copies of a study, each a new study (new Study, Series and SOP Instance UIDs) of a made-up patient;
    `shrink` keeps every shrink-th pixel a side (a smaller radiograph, checked faster)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(n):
        ds = pydicom.dcmread(source)
        if shrink > 1:
            pixels = np.ascontiguousarray(ds.pixel_array[::shrink, ::shrink])
            ds.PixelData, (ds.Rows, ds.Columns) = pixels.tobytes(), pixels.shape
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
        path = folder / f"{source.stem}-{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made.append((path, str(ds.StudyInstanceUID)))
    return made


def c_store(port: int, paths: list[Path]) -> list[int]:
    """Send files to the node in one association, as a modality or a PACS does; each C-STORE's status."""
    ae = AE(ae_title="TESTSCU")
    for sop_class in (ComputedRadiographyImageStorage, CTImageStorage):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AET)
    assert assoc.is_established, "the node did not accept an association"
    try:
        return [getattr(assoc.send_c_store(path), "Status", -1) for path in paths]
    finally:
        assoc.release()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class NodeProcess:
    """`quadrant node` as a hospital runs it, its log in a file; restartable on the same spool and audit."""

    def __init__(self, root: Path, port: int, orthanc: Orthanc):
        self.root, self.port, self.metrics_port = root, port, free_port()
        self.spool, self.audit = root / "spool", root / "audit.sqlite"
        (root / "questions.txt").write_text("# the questions every study is asked\n" + "\n".join(QUESTIONS) + "\n")
        self.command = [QUADRANT, "node", "--port", str(port), "--ae-title", NODE_AET,
                        "--questions", str(root / "questions.txt"),
                        "--store-to", f"{orthanc.ae_title}@127.0.0.1:{orthanc.dicom_port}",
                        "--audit", str(self.audit), "--spool", str(self.spool), "--batch", "4",
                        "--metrics-port", str(self.metrics_port)]
        self.runs = 0
        self.start()

    @property
    def log(self) -> Path:
        return self.root / f"node-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        self.process = subprocess.Popen(self.command, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_for(lambda: self._alive() and "Listening as" in self.log.read_text(), 300, "the node to listen")

    def _alive(self) -> bool:
        assert self.process.poll() is None, f"the node exited:\n{self.log.read_text()}"
        return True

    def text(self) -> str:
        """Everything every run of the node has logged."""
        return "".join((self.root / f"node-{run}.log").read_text() for run in range(1, self.runs + 1))

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        return stop_process(self.process, timeout=120)

    def audit_rows(self) -> list[tuple]:
        with sqlite3.connect(self.audit) as connection:
            return connection.execute("SELECT user, image_sha256, question, quadrant, verdict FROM checks").fetchall()


@pytest.fixture(scope="module")
def orthanc_and_node(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    node_port = free_port()
    orthanc = Orthanc(root, peers={"quadrant": (NODE_AET, node_port)}, lua=(ROUTING,))
    try:
        node = NodeProcess(root, node_port, orthanc)
        try:
            yield orthanc, node
        finally:
            node.stop()
    finally:
        orthanc.stop()


@pytest.fixture(scope="module")
def orthanc(orthanc_and_node):
    return orthanc_and_node[0]


@pytest.fixture(scope="module")
def node(orthanc_and_node):
    return orthanc_and_node[1]


def results_of(orthanc: Orthanc, study_uid: str) -> tuple[list[str], list[str]]:
    return orthanc.results(study_uid, "SR"), orthanc.results(study_uid, "OT")


def test_node_answers_c_echo(node):
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.port, ae_title=NODE_AET)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_cr_chest_stored_in_orthanc_is_routed_to_the_node_and_its_results_come_back_in_the_same_study(orthanc, node, tmp_path):
    ((study, study_uid),) = copies(rg1(), 1, tmp_path)
    orthanc.upload(study)  # stored in the PACS, which routes it to the node by itself (docs/orthanc)
    sr_ids, sc_ids = wait_for(lambda: all(results_of(orthanc, study_uid)) and results_of(orthanc, study_uid), 120,
                              "the SR and SC in Orthanc")
    assert len(sr_ids) == 1 and len(sc_ids) == 1
    report_path = tmp_path / "report.dcm"
    report_path.write_bytes(orthanc.file(sr_ids[0]))
    report = hd.sr.srread(report_path)
    assert report.StudyInstanceUID == study_uid and report.PatientID == PATIENT_ID
    groups = report.content.get_image_measurement_groups()
    asked = [t.value for g in groups for t in find_content_items(g[0], name=codes.QUESTION)]
    assert asked == list(QUESTIONS)
    verdicts = [g.get_qualitative_evaluations(codes.VERDICT)[0].value.meaning for g in groups]
    assert set(verdicts) <= {"Ideal", "Fragile", "Dangerous", "Worst"}
    capture = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.file(sc_ids[0])))
    assert capture.StudyInstanceUID == study_uid and capture.Columns >= 512
    # one log line for the study: its hash and its verdicts, no identifier; one audit row per question
    rows = node.audit_rows()[-len(QUESTIONS):]
    assert [r[2] for r in rows] == list(QUESTIONS) and [r[3] for r in rows] == verdicts
    assert {r[0] for r in rows} == {f"node {NODE_AET}"}
    (line,) = [line for line in node.text().splitlines() if f"study {rows[0][1][:12]}: " in line]
    assert all(f"{v} (" in line for v in verdicts) and all(q in line for q in QUESTIONS)
    for identifier in (PATIENT_NAME, PATIENT_ID, study_uid):
        assert identifier not in node.text()
        assert not any(identifier in str(value) for row in node.audit_rows() for value in row)


def test_a_header_that_breaks_dicoms_rules_is_answered_and_its_values_stay_out_of_the_log(orthanc, node, tmp_path):
    """A birth date written 1951-02-03 and a sex of "U", as real archives hold them: highdicom refused them with
    the date in its error, which the node logged as it set the study aside. Now the results go back, those two
    elements empty, and the log names them without their values."""
    ((study, study_uid),) = copies(SAMPLE, 1, tmp_path)
    ds = pydicom.dcmread(study)
    written_as_is(ds, {"PatientBirthDate": "1951-02-03", "PatientSex": "U"})
    ds.save_as(study, enforce_file_format=True)
    assert c_store(node.port, [study]) == [0x0000]
    sr_ids, _ = wait_for(lambda: all(results_of(orthanc, study_uid)) and results_of(orthanc, study_uid), 120,
                         "the SR and SC in Orthanc")
    report = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.file(sr_ids[0])))
    assert (report.PatientID, report.PatientBirthDate, report.PatientSex) == (PATIENT_ID, "", "")
    assert report.PatientName == PATIENT_NAME + "^"  # the same one-component name, as highdicom wants it
    assert "has PatientBirthDate, PatientSex not valid in DICOM" in node.text()
    assert "1951" not in node.text() and "set aside" not in node.text()


def test_unreadable_study_gets_no_result_and_the_node_keeps_serving(orthanc, node, tmp_path):
    ((study, study_uid),) = copies(SAMPLE, 1, tmp_path)
    ds = pydicom.dcmread(study)
    del ds.PixelData  # a radiograph's header without its image: nothing to check
    ds.save_as(study, enforce_file_format=True)
    before = node.text().count("not checked, no result sent")
    assert c_store(node.port, [study]) == [0x0000]  # accepted: what to do with it is the node's business
    wait_for(lambda: node.text().count("not checked, no result sent") > before, 60, "the refusal in the log")
    assert "no pixel data" in node.text()
    assert results_of(orthanc, study_uid) == ([], [])
    ((good, good_uid),) = copies(SAMPLE, 1, tmp_path / "next")  # and the next study is answered
    assert c_store(node.port, [good]) == [0x0000]
    wait_for(lambda: all(results_of(orthanc, good_uid)), 60, "the next study's results")


def test_ct_gets_no_result_and_the_node_keeps_serving(orthanc, node, tmp_path):
    ((ct, ct_uid),) = copies(Path(get_testdata_file("CT_small.dcm")), 1, tmp_path)
    before = node.text().count("not checked, no result sent")
    assert c_store(node.port, [ct]) == [0x0000]
    wait_for(lambda: node.text().count("not checked, no result sent") > before or any(results_of(orthanc, ct_uid)),
             60, "the CT to be refused or answered")
    time.sleep(2)  # results would follow the log line within the delivery loop's second
    assert results_of(orthanc, ct_uid) == ([], [])
    test_node_answers_c_echo(node)


def test_burst_of_twelve_studies_all_answered_once(orthanc, node, tmp_path):
    studies = copies(rg1(), 6, tmp_path / "cr", shrink=4) + copies(SAMPLE, 6, tmp_path / "phantom")
    rows_before = len(node.audit_rows())
    assert c_store(node.port, [path for path, _ in studies]) == [0x0000] * 12
    for _, study_uid in studies:
        sr_ids, sc_ids = wait_for(lambda uid=study_uid: all(results_of(orthanc, uid)) and results_of(orthanc, uid),
                                  180, "every study's results")
        assert (len(sr_ids), len(sc_ids)) == (1, 1)
    wait_for(lambda: len(node.audit_rows()) >= rows_before + 12 * len(QUESTIONS), 30, "the audit rows")
    assert len(node.audit_rows()) == rows_before + 12 * len(QUESTIONS)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=10).read().decode()
    checked = sum(float(v) for v in re.findall(r'^quadrant_checks_total\{model="demo",quadrant="\w+"\} (\S+)$',
                                                 metrics, re.M))
    assert checked == len(node.audit_rows())
    assert re.search(r'^quadrant_node_studies_total\{outcome="refused"\} [1-9]', metrics, re.M)
    assert PATIENT_ID not in metrics and PATIENT_NAME not in metrics


def test_node_killed_mid_burst_and_restarted_finishes_every_accepted_study_once(orthanc, node, tmp_path):
    studies = copies(rg1(), 12, tmp_path, shrink=2)  # large enough that the kill finds work in hand
    statuses = c_store(node.port, [path for path, _ in studies])
    node.kill()
    accepted = [uid for (_, uid), status in zip(studies, statuses) if status == 0x0000]
    assert len(accepted) == 12, statuses
    waiting = Spool(node.spool, capacity=len(studies)).waiting()  # studies to check and results to send
    assert waiting, "the node finished the burst before the kill: nothing was tested"
    node.start()
    assert f"({waiting} waiting from before)" in node.log.read_text()
    for study_uid in accepted:
        sr_ids, sc_ids = wait_for(lambda uid=study_uid: all(results_of(orthanc, uid)) and results_of(orthanc, uid),
                                  240, "every accepted study's results after the restart")
        assert (len(sr_ids), len(sc_ids)) == (1, 1)
    wait_for(lambda: Spool(node.spool, capacity=0).waiting() == 0, 60, "an empty spool")


def test_a_full_queue_refuses_with_out_of_resources_and_keeps_what_it_accepted(tmp_path):
    """The receiving side alone (no model): a spool of one refuses the second study with 0xA700."""
    spool = Spool(tmp_path / "spool", capacity=1).open()
    receiver = Receiver(NODE_AET, spool)
    port = free_port()
    receiver.start("127.0.0.1", port)
    try:
        studies = copies(SAMPLE, 2, tmp_path / "studies")
        assert c_store(port, [path for path, _ in studies]) == [0x0000, 0xA700]
        (kept,) = spool.incoming()
        assert pydicom.dcmread(kept).SOPInstanceUID == pydicom.dcmread(studies[0][0]).SOPInstanceUID
        assert c_store(port, [studies[0][0]]) == [0x0000]  # the same instance again is the same file, not a new one
        assert len(spool.incoming()) == 1
    finally:
        receiver.stop()


def test_a_destination_that_is_down_is_named_in_one_line(tmp_path):
    sender = Sender(NODE_AET, Destination.parse(f"NOWHERE@127.0.0.1:{free_port()}"), timeout=5)
    with pytest.raises(SendError, match=r"NOWHERE@127\.0\.0\.1:\d+ did not accept an association"):
        sender.send([tmp_path], lambda folder: None)


def test_sigterm_stops_the_node_cleanly(node):
    assert node.stop() == 0
    assert "Stopped" in node.log.read_text()



@pytest.mark.parametrize("args, message", [
    (["--ae-title", "TOO-LONG-FOR-DICOM-AE"], "is not an AE title"),
    (["--store-to", "ORTHANC-127.0.0.1-4242"], "expected AET@HOST:PORT"),
    (["--store-to", "ORTHANC@127.0.0.1:99999"], "the port must be a number from 1 to 65535"),
    (["--questions", "{missing}"], "does not exist"),
    (["--questions", "{bad}"], "line 2: "),
    (["--queue-size", "0"], "--queue-size must be at least 1"),
    (["--port", "{taken}"], "in use"),
])
def test_bad_options_exit_2_with_one_line_before_the_model_loads(tmp_path, capsys, args, message):
    from quadrant.cli.main import main

    good = tmp_path / "questions.txt"
    good.write_text("Is there a pleural effusion?\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("Is there a pleural effusion?\nDescribe the heart.\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        defaults = {"--port": str(free_port()), "--ae-title": NODE_AET, "--questions": str(good),
                    "--store-to": "ORTHANC@127.0.0.1:4242", "--spool": str(tmp_path / "spool"),
                    "--audit": str(tmp_path / "audit.sqlite")}
        values = {"missing": tmp_path / "missing.txt", "bad": bad, "taken": taken.getsockname()[1]}
        given = dict(zip(args[::2], [a.format(**values) for a in args[1::2]]))
        line = [word for option, value in {**defaults, **given}.items() for word in (option, value)]
        assert main(["node", *line]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "spool").exists()
