"""The app's parts without a server: audit log, batching, DICOM facts, rendering.

The running server, its API and the browser are tested in test_app_server.py; login, uploads and file access
in test_app_security_parts.py and test_app_security.py.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pydicom
import pytest

from quadrant.audit import AuditLog
from quadrant.app.render import (NOT_FOR_DIAGNOSIS, SOURCE_NOTES, banner_html, error_html, phrasings_html, report_html,
                                 verdict_html)
from quadrant.app.service import CheckService, MapDropped
from quadrant.app.studyinfo import dicom_facts
from quadrant.bank import load_bank
from quadrant import vocabulary
from quadrant.check import Checker, CheckOptions
from quadrant.errors import OptionError, QuestionError, StudyError
from quadrant.evidence import EvidenceOptions
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.models.presets import MODELS_DIR
from quadrant.paraphrases import parse_paraphrase_text
from quadrant.reliance import Reliance

SAMPLES = MODELS_DIR / "samples"
PATIENT_NAME, PATIENT_ID = "Zebulonova^Quintessa^Ilse", "MRN-99887766"


def identified_dicom(path: Path) -> Path:
    """The bundled DICOM sample with a patient's name, ID and birth date written into it."""
    ds = pydicom.dcmread(SAMPLES / "cardiomegaly-dicom.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19510203"
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def demo_checker() -> Checker:
    return Checker(load_model(ModelSpec("demo")))


# -- audit log ---------------------------------------------------------------------------------------------

def _verdict(quadrant: str = "Ideal", sha: str = "ab" * 32) -> dict:
    return {"quadrant": quadrant, "answer": "yes", "model": {"name": "demo", "fingerprint": "sha256:00"},
            "image": {"sha256": sha}, "prompts": [{"text": "Is there X?", "inverted": False},
                                                  {"text": "Is X present?", "inverted": False},
                                                  {"text": "Can X be ruled out?", "inverted": True}]}


def test_audit_log_is_append_only_on_a_real_file(tmp_path):
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path).open()
    first = log.record(_verdict(), user="alice")
    log.record(_verdict("Dangerous"))
    log.close()

    other = sqlite3.connect(path)  # a different connection, as anyone with the file would use
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for statement in ("UPDATE checks SET quadrant = 'Ideal' WHERE id = 2", "DELETE FROM checks WHERE id = 1",
                      "DELETE FROM checks"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute(statement)
    rows = other.execute("SELECT id, user, quadrant, question, paraphrases, verdict FROM checks ORDER BY id").fetchall()
    other.close()
    assert [(r[0], r[1], r[2]) for r in rows] == [(first, "alice", "Ideal"), (first + 1, None, "Dangerous")]
    assert rows[0][3] == "Is there X?"
    assert json.loads(rows[0][4]) == [{"text": "Is X present?", "inverted": False},
                                      {"text": "Can X be ruled out?", "inverted": True}]
    assert json.loads(rows[0][5])["image"]["sha256"] == "ab" * 32


def test_audit_log_lists_recent_checks_and_exports_csv(tmp_path):
    log = AuditLog(tmp_path / "a" / "audit.sqlite").open()  # the folder is made as needed
    for quadrant in ("Ideal", "Fragile", "Dangerous"):
        log.record(_verdict(quadrant))
    assert [row[8] for row in log.recent(2)] == ["Dangerous", "Fragile"]
    assert log.count() == 3
    lines = log.to_csv().splitlines()
    assert lines[0].startswith("id,time,user,model_name,model_fingerprint,image_sha256,question")
    assert len(lines) == 4 and ",Ideal," in lines[1]


def test_audit_csv_never_hands_a_spreadsheet_a_formula(tmp_path):
    """Questions are free text, and "@SUM(A1)?" or "=HYPERLINK(...)?" pass as yes/no questions."""
    log = AuditLog(tmp_path / "audit.sqlite").open()
    questions = ["@SUM(A1)?", '=HYPERLINK("http://example.com","Is there X?")?', "+Effusion?", "-Effusion?",
                 "Is there X?"]
    for question in questions:
        verdict = _verdict()
        verdict["prompts"] = [{"text": question, "inverted": False}] + verdict["prompts"][1:]
        log.record(verdict, user="=cmd")
    rows = list(csv.DictReader(io.StringIO(log.to_csv())))
    assert [row["question"] for row in rows] == ["'@SUM(A1)?", "'=HYPERLINK(\"http://example.com\",\"Is there X?\")?",
                                                 "'+Effusion?", "'-Effusion?", "Is there X?"]
    assert {row["user"] for row in rows} == {"'=cmd"}
    assert [json.loads(row["verdict"])["prompts"][0]["text"] for row in rows] == questions  # kept as typed
    assert [r[6] for r in reversed(log.recent(10))] == questions  # and so is the database


def test_audit_log_that_cannot_be_written_is_a_clear_option_error(tmp_path):
    (tmp_path / "not-a-db").write_text("plain text, not SQLite", encoding="utf-8")
    with pytest.raises(OptionError, match="audit log .*cannot be opened"):
        AuditLog(tmp_path / "not-a-db").open()


# -- batching and the service ------------------------------------------------------------------------------

def test_checks_waiting_together_are_scored_in_one_call_with_the_same_margins(demo_checker, tmp_path):
    service = CheckService({"demo": demo_checker}, AuditLog(tmp_path / "audit.sqlite").open(), max_batch=8)
    cases = [("cardiomegaly-effusion.png", "Is there a pleural effusion?"), ("nodule.png", "Is there a lung nodule?"),
             ("normal.png", "Is there cardiomegaly?"), ("pneumothorax.png", "Is there a pneumothorax?")]
    alone = [demo_checker.check(load_study(SAMPLES / f), q).to_json() for f, q in cases]
    # submitted before the worker starts: they wait together, as a burst of requests does
    from quadrant.app.service import _Job
    from quadrant.check import CheckRequest

    futures = [service.batcher.submit(_Job("demo", demo_checker.options, CheckRequest(load_study(SAMPLES / f), q)))
               for f, q in cases]
    service.start()
    try:
        together = [f.result(timeout=120).to_json() for f in futures]
    finally:
        service.stop()
    assert [v["timing_ms"]["studies_in_batch"] for v in together] == [4] * 4
    for one, many in zip(alone, together):
        assert many["quadrant"] == one["quadrant"]
        for a, b in zip(one["prompts"] + [one["text_only"]], many["prompts"] + [many["text_only"]]):
            assert abs(a["margin"] - b["margin"]) < 1e-4


def test_the_page_offers_the_models_bank_and_keeps_where_each_paraphrase_came_from(demo_checker, tmp_path):
    """`quadrant app --paraphrase-bank FILE`: the page's finding list and offered paraphrases come from that
    bank; sent back unedited they are the model's own set, and an edited set marks only the edited line."""
    bank_file = tmp_path / "bank.json"
    bank_file.write_text(json.dumps({"format": "quadrant-paraphrase-bank", "version": 1, "extends": True, "findings": {
        "derrame pleural": {"keywords": ["derrame pleural", "derrame"], "synonyms": ["derrame pleural", "derrame"],
                            "phrasings": ["¿Hay derrame pleural?", "¿Se observa derrame pleural?",
                                          "¿Existe derrame pleural?", "¿Hay signos de derrame pleural?",
                                          "¿Muestra la radiografía un derrame pleural?", "¿Hay derrame?"]}}}),
                         encoding="utf-8")
    checker = Checker(demo_checker.loaded, options=replace(demo_checker.options, bank=load_bank(bank_file), k=4))
    service = CheckService({"demo": checker}, None).start()
    try:
        assert "derrame pleural" in service.bank().names
        assert service.bank().questions["derrame pleural"] == "¿Hay derrame pleural?"
        offered = service.suggestions("¿Hay derrame pleural?")
        assert len(offered) == 4 and {p.source for p in offered} == {"bank"}
        assert service.suggestions("Describe the film.") == []  # not a yes/no question: nothing offered

        study = SAMPLES / "cardiomegaly-effusion.png"
        lines = [p.text for p in offered]
        own = service.check(study, "¿Hay derrame pleural?", "")
        unedited = service.check(study, "¿Hay derrame pleural?", "\n".join(lines))
        assert [(p["text"], p["source"]) for p in unedited["prompts"]] == \
               [(p["text"], p["source"]) for p in own["prompts"]]
        edited = service.check(study, "¿Hay derrame pleural?", "\n".join(lines[:3] + ["¿Hay líquido pleural?"]))
        assert [p["source"] for p in edited["prompts"]] == ["question", "bank", "bank", "bank", "user"]
    finally:
        service.stop()


def test_the_apps_evidence_settings_shape_every_map_it_draws(demo_checker):
    """`quadrant app --evidence-grid 4 --evidence-fill gray [--evidence]`: the toggle and the API draw maps that
    way; a check that does not say follows --evidence."""
    study = SAMPLES / "nodule.png"
    drawn = CheckService({"demo": demo_checker}, None, evidence_options=EvidenceOptions(4, "gray")).start()
    by_default = CheckService({"demo": demo_checker}, None, evidence_options=EvidenceOptions(3),
                              evidence_by_default=True).start()
    try:
        asked = drawn.check(study, "Is there a lung nodule?", evidence=True)["evidence"]
        assert asked["grid"] == [4, 4] and asked["fill"] == "gray" and len(asked["cells"]) == 16
        assert drawn.check(study, "Is there a lung nodule?").get("evidence") is None
        assert by_default.check(study, "Is there a lung nodule?")["evidence"]["grid"] == [3, 3]
        assert by_default.check(study, "Is there a lung nodule?", evidence=False).get("evidence") is None
    finally:
        drawn.stop()
        by_default.stop()
    mapping = Checker(demo_checker.loaded, options=CheckOptions(evidence=EvidenceOptions(2)))
    with pytest.raises(ValueError, match="check without maps"):  # a map in every check would bypass draw_map
        CheckService({"demo": mapping}, None)


def test_a_map_drawn_after_its_verdict_is_audited_in_a_row_naming_the_checks(demo_checker, tmp_path):
    """The page shows a verdict before its map is drawn, and the verdict's audit row is written before it is
    shown: the map, drawn after, is a row of its own in `evidence` naming that row (rows are never updated), and
    the CSV export carries it beside its verdict. The API's check with a map writes the same two rows."""
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path).open()
    service = CheckService({"demo": demo_checker}, log, evidence_options=EvidenceOptions(3)).start()
    study = SAMPLES / "nodule.png"
    try:
        checked = service.check_upload(study, "Is there a lung nodule?", user="alice")
        assert checked.verdict.evidence is None and checked.audit_id is not None
        mapped = service.draw_map(checked)
        api = service.check(study, "Is there cardiomegaly?", evidence=True)
    finally:
        service.stop()
    assert mapped.verdict.evidence["grid"] == [3, 3] and mapped.audit_id == checked.audit_id
    assert replace(mapped.verdict, evidence=None, timing_ms=checked.verdict.timing_ms) == checked.verdict
    assert api["evidence"]["grid"] == [3, 3]
    db = sqlite3.connect(path)
    checks = db.execute("SELECT id, user, verdict FROM checks ORDER BY id").fetchall()
    maps = db.execute("SELECT check_id, evidence FROM evidence ORDER BY id").fetchall()
    assert [(c[0], c[1]) for c in checks] == [(checked.audit_id, "alice"), (checked.audit_id + 1, None)]
    assert all("evidence" not in json.loads(c[2]) for c in checks)  # written before the map existed
    assert [m[0] for m in maps] == [c[0] for c in checks]
    assert json.loads(maps[0][1]) == mapped.verdict.evidence and json.loads(maps[1][1]) == api["evidence"]
    for statement in ("UPDATE evidence SET check_id = 2", "DELETE FROM evidence"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)
    db.close()
    rows = list(csv.DictReader(io.StringIO(log.to_csv())))
    assert [json.loads(row["evidence"]) for row in rows] == [mapped.verdict.evidence, api["evidence"]]
    log.close()


@contextmanager
def _forwards(module):
    """Counts `module`'s forwards while inside; `on_first` (set by the caller) runs in the first one."""
    seen = {"count": 0, "on_first": None}

    def hook(*_):
        seen["count"] += 1
        if seen["count"] == 1 and seen["on_first"] is not None:
            seen["on_first"]()

    handle = module.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def test_a_check_asked_while_a_map_is_drawn_waits_for_a_chunk_not_the_map(demo_checker):
    """A map goes to the model max_batch filled copies at a time, through the queue the checks use: a check
    asked while the map's first chunk is scored is answered while the map still has chunks to score, and the
    map is the one drawn in a single call."""
    service = CheckService({"demo": demo_checker}, None, max_batch=8, evidence_options=EvidenceOptions(8)).start()
    other: dict = {}

    def ask_another():  # from inside the map's first forward: queued once the model is busy with the map
        def check():
            other["verdict"] = service.check_upload(SAMPLES / "normal.png", "Is there cardiomegaly?").verdict
            other["forwards"] = seen["count"]
        thread = threading.Thread(target=check)
        thread.start()
        deadline = time.monotonic() + 30
        while not service.batcher.waiting() and time.monotonic() < deadline:
            time.sleep(0.005)
        other["thread"] = thread

    try:
        checked = service.check_upload(SAMPLES / "nodule.png", "Is there a lung nodule?")
        with _forwards(demo_checker.loaded.model) as seen:
            seen["on_first"] = ask_another
            mapped = service.draw_map(checked)
        other["thread"].join()
    finally:
        service.stop()
    assert other["verdict"].question == "Is there cardiomegaly?"
    assert other["forwards"] < seen["count"]  # the map's later chunks came after the check was answered
    (alone,) = demo_checker.draw_evidence([(checked.study, checked.verdict)], EvidenceOptions(8))
    assert [c["delta"] for c in mapped.verdict.evidence["cells"]] == pytest.approx(
        [c["delta"] for c in alone.evidence["cells"]], abs=1e-5)


def test_the_map_wait_tool_times_a_check_beside_a_map_both_ways(capsys):
    """`python -m quadrant.models.measure_map_wait`: one line per way of sending the map, with its figures."""
    from quadrant.models.measure_map_wait import main

    main(["--rounds", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["chunks of 8", "the map as one job"]
    assert all(re.search(r"took \d+ ms \(median of 1\), the map \d+\.\d\d s$", line) for line in lines), lines


def test_a_map_nobody_waits_for_stops_at_its_next_chunk(demo_checker, tmp_path):
    """The page asks, before each of the map's chunks, whether its verdict is still shown: cleared after two
    chunks, the map stops there (a quarter of a whole map's forwards, in chunks of 8 of 64), and no map is
    audited."""
    path = tmp_path / "audit.sqlite"
    service = CheckService({"demo": demo_checker}, AuditLog(path).open(), max_batch=8,
                           evidence_options=EvidenceOptions(8)).start()
    asked = []

    def still_wanted() -> bool:
        asked.append(True)
        return len(asked) <= 2

    try:
        checked = service.check_upload(SAMPLES / "nodule.png", "Is there a lung nodule?")
        with _forwards(demo_checker.loaded.model) as whole:
            service.draw_map(checked)
        with _forwards(demo_checker.loaded.model) as dropped, pytest.raises(MapDropped):
            service.draw_map(checked, still_wanted)
    finally:
        service.stop()
    assert len(asked) == 3 and dropped["count"] * 4 == whole["count"] > 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0] == 1  # the whole map's alone


def _page_drawing_maps(checker: Checker, tmp_path: Path):
    """A started service that draws 8 x 8 maps and audits to a file, the check tab's handlers on it, and the
    nodule sample uploaded to it (its path)."""
    from quadrant.app.check_tab import _Handlers
    from quadrant.app.downloads import DownloadFolders

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    nodule = uploads / "nodule.png"
    nodule.write_bytes((SAMPLES / "nodule.png").read_bytes())
    service = CheckService({"demo": checker}, AuditLog(tmp_path / "audit.sqlite").open(),
                           upload_dir=uploads, evidence_options=EvidenceOptions(8)).start()
    handlers = _Handlers(service, DownloadFolders(tmp_path / "downloads"), lambda request: None, lambda path: None)
    return service, handlers, nodule


def _page_clock() -> float:
    """Now on a page's clock (the app's PAGE_CLOCK_JS): milliseconds since the epoch."""
    return time.time() * 1000


def _press(handlers, question: str, request: gr.Request) -> None:
    """A press of Check, now, on a page that asks `demo` the model's own phrasings."""
    handlers.asking(question, "", question, "demo", _page_clock(), request)


def _page_check(handlers, path: Path, question: str, request: gr.Request, evidence: bool = False,
                press: bool = True):
    """The Check's handler as the page calls it after a press: `demo`, the default options, the model's own
    phrasings; Check pressed now, or (`press` False) the check of the last press the server heard."""
    if press:
        _press(handlers, question, request)
    return handlers.run(str(path), question, "", "demo", "", None, evidence, None, request)


def _clear(handlers, request: gr.Request) -> None:
    """The page's question changed, now."""
    handlers.cleared("the question or its phrasings changed")(_page_clock(), request)


def _nothing(shown: list) -> bool:
    """A check's outputs that leave the page as it is: one step, every output skipped (a first step with no output
    would set them all to None)."""
    return len(shown) == 1 and all(output == gr.skip() for output in shown[0])


def test_a_cleared_verdicts_map_stops_and_another_pages_does_not(demo_checker, tmp_path):
    """The page's wiring: the verdict is shown while its map is drawn; a change that clears that page's verdict
    stops its map (the check's generator ends with nothing more to show), while a clear on another page does
    not touch it."""
    service, handlers, nodule = _page_drawing_maps(demo_checker, tmp_path)
    page, elsewhere = gr.Request(session_hash="page"), gr.Request(session_hash="elsewhere")

    def run():
        return _page_check(handlers, nodule, "Is there a lung nodule?", page, evidence=True)

    try:
        shown = run()
        first = next(shown)[0]
        assert 'data-map="drawing"' in first and "quadrant-banner" in first and "The map is being drawn" in first
        _clear(handlers, elsewhere)
        assert "q-evidence-map" in list(shown)[-1][0]  # another page's clear: this map is drawn
        again = run()
        next(again)
        _clear(handlers, page)
        assert list(again) == []  # this page's clear: the map stops, nothing more is shown
    finally:
        service.stop()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0] == 1


def test_a_check_whose_verdict_was_cleared_while_it_ran_shows_nothing(demo_checker, tmp_path, monkeypatch):
    """The page's verdict cleared while its check is being made (another question typed, another study): the
    check finishes and is audited, as any check the model made, but shows nothing, the check itself as well as
    its map; a check begun after the clear shows its verdict."""
    service, handlers, nodule = _page_drawing_maps(demo_checker, tmp_path)
    page = gr.Request(session_hash="page")
    check_upload = service.check_upload

    def cleared_meanwhile(*args, **kwargs):
        checked = check_upload(*args, **kwargs)
        _clear(handlers, page)
        return checked

    def run(evidence: bool) -> list:
        return list(_page_check(handlers, nodule, "Is there a lung nodule?", page, evidence))

    try:
        monkeypatch.setattr(service, "check_upload", cleared_meanwhile)
        assert _nothing(run(False)) and _nothing(run(True))
        monkeypatch.setattr(service, "check_upload", check_upload)
        assert "quadrant-banner" in run(False)[0][0]
    finally:
        service.stop()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 3
        assert db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0] == 0


def test_check_pressed_during_a_check_of_the_same_inputs_shows_nothing_new_and_after_it_checks_again(demo_checker,
                                                                                                     tmp_path):
    """A double click: the page sends the second Check once the first has finished (Gradio's `always_last`),
    and it asks for the verdict the page already shows, so it makes no second check and no second audit row. A
    Check pressed after that verdict was in checks again. A Check sent late shows nothing when the page changed
    after it was pressed (its phrasings were read for the question then in the box), whenever the server heard
    of the change."""
    service, handlers, nodule = _page_drawing_maps(demo_checker, tmp_path)
    page, question = gr.Request(session_hash="page"), "Is there a lung nodule?"

    def run(asked: str = question) -> list:  # the check of the last press heard
        return list(_page_check(handlers, nodule, asked, page, press=False))

    try:
        _press(handlers, question, page)
        _press(handlers, question, page)  # a double click: both heard before the check runs
        assert "quadrant-banner" in run()[0][0]
        assert _nothing(run())  # the second press's turn, sent once that check had finished after it
        _press(handlers, question, page)  # pressed after its verdict was in
        assert "quadrant-banner" in run()[0][0]
        _press(handlers, question, page)
        _clear(handlers, page)
        assert _nothing(run("Is there a lung nodule or mass?"))
        late = _page_clock()  # a change made before the press, heard by the server after it
        _press(handlers, question, page)
        handlers.cleared("the question or its phrasings changed")(late, page)
        assert "quadrant-banner" in run()[0][0]
    finally:
        service.stop()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 3


def test_phrasings_refilled_after_a_press_the_server_has_not_heard_of_yet_keep_its_check(demo_checker, tmp_path,
                                                                                         monkeypatch):
    """Check pressed while a new question's phrasings were on their way, and the box refilled with them just after:
    the page sends both at once, and a loaded server may handle the refill first. The refill holds the set the
    press asks, so it waits for the press and clears nothing, and that check shows its verdict (judged against the
    press before, it cleared the verdict and dropped the check). An edit after it clears; so does a refill whose
    press the server never hears of, once the wait is over."""
    import quadrant.app.check_tab

    service, handlers, nodule = _page_drawing_maps(demo_checker, tmp_path)
    page, before, question = gr.Request(session_hash="page"), "Is there a lung nodule?", "Is there a pneumothorax?"
    try:
        assert "quadrant-banner" in list(_page_check(handlers, nodule, before, page))[0][0]
        offered, made = handlers.suggest(question, "demo")[0], _page_clock()
        refilled = {}
        waiting = threading.Thread(target=lambda: refilled.update(
            result=handlers.moved_away(offered, made, made + 50, page)))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive()  # the refill waits for the press the page made before it
        handlers.asking(question, handlers.suggest(before, "demo")[0], before, "demo", made, page)
        waiting.join(10)
        assert refilled["result"] == gr.skip() and handlers.sessions.last_press("page").asked == offered
        assert "quadrant-banner" in list(_page_check(handlers, nodule, question, page, press=False))[0][0]
        edited = offered + "\nIs there air in the pleural space?"
        assert handlers.moved_away(edited, made, made + 60, page) == repr(made + 60)
        monkeypatch.setattr(quadrant.app.check_tab, "PRESS_WAIT_SECONDS", 0.2)
        never = _page_clock()
        assert handlers.moved_away(offered, never, never + 10, page) == repr(never + 10)
    finally:
        service.stop()


def test_a_slow_map_shows_a_first_look_as_it_is_drawn(demo_checker, tmp_path, monkeypatch):
    """A map the page would wait for shows a first look as it is drawn: the verdict with the map's place saying it
    is being drawn, then the image hidden in blocks (named a first look, the report not yet offered), then the map
    itself, the full map's 64 cells after 68 questions. Only the finished map is audited."""
    import quadrant.app.check_tab

    monkeypatch.setattr(quadrant.app.check_tab, "FIRST_LOOK_SECONDS", 0.0)  # as if the map were slow
    service, handlers, nodule = _page_drawing_maps(demo_checker, tmp_path)
    try:
        shown = list(_page_check(handlers, nodule, "Is there a lung nodule?", gr.Request(session_hash="page"), True))
    finally:
        service.stop()
    panels = [html.unescape(update[0]) for update in shown]
    assert len(panels) == 3
    assert "The map is being drawn" in panels[0] and "up to 68 times" in panels[0]
    assert 'data-map="drawing"' in panels[1] and 'class="q-evidence-first-look"' in panels[1]
    assert "q-evidence-map" not in panels[1] and "A first look while the map is drawn (4 of up to 68" in panels[1]
    assert "quadrant-banner" in panels[1] and not shown[1][2].visible  # the report comes with the map
    assert 'class="q-evidence-map"' in panels[2] and "data-map" not in panels[2]
    assert "quadrant-evidence-status" not in panels[2] and shown[2][2].visible
    verdict = json.loads(Path(shown[2][3].value["path"]).read_text())
    assert verdict["evidence"]["forwards"] == 68 and len(verdict["evidence"]["cells"]) == 64
    assert all(set(cell) == {"box", "delta"} for cell in verdict["evidence"]["cells"])
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0] == 1


def test_a_first_look_is_shown_only_where_the_rest_of_the_map_takes_a_while():
    """Drawing a first look costs about a tenth of a second: it is worth it when the copies still to score, at the
    pace of those scored so far, take at least FIRST_LOOK_SECONDS."""
    from quadrant.app.check_tab import FIRST_LOOK_SECONDS, _worth_a_look

    assert FIRST_LOOK_SECONDS == 1.5
    assert _worth_a_look(0.115, 4, 68)  # a full-size film's first map: 1.84 s still to come
    assert not _worth_a_look(0.035, 4, 68)  # its next question's map, the copies' readings kept: 0.56 s
    assert not _worth_a_look(0.028, 4, 68)  # the bundled sample: 0.45 s
    assert not _worth_a_look(0.0, 0, 68) and not _worth_a_look(5.0, 68, 68)


def test_a_dicoms_results_follow_its_verdict_and_carry_the_map_the_page_drew(demo_checker, tmp_path, monkeypatch):
    """A DICOM upload's SR, SC and FHIR take longer than a follow-up check: the verdict (and then its map) is shown
    with them hidden, and they come in a last update that changes nothing else; the SC carries the map the page
    drew, which matplotlib draws once."""
    import quadrant.evidence_plot
    from quadrant.app.check_tab import _Handlers
    from quadrant.app.downloads import DownloadFolders
    from quadrant.results import source_from_bytes

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dicom = uploads / "study.dcm"
    dicom.write_bytes((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
    source = source_from_bytes(dicom.read_bytes(), "upload", "the results")
    service = CheckService({"demo": demo_checker}, None, upload_dir=uploads, evidence_options=EvidenceOptions(2)).start()
    handlers = _Handlers(service, DownloadFolders(tmp_path / "downloads"), lambda request: None, lambda path: source)
    drawn = []
    draw = quadrant.evidence_plot.overlay_png
    monkeypatch.setattr(quadrant.evidence_plot, "overlay_png", lambda *args: drawn.append(1) or draw(*args))
    try:
        plain, mapped = (list(_page_check(handlers, dicom, "Is there cardiomegaly?", gr.Request(session_hash="page"),
                                          evidence)) for evidence in (False, True))
    finally:
        service.stop()
    for updates in (plain, mapped[1:]):
        assert len(updates) == 2 and "quadrant-banner" in updates[0][0] and not updates[0][4].visible
        assert all(isinstance(output, type(gr.skip())) for output in updates[1][:4])
        assert sorted(file["orig_name"].split(".", 1)[1] for file in updates[1][4].value) == \
            ["fhir.json", "sc.dcm", "sr.dcm"]
    assert 'data-map="drawing"' in mapped[0][0] and "q-evidence-map" in mapped[1][0]
    assert len(drawn) == 1  # the page's map, carried by the SC


def test_results_that_fail_unexpectedly_leave_the_verdict_and_no_value_in_the_log(demo_checker, tmp_path,
                                                                                   monkeypatch, caplog):
    """A header no one foresaw can make a results library raise, quoting the value: the verdict stays on the
    page, and the log names the error's type and line, not its text."""
    import quadrant.app.check_tab
    from quadrant.app.check_tab import _Handlers
    from quadrant.app.downloads import DownloadFolders
    from quadrant.results import source_from_bytes

    def fails(*args, **kwargs):
        raise ValueError(f"Unable to convert '19510203' to 'DA' object for {PATIENT_NAME}")

    monkeypatch.setattr(quadrant.app.check_tab, "result_files", fails)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dicom = uploads / "study.dcm"
    dicom.write_bytes((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
    source = source_from_bytes(dicom.read_bytes(), "upload", "the results")
    service = CheckService({"demo": demo_checker}, None, upload_dir=uploads).start()
    handlers = _Handlers(service, DownloadFolders(tmp_path / "downloads"), lambda request: None, lambda path: source)
    try:
        with caplog.at_level(logging.WARNING, logger="quadrant.app"):
            updates = list(_page_check(handlers, dicom, "Is there cardiomegaly?", gr.Request(session_hash="page")))
    finally:
        service.stop()
    assert len(updates) == 1 and "quadrant-banner" in updates[0][0] and not updates[0][4].visible
    assert "no DICOM results for this check: unexpected ValueError at tests/test_app_parts.py:" in caplog.text
    assert "19510203" not in caplog.text and PATIENT_NAME.split("^")[0] not in caplog.text


def test_an_unexpected_refusal_shows_where_not_what():
    from quadrant.app.check_tab import _refused

    try:
        raise KeyError(PATIENT_ID)
    except KeyError as exc:
        shown = _refused(exc)
    assert "unexpected error (KeyError at tests/test_app_parts.py:" in shown and PATIENT_ID not in shown


def test_a_map_that_cannot_be_drawn_says_so_and_the_verdict_stands(demo_checker, tmp_path):
    """A model answering in generate mode has no margins to map: the page still shows its verdict, with the
    reason in the map's place, and offers the report and the verdict's download; no map is audited."""
    from quadrant.app.check_tab import _Handlers
    from quadrant.app.downloads import DownloadFolders

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "nodule.png").write_bytes((SAMPLES / "nodule.png").read_bytes())
    generating = Checker(demo_checker.loaded, options=CheckOptions(scoring="generate", k=2))
    service = CheckService({"demo": generating}, AuditLog(tmp_path / "audit.sqlite").open(), upload_dir=uploads).start()
    handlers = _Handlers(service, DownloadFolders(tmp_path / "downloads"), lambda request: None, lambda path: None)
    try:
        shown = list(_page_check(handlers, uploads / "nodule.png", "Is there a lung nodule?",
                                 gr.Request(session_hash="page"), True))
    finally:
        service.stop()
    assert len(shown) == 2 and 'data-map="drawing"' in shown[0][0]
    panel, printed, report, download = shown[1][:4]
    assert "quadrant-banner" in panel and "q-evidence-map" not in panel
    assert "The map could not be drawn (evidence maps need margins" in html.unescape(panel)
    assert "The verdict above stands." in panel
    assert printed.visible and report.visible and download.visible
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0] == 0


def test_an_audit_file_from_before_maps_had_rows_gains_their_table(tmp_path):
    """A file written before the `evidence` table existed opens, keeps its rows and takes maps; its checks
    export with an empty map."""
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path).open()
    first = log.record(_verdict())
    log.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER evidence_refuse_update; DROP TRIGGER evidence_refuse_delete; DROP TABLE evidence")
    db.close()
    log = AuditLog(path).open()
    second = log.record(_verdict("Dangerous"))
    log.record_evidence(second, {"grid": [2, 2]})
    rows = list(csv.DictReader(io.StringIO(log.to_csv())))
    log.close()
    assert [(int(r["id"]), r["evidence"]) for r in rows] == [(first, ""), (second, '{"grid": [2, 2]}')]


def test_a_follow_up_question_with_the_map_on_reuses_the_studys_prefix(demo_checker):
    """A clinician asks a second question of the same study with the evidence map on: that check runs under
    other options (a checker variant), which shares the base checker's scorer, so the study's prefix pass is
    not made again (no "prefix-shared" in its path), and its margins are a fresh checker's."""
    checker = Checker(demo_checker.loaded)
    service = CheckService({"demo": checker}, None).start()
    study = SAMPLES / "nodule.png"
    try:
        first = service.check(study, "Is there a lung nodule?")
        follow_up = service.check(study, "Is there a pleural effusion?", evidence=True)
    finally:
        service.stop()
    assert "prefix-shared" in first["timing_ms"]["path"]
    assert "prefix-shared" not in follow_up["timing_ms"]["path"] and "prefix-reused" in follow_up["timing_ms"]["path"]
    assert follow_up["evidence"]["cells"]
    fresh = Checker(demo_checker.loaded).check(load_study(study), "Is there a pleural effusion?").to_json()
    pairs = zip(follow_up["prompts"] + [follow_up["text_only"]], fresh["prompts"] + [fresh["text_only"]], strict=True)
    assert all(a["text"] == b["text"] and abs(a["margin"] - b["margin"]) < 1e-4 for a, b in pairs)


def test_service_refuses_files_outside_its_upload_folder_and_bad_input_alone(demo_checker, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "escape.png").symlink_to(SAMPLES / "nodule.png")
    (uploads / "study.png").write_bytes((SAMPLES / "nodule.png").read_bytes())
    service = CheckService({"demo": demo_checker}, None, upload_dir=uploads).start()
    try:
        with pytest.raises(StudyError, match="must be uploaded"):
            service.check(SAMPLES / "nodule.png", "Is there a lung nodule?")
        with pytest.raises(StudyError, match="must be uploaded"):
            service.check(uploads / "escape.png", "Is there a lung nodule?")
        with pytest.raises(QuestionError):
            service.check(uploads / "study.png", "Describe the image.")
        with pytest.raises(OptionError, match="reliance rule"):
            service.check(uploads / "study.png", "Is there a lung nodule?", rule="bogus")
        # a variant checker on the same weights: the threshold is a per-request option
        strict = service.check(uploads / "study.png", "Is there a lung nodule?", threshold=1000.0)
        assert strict["reliance"]["threshold"] == 1000.0
        assert service.check(uploads / "study.png", "Is there a lung nodule?")["answer"] == "yes"
    finally:
        service.stop()


def test_an_upload_is_decoded_once_for_its_preview_and_every_question(demo_checker, tmp_path):
    """The preview decodes a study and each question asked of it would decode it again (on a large DICOM ten
    times the model's work for a follow-up): the service keeps the last uploads decoded, by their bytes, so the
    same bytes under another name are the same study and other bytes are not; a file that cannot be decoded
    is refused every time."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name, source in (("a.dcm", "cardiomegaly-dicom.dcm"), ("copy.dcm", "cardiomegaly-dicom.dcm"),
                         ("other.png", "nodule.png")):
        (uploads / name).write_bytes((SAMPLES / source).read_bytes())
    (uploads / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    service = CheckService({"demo": demo_checker}, None, upload_dir=uploads).start()
    try:
        previewed = service.load_upload(uploads / "a.dcm")
        first = service.check_upload(uploads / "a.dcm", "Is there cardiomegaly?")
        second = service.check_upload(uploads / "copy.dcm", "Is there a pleural effusion?")
        other = service.load_upload(uploads / "other.png")
        for _ in range(2):
            with pytest.raises(StudyError):
                service.load_upload(uploads / "broken.png")
    finally:
        service.stop()
    assert first.study is previewed and second.study is previewed and other is not previewed
    assert other.format == "PNG" and previewed.format == "DICOM"
    fresh = Checker(demo_checker.loaded).check(load_study(SAMPLES / "cardiomegaly-dicom.dcm"),
                                               "Is there a pleural effusion?")
    assert [p.margin for p in second.verdict.prompts] == pytest.approx([p.margin for p in fresh.prompts], abs=1e-4)


def test_the_preview_sends_a_gray_picture_as_one_channel_with_the_same_pixels(tmp_path):
    """The model's picture goes to the page as a PNG: one channel for a radiograph (six times faster to encode
    than three, and smaller), three for a picture with colour; either decodes to what the model sees."""
    import base64

    import numpy as np
    from PIL import Image

    from quadrant.app.viewer import viewer_html

    colour = tmp_path / "colour.png"
    Image.fromarray(np.dstack([np.full((40, 50), v, np.uint8) for v in (200, 30, 30)])).save(colour)
    for path, mode in ((SAMPLES / "cardiomegaly-dicom.dcm", "L"), (SAMPLES / "nodule.png", "L"), (colour, "RGB")):
        study = load_study(path)
        page = viewer_html(study, path.read_bytes())
        encoded = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as sent:
            assert sent.mode == mode, path.name
            assert np.array_equal(np.asarray(sent.convert("RGB")), np.asarray(study.image)), path.name


# -- what the page shows -----------------------------------------------------------------------------------

def test_dicom_facts_are_technical_only(tmp_path):
    data = identified_dicom(tmp_path / "study.dcm").read_bytes()
    facts = dict(dicom_facts(data))
    assert facts["Modality"] == "CR" and facts["Photometric interpretation"] == "MONOCHROME2"
    shown = json.dumps(facts)
    assert PATIENT_NAME.split("^")[0] not in shown and PATIENT_ID not in shown and "1951" not in shown
    assert dicom_facts(b"not a dicom") == []


def test_verdict_html_escapes_text_and_folds_every_figure_into_details_with_a_gloss(demo_checker):
    study = load_study(SAMPLES / "cardiomegaly-effusion.png")
    verdict = demo_checker.check(study, "Is there a pleural effusion?")
    prompts = [verdict.prompts[0], replace(verdict.prompts[1], text="<script>alert(1)</script>"), *verdict.prompts[2:]]
    verdict = replace(verdict, prompts=prompts, reliance={**verdict.reliance, "reference": "blank", "scale": 1.25})
    page = verdict_html(verdict, uploaded="2026-12-03 10:00:00 UTC")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'data-quadrant="Ideal"' in page and "q-lit" in page and "Not for diagnostic use" in page
    details = re.search(r'<details id="quadrant-details".*?</details>', page, re.S).group(0)
    for label, gloss in (("Reliance reference", vocabulary.GLOSSES["reference"]),
                         ("Reliance scale", "a parameter of the reliance rule"),
                         ("Score with the study", vocabulary.GLOSSES["margin"]),
                         ("Time", vocabulary.GLOSSES["time"])):
        assert re.search(rf"<dt>{label}</dt><dd><span class=\"q-value\">[^<]+</span><span class=\"q-gloss\">"
                         rf"{re.escape(html.escape(gloss))}</span>", details), label
    assert f"{verdict.margin_shift:+.3f}" in details and "1.25" in details
    before = page[:page.index('<details')]  # plain language first: no margins or developer words above Details
    assert not re.search(r"margin|logit|ablation|packed|prefix|[+-]\d\.\d{3}", before, re.I)
    assert "&lt;b&gt;" in error_html("<b>")


def test_a_refusal_heading_names_what_was_refused():
    """A question refused is never shown as a study that could not be checked, nor the reverse."""
    from quadrant.app.render import CHECK_FAILED, refusal_title
    from quadrant.errors import OptionError, ParaphraseError, QuestionError, StudyNotFoundError, StudyScopeError

    assert refusal_title(QuestionError("not yes/no")) == "This question cannot be checked."
    assert refusal_title(StudyScopeError("a CT")) == refusal_title(StudyNotFoundError("gone")) == \
        "This study could not be checked."
    assert refusal_title(ParaphraseError("empty line")) == "These phrasings cannot be used."
    assert refusal_title(OptionError("bad rule")) == refusal_title(RuntimeError()) == CHECK_FAILED


def test_the_banner_restates_what_was_judged(demo_checker):
    verdict = demo_checker.check(load_study(SAMPLES / "nodule.png"), "Is there a lung nodule?")
    judged = html.unescape(re.search(r'<p class="q-judged".*?</p>', banner_html(verdict, "2026-12-03 10:00:00 UTC"),
                                     re.S).group(0))
    fingerprint = verdict.model["fingerprint"].removeprefix("sha256:")
    for part in ("\u201cIs there a lung nodule?\u201d", f"demo, version {fingerprint[:12]}", "PNG, 256 x 256 pixels",
                 f"image hash {verdict.image['sha256'][:12]}", "uploaded 2026-12-03 10:00:00 UTC"):
        assert part in judged, part


def test_the_banner_names_the_comparison_that_decided_under_each_rule(demo_checker):
    """demo, the consolidation study, "Is there cardiomegaly?": without any image the model says yes, with a
    blank image no. The content rule compares with the blank image (Dangerous); the flip rule with no image
    (Ideal). Each banner names its own comparison and marks that row, and neither says "the wording alone"."""
    study = load_study(SAMPLES / "consolidation.png")
    content = demo_checker.check(study, "Is there cardiomegaly?")
    flip = Checker(demo_checker.loaded, options=CheckOptions(reliance=Reliance("flip"))).check(
        study, "Is there cardiomegaly?")
    assert (content.answer, content.text_only.answer, content.content_free.answer) == ("no", "yes", "no")
    assert (content.quadrant, flip.quadrant) == ("Dangerous", "Ideal")
    for verdict, compared, decisive in (
            (content, "Decided by comparing the study with a blank mid-gray image of the same size: the chance "
                      "of \u201cyes\u201d was", "With a blank mid-gray image of the same size"),
            (flip, "Decided by asking the question with and without the image: \u201cno\u201d with it, "
                   "\u201cyes\u201d without it", "With no image at all")):
        page = html.unescape(verdict_html(verdict))
        banner = page[:page.index("</section>")]
        assert compared in banner and vocabulary.decided_by(verdict) in banner
        assert not re.search(r"wording alone|text alone|without looking", banner)
        rows = re.findall(r'<tr class=q-decisive><th scope="row">([^<]+)', page)
        assert [row.strip() for row in rows] == [decisive]


def test_rows_read_as_the_question_reads_them_and_disagreements_are_marked(demo_checker):
    """An inverted phrasing's answer is turned round before it is shown (its raw answer second); the one row
    that disagrees says so, in words."""
    phrasings = parse_paraphrase_text("Is there a pulmonary nodule?\n! Is the lung free of nodules?\n"
                                      "! Can a lung nodule be ruled out?")
    verdict = demo_checker.check(load_study(SAMPLES / "nodule.png"), "Is there a lung nodule?", phrasings)
    assert [p.answer for p in verdict.prompts] == ["yes", "yes", "no", "yes"] and verdict.flip_count == 1
    table = html.unescape(phrasings_html(verdict))
    rows = re.findall(r'<tr class="(q-agree|q-disagree)" data-answer="(\w+)">(.*?)</tr>', table)
    assert [(kind, reads) for kind, reads, _ in rows] == [("q-agree", "yes"), ("q-agree", "yes"), ("q-agree", "yes"),
                                                          ("q-disagree", "no")]
    assert "the model said \u201cno\u201d to it" in rows[2][2] and "disagrees" not in rows[2][2]
    assert "the model said \u201cyes\u201d to it" in rows[3][2] and "disagrees" in rows[3][2]
    assert "1 of 3 phrasings disagree with your question's answer" in table


def test_a_verdict_out_of_scope_is_grey_and_never_a_quadrant(demo_checker):
    """Under a research override a verdict carries scope.in_scope = false: its banner is grey, says so, and
    lights no quadrant, however Ideal its figures are."""
    ideal = demo_checker.check(load_study(SAMPLES / "nodule.png"), "Is there a lung nodule?")
    assert ideal.quadrant == "Ideal"
    scoped = replace(ideal, scope={"in_scope": False, "reasons": ["modality CT is not a chest radiograph"],
                           "verified_from_header": True, "frame": None})
    page = verdict_html(scoped)
    assert 'class="q-banner q-grey"' in page and 'data-state="out-of-scope"' in page
    assert "OUT OF SCOPE, RESEARCH ONLY" in page and "IDEAL" not in page and "q-lit" not in page
    assert "modality CT is not a chest radiograph" in page and html.escape(vocabulary.OUT_OF_SCOPE_ADVICE) in page
    in_scope = replace(ideal, scope={"in_scope": True})
    assert 'class="q-banner q-green"' in verdict_html(in_scope)


def test_the_report_holds_what_a_printout_needs_and_no_identifier(demo_checker, tmp_path):
    dicom = identified_dicom(tmp_path / "study.dcm")
    data = dicom.read_bytes()
    study = load_study(dicom)
    verdict = demo_checker.check(study, "Is there cardiomegaly?")
    page = html.unescape(report_html(verdict, css="", study_facts=dicom_facts(data), checked="2026-12-03 10:01 UTC",
                                     user="clinician", uploaded="2026-12-03 10:00 UTC"))
    for part in ("Is there cardiomegaly?", vocabulary.model_line(verdict.model), verdict.model["fingerprint"],
                 "Modality", "CR", "2026-12-03 10:01 UTC", "clinician", NOT_FOR_DIAGNOSIS, "IDEAL ANSWER"):
        assert part in page, part
    for identifier in (PATIENT_NAME.split("^")[0], PATIENT_ID, "19510203"):
        assert identifier not in page


def test_each_phrasing_says_where_it_came_from(demo_checker):
    study = load_study(SAMPLES / "nodule.png")
    verdict = demo_checker.check(study, "Based on this film, is there a nodule?")
    sources = [p.source for p in verdict.prompts]
    assert sources[0] == "question" and {"bank", "rewrite"} <= set(sources[1:])
    rows = re.findall(r"<tr[^>]*><td>(\d)</td><td>(.*?)</td>", verdict_html(verdict))
    assert [index for index, _ in rows] == [str(i) for i in range(len(sources))]
    assert "q-tag" not in rows[0][1]  # the question as asked is not marked
    for (_, cell), source in zip(rows[1:], sources[1:]):
        assert f'<span class="q-tag">{SOURCE_NOTES[source]}</span>' in cell
    onnx = replace(verdict, model={**verdict.model, "backend": "onnx", "provider": "CPUExecutionProvider"})
    assert "(llava, onnx, cpu, float32, CPUExecutionProvider)" in verdict_html(onnx)
    summary = "int8, 99.2% of verdicts as its float32 source on 200 phantoms"
    checked = replace(onnx, model={**onnx.model, "validation": {"summary": summary}})
    assert "Export checked" not in verdict_html(onnx) and summary in verdict_html(checked)


def test_download_folders_emptied_by_the_sweep_are_removed_and_no_other(tmp_path):
    """Gradio's sweep deletes old download files but leaves their folders: making a new folder removes the
    empty ones old enough to have been swept, and leaves a fresh empty one (about to be filled) and any that
    still hold a file."""
    import os
    import time

    from quadrant.app.downloads import EMPTY_FOR_S, DownloadFolders

    root = tmp_path / "downloads"
    swept, fresh, full = root / "swept", root / "fresh", root / "full"
    for folder in (swept, fresh, full):
        folder.mkdir(parents=True)
    (full / "report.html").write_text("<p>kept</p>", encoding="utf-8")
    old = time.time() - EMPTY_FOR_S - 3600
    for folder in (swept, full):
        os.utime(folder, (old, old))
    folders = DownloadFolders(root)
    made = folders.new()
    assert made.is_dir() and not any(made.iterdir())
    assert sorted(p.name for p in root.iterdir()) == sorted(["fresh", "full", made.name])
    again = folders.new()  # each download its own folder
    assert made.is_dir() and again.is_dir() and again != made


def test_a_study_warmed_on_upload_is_checked_without_its_prefix_pass(demo_checker, tmp_path):
    """The page has the model read a study when it is uploaded, while the question is typed: its first check
    then makes no prefix pass (no "prefix-shared" in its path) and gives a fresh checker's margins. A study
    whose check would be refused as out of scope is not read."""
    from PIL import Image

    checker = Checker(demo_checker.loaded)
    service = CheckService({"demo": checker}, None).start()
    study = SAMPLES / "nodule.png"
    try:
        service.warm(load_study(study)).result(timeout=60)
        assert len(checker.scorer._study_prefixes) == 1
        verdict = service.check(study, "Is there a lung nodule?")
        Image.new("RGB", (128, 128), (200, 30, 30)).save(tmp_path / "colour.png")
        service.warm(load_study(tmp_path / "colour.png")).result(timeout=60)
    finally:
        service.stop()
    assert "prefix-shared" not in verdict["timing_ms"]["path"] and "prefix-reused" in verdict["timing_ms"]["path"]
    assert len(checker.scorer._study_prefixes) == 1  # the colour picture was not read
    fresh = Checker(demo_checker.loaded).check(load_study(study), "Is there a lung nodule?").to_json()
    pairs = zip(verdict["prompts"] + [verdict["text_only"]], fresh["prompts"] + [fresh["text_only"]], strict=True)
    assert all(a["text"] == b["text"] and abs(a["margin"] - b["margin"]) < 1e-4 for a, b in pairs)


def test_with_the_map_on_an_uploads_copies_are_read_before_its_first_map(demo_checker, monkeypatch):
    """With the map on, the upload's reading includes the copies its map fills (a first look's blocks and every
    cell): its first map then reads no copy, and is the map of a checker that read nothing ahead."""
    checker = Checker(demo_checker.loaded)
    service = CheckService({"demo": checker}, None, evidence_options=EvidenceOptions()).start()
    study = SAMPLES / "nodule.png"
    try:
        service.warm(load_study(study), evidence=True).result(timeout=60)
        assert len(checker.scorer._copy_readings) == 68
        monkeypatch.setattr(checker.loaded.family, "read_image", _no_copy_read)
        checked = service.check_upload(str(study), "Is there a lung nodule?", "")
        *_, (mapped, _) = service.map_stages(checked, first_look=True)
    finally:
        service.stop()
    monkeypatch.undo()
    fresh = Checker(demo_checker.loaded, options=CheckOptions(evidence=EvidenceOptions()))
    expected = fresh.check(load_study(study), "Is there a lung nodule?").evidence["cells"]
    assert [c["delta"] for c in mapped.verdict.evidence["cells"]] == \
        pytest.approx([c["delta"] for c in expected], abs=1e-5)


def _no_copy_read(processor, rendered, image):
    raise AssertionError("a copy was read at its map")


def test_reading_a_maps_copies_ahead_stops_when_a_check_is_queued(demo_checker):
    """A map's copies are read a chunk at a time (the app's batch of copies), asking between chunks whether
    anything waits: a check queued meanwhile waits for one chunk, not for the map's 68 copies."""
    checker = Checker(demo_checker.loaded)
    study = load_study(SAMPLES / "nodule.png")
    answers = iter([True, False])
    read = checker.warm_map(study, EvidenceOptions(), first_look=True, still_wanted=lambda: next(answers), chunk=8)
    assert read == 8 == len(checker.scorer._copy_readings)  # the first chunk, then no more
    assert checker.warm_map(study, EvidenceOptions(), first_look=True) == 68


def test_warm_ups_are_dropped_while_anything_is_queued_behind_them(demo_checker, tmp_path):
    """A flood of uploads must not hold a check back: a warm-up is dropped while anything is queued behind its
    batch, and done when nothing is. Three uploads and a check queue up before the model's thread starts, two
    to a batch: the first two warm-ups are dropped, the check runs, the third warm-up is done after it."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import write_png

    checker = Checker(demo_checker.loaded)
    service = CheckService({"demo": checker}, None, max_batch=2)  # not started yet: everything queues
    paths = [write_png(tmp_path / f"{seed}.png", seed) for seed in range(100, 104)]
    warmed = [service.warm(load_study(path)) for path in paths[:3]]
    with ThreadPoolExecutor(1) as pool:
        checked = pool.submit(service.check, paths[3], "Is there a lung nodule?")
        deadline = time.monotonic() + 30
        while service.batcher._queue.qsize() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        service.start()
        try:
            checked.result(timeout=60)
            for future in warmed:
                future.result(timeout=60)
        finally:
            service.stop()
    read = {key[0] for key in checker.scorer._study_prefixes}
    assert read == {load_study(paths[2]).pixels_sha256, load_study(paths[3]).pixels_sha256}
