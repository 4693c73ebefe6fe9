"""What a clinician sees and does on the page, in a real browser (Playwright on Debian's chromium) against a
real `quadrant app`: one verdict for one study (anything it depended on clears it, a check still running for
old inputs included), the banner's comparison per rule, rows read as the question reads them, the evidence
legend for a 'no', the study view, the one-page report, and accessibility (axe-core, the Check button in view
at 1366 x 768, nothing clipped at 400 px, keyboard focus kept).

One server and one page serve the module; each test sets up the inputs it needs. axe-core comes from npm:
`.ci/run` installs it (AXE below); a missing axe-core, browser or server FAILS these tests. Screenshots of
each state go to test-artifacts/.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from quadrant.images.dicom import grayscale_values
from test_app_parts import identified_dicom
import test_app_server
from test_app_server import ARTIFACTS, PASSWORD, SAMPLES, USER

pytestmark = pytest.mark.slow  # a real server and a real browser
AXE = Path(os.environ.get("QUADRANT_AXE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
           / "quadrant" / "npm" / "node_modules" / "axe-core" / "axe.min.js")
WIDE, NARROW = {"width": 1366, "height": 768}, {"width": 400, "height": 900}
#: the fixtures of the server tests: Debian's chromium, headless; a `quadrant app` for this module
browser_type_launch_args = test_app_server.browser_type_launch_args
server = test_app_server.server


@pytest.fixture(scope="module")
def app(browser, server):
    """One signed-in page at 1366 x 768 for the module."""
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    assert context.request.post(server.url + "login", form={"username": USER, "password": PASSWORD}).ok
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("#run", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    yield page
    context.close()


def upload(page, path: Path) -> None:
    if page.locator("#study button[aria-label=Clear]").count():  # a study is loaded: take it away first
        page.locator("#study button[aria-label=Clear]").click()
        # and see its view go, else the old study's ready view could pass for the new one's below
        page.wait_for_selector("#viewer .q-viewer-empty", timeout=30_000)
    page.locator("#study input[type=file]").set_input_files(str(path))
    page.wait_for_function("(name) => document.querySelector('#study').innerText.includes(name) && "
                           "document.querySelector('#viewer .q-viewer[data-ready]')", arg=path.stem,
                           timeout=60_000)


def ask(page, question: str, paraphrases: str | None = None) -> None:
    """Type the question and wait for the phrasings offered for it to replace the last question's; then keep
    them, or write `paraphrases` over them. (A Check pressed before they land is its own test.)"""
    box = page.locator("#paraphrases textarea")
    field = page.locator("#question textarea, #question input").first
    before, same = box.input_value(), field.input_value() == question
    field.fill(question)
    if not same:
        try:
            page.wait_for_function("(before) => document.querySelector('#paraphrases textarea').value !== before",
                                   arg=before, timeout=5_000)
        except PlaywrightTimeoutError:  # the same lines as the last question's
            pass
    if paraphrases is None:  # keep the offered set
        page.wait_for_function("document.querySelector('#paraphrases textarea').value.length > 0", timeout=30_000)
    else:
        box.fill(paraphrases)


def choose(page, model: str = "demo", evidence: bool = False) -> None:
    page.locator("#model").get_by_label(model, exact=True).check()
    page.locator("#evidence-toggle input").set_checked(evidence)


def check(page, quadrant: str | None = None) -> str:
    """Press Check and wait for a new verdict (each has its own id), with its map when one was asked for (not
    the verdict shown while the map is drawn); its banner's text."""
    old = page.evaluate("document.querySelector('#verdict .q-verdict')?.dataset.check || ''")
    page.locator("#run").click()
    selector = f".q-verdict:not([data-check='{old}']):not([data-map]) #quadrant-banner"
    page.wait_for_selector(selector + (f"[data-quadrant={quadrant}]" if quadrant else ""), timeout=120_000)
    assert not page.evaluate("document.body.classList.contains('q-stale-verdict')")  # its buttons may show
    return page.locator("#quadrant-banner").inner_text()


def cleared(page, because: str) -> None:
    """The verdict, its map and its files are gone, and the page says why."""
    try:
        page.wait_for_selector(f"#quadrant-placeholder[data-changed='{because}']", timeout=30_000)
    except PlaywrightTimeoutError:  # say what the page shows instead: this has failed only under load
        shot(page, "not-cleared")
        shown = page.evaluate("(() => { const v = document.querySelector('#verdict'); return v ? "
                              "[v.innerText.slice(0, 400), [...v.querySelectorAll('[data-changed]')]"
                              ".map(e => e.dataset.changed), document.body.className] : null; })()")
        raise AssertionError(f"no placeholder saying {because!r}; the verdict's place shows {shown!r} "
                             f"(test-artifacts/page-not-cleared.png)") from None
    assert page.locator("#quadrant-banner, #quadrant-error, #quadrant-evidence").count() == 0
    for button in ("#verdict-json", "#report-html", "#print-report", "#dicom-results"):
        assert not page.locator(button).is_visible(), button
    # and stay hidden whatever of the old check still comes, until a new check's verdict
    assert page.evaluate("document.body.classList.contains('q-stale-verdict')")


def settled(page, selector: str, quiet: float = 2.0) -> str:
    """An input's value once it has stopped changing for `quiet` seconds (the page's own updates are in)."""
    value, since = None, time.monotonic()
    while True:
        now = page.locator(selector).input_value()
        if now != value:
            value, since = now, time.monotonic()
        elif value and time.monotonic() - since >= quiet:
            return value
        page.wait_for_timeout(200)


def posted_data(route) -> list | None:
    """The `data` of a call the page posts (None for anything else: an upload, a GET)."""
    body = route.request.post_data or ""
    return json.loads(body).get("data") if body.startswith("{") else None


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)


def test_the_check_button_is_in_view_at_1366_by_768(app):
    box = app.locator("#run").bounding_box()
    assert app.evaluate("window.scrollY") == 0 and box["y"] >= 0 and box["y"] + box["height"] <= WIDE["height"]
    app.screenshot(path=str(ARTIFACTS / "page-start-1366.png"))


def test_an_uploads_progress_stream_is_answered(app, tmp_path):
    """The page follows each upload on a stream of its own (its progress bar): the stream is answered and
    ends, where it was a 404 once the app answered uploads itself."""
    rng = np.random.default_rng(20261206)
    Image.fromarray(rng.integers(0, 256, (768, 768), dtype=np.uint8)).save(tmp_path / "progress.png")
    answered = []

    def progress(response):
        if "/upload_progress" in response.url:
            answered.append(response.status)

    app.on("response", progress)
    try:
        upload(app, tmp_path / "progress.png")
        app.wait_for_timeout(500)
    finally:
        app.remove_listener("response", progress)
    assert answered and set(answered) == {200}, answered


def test_the_model_reads_an_uploaded_study_while_the_question_is_typed(app, server, tmp_path):
    """A study the server has not seen: once its preview is in, the model has read its image, so its first
    check makes no prefix pass of its own (the audit row's path has no "prefix-shared"); and so has another
    model once it is chosen."""
    rng = np.random.default_rng(20261204)
    Image.fromarray(np.stack([rng.integers(0, 256, (96, 96), dtype=np.uint8)] * 3, axis=-1)).save(tmp_path / "new.png")
    upload(app, tmp_path / "new.png")
    app.wait_for_timeout(2000)  # the model reads it on its own thread
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo")
    check(app)
    path = server.last_verdict()["timing_ms"]["path"]
    assert "prefix-shared" not in path and "prefix-reused" in path, path
    choose(app, "demo-shortcut")
    app.wait_for_timeout(2000)
    check(app)
    verdict = server.last_verdict()
    assert verdict["model"]["name"] == "demo-shortcut" and "prefix-shared" not in verdict["timing_ms"]["path"]


def test_a_verdict_goes_when_anything_it_depended_on_changes(app, server):
    upload(app, SAMPLES / "cardiomegaly-effusion.png")
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo")
    banner = check(app, "Ideal")
    judged = app.locator("#quadrant-judged").inner_text()
    assert "\u201cIs there a pleural effusion?\u201d" in judged and "demo, version 6687c8bc52c9" in judged
    assert re.search(r"PNG, 256 x 256 pixels, image hash [0-9a-f]{12}, uploaded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", judged)
    assert "IDEAL ANSWER" in banner
    shot(app, "ideal")

    for change, because in (
            (lambda: app.locator("#question textarea, #question input").first.fill("Is there cardiomegaly?"),
             "the question or its phrasings changed"),
            (lambda: app.locator("#paraphrases textarea").fill("Is the heart enlarged?\nIs cardiomegaly present?"),
             "the question or its phrasings changed"),
            (lambda: app.locator("#model").get_by_label("demo-shortcut", exact=True).check(), "the model changed"),
            (lambda: app.locator("#evidence-toggle input").check(), "an option changed"),
            (lambda: upload(app, SAMPLES / "normal.png"), "the study changed")):
        check(app)
        change()
        cleared(app, because)
    shot(app, "cleared")

    # a refusal shows its message in place of a verdict, and goes like one
    check(app)
    ask(app, "Describe the film.", paraphrases="")
    app.locator("#run").click()
    app.wait_for_selector("#verdict #quadrant-error", timeout=60_000)
    assert "yes or no" in app.locator("#quadrant-error").inner_text()
    assert app.locator("#quadrant-error b").inner_text() == "This question cannot be checked."  # not the study
    assert app.locator("#quadrant-banner").count() == 0
    shot(app, "refused")
    ask(app, "Is there cardiomegaly?")
    cleared(app, "the question or its phrasings changed")

    # a check still running when its question changes never shows its verdict
    before = server.audit_rows()
    app.locator("#run").click()  # with the evidence map on: seconds of work
    app.wait_for_timeout(300)
    app.locator("#question textarea, #question input").first.fill("Is there a pneumothorax?")
    deadline = time.monotonic() + 120
    while server.audit_rows() == before and time.monotonic() < deadline:  # the old check finishes on the server
        time.sleep(0.2)
    assert server.audit_rows() == before + 1
    app.wait_for_timeout(1500)
    cleared(app, "the question or its phrasings changed")

    check(app)
    app.locator("#new-check").click()  # clears the study, the question and its phrasings, and so the verdict
    app.wait_for_selector("#quadrant-placeholder:not([data-changed=''])", timeout=30_000)
    # the verdict's clear comes first, the viewer empties next
    app.wait_for_selector("#viewer canvas", state="detached", timeout=30_000)
    assert app.locator("#quadrant-banner").count() == 0
    assert app.locator("#question textarea, #question input").first.input_value() == ""


def test_check_pressed_while_the_last_check_still_runs_is_answered_and_a_double_click_checks_once(app, server,
                                                                                                   tmp_path):
    """The question changed while its check's map is being drawn, and Check pressed at once: the page answers
    with the new question's verdict once the old check has stopped (it shows nothing more), never dropping the
    click; and it never asks Gradio to cancel anything (a cancel stops every run of the check's function in the
    session, a Check sent just before it was handled included, which left a Check unanswered on a loaded server).
    Then a double click makes one check."""
    rng = np.random.default_rng()
    y, x = np.mgrid[0:1024, 0:1024]
    smooth = (127 + 100 * np.sin(x / rng.uniform(40, 80) + rng.uniform(0, 6)) * np.cos(y / 90)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "new-film.png")  # a study the model has read nothing of
    cancels = []

    def cancelling(request):
        if "/cancel" in request.url or "/reset" in request.url:
            cancels.append(request.url)

    app.on("request", cancelling)
    try:
        _check_while_the_last_runs_then_double_click(app, server, tmp_path / "new-film.png")
    finally:
        app.remove_listener("request", cancelling)
    assert cancels == []


def _check_while_the_last_runs_then_double_click(app, server, film: Path) -> None:
    upload(app, film)
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo", evidence=True)
    checks = server.audit_rows()
    app.locator("#run").click()
    app.wait_for_selector(".q-verdict[data-map=drawing] #quadrant-banner", timeout=60_000)
    app.locator("#question textarea, #question input").first.fill("Is there cardiomegaly?")
    app.locator("#run").click()
    app.wait_for_function("() => { const judged = document.querySelector('.q-verdict:not([data-map]) #quadrant-judged');"
                          " return !!judged && judged.innerText.includes('cardiomegaly'); }", timeout=120_000)
    assert app.locator("#quadrant-evidence img.q-evidence-map").count() == 1
    assert server.audit_rows() == checks + 2  # the old check was made (and audited), only the new one shown
    shot(app, "checked-while-the-last-ran")

    choose(app, "demo")
    old = app.evaluate("document.querySelector('#verdict .q-verdict')?.dataset.check || ''")
    checks = server.audit_rows()
    app.locator("#run").dblclick()
    app.wait_for_selector(f".q-verdict:not([data-check='{old}']) #quadrant-banner", timeout=60_000)
    app.wait_for_timeout(1500)  # a second check would have been sent by now
    assert server.audit_rows() == checks + 1
    # and the second press left the verdict as it was (a handler that gives Gradio no output blanks every one)
    assert app.locator("#quadrant-banner").count() == 1
    assert app.locator("#print-report").inner_text().strip() == "Print the report"


def test_a_verdict_reaching_the_page_after_its_question_changed_is_turned_away(app, server):
    """The server made a check and sent its verdict before it heard that the question changed, and the page got
    the change's placeholder first (the page's event stream held back here, as a loaded network or server
    delivers it): the verdict is not shown, the placeholder that names the change stays, and the verdict's
    buttons stay hidden. The question was typed before the press too, so the change's placeholder is the one
    the page already showed: the server's answer to the change changes nothing on the page."""
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?")
    choose(app, "demo")
    cleared(app, "the question or its phrasings changed")
    held = []

    def hold(route):
        held.append(route)

    app.route("**/gradio_api/queue/data**", hold)
    try:
        app.locator("#run").click()
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:
            app.wait_for_timeout(100)
        # the whole stream, fetched from the server but not yet given to the page: the check made and sent
        first = held.pop(0)
        stream = first.fetch(timeout=60_000)
        assert "data-pressed" in stream.text(), stream.text()[:500]
        app.locator("#question textarea, #question input").first.fill("Is there cardiomegaly?")
        cleared(app, "the question or its phrasings changed")
        assert "cardiomegaly" in settled(app, "#paraphrases textarea").lower()
        app.wait_for_timeout(1000)  # the new phrasings' clear answered too: the change has nothing left to send
        first.fulfill(response=stream)
    finally:
        app.unroute("**/gradio_api/queue/data**", hold)
        for route in held:
            route.continue_()
    app.wait_for_function("document.body.classList.contains('q-stale-verdict')", timeout=30_000)  # turned away
    cleared(app, "the question or its phrasings changed")
    shot(app, "verdict-turned-away")


def test_check_pressed_before_a_new_questions_phrasings_arrive_checks_it_with_its_own(app, server):
    """Check pressed while a new question's phrasings are on their way (the page's request for them held back):
    the box still holds the last question's. The check is the new question's with its own phrasings, the ones
    the box then fills with. They land once the check runs (its evidence map makes it slow; on a machine
    fast enough to finish first, once its verdict is in): the box then shows what the check asks, so the check
    is neither cancelled nor its verdict cleared; an edit of the box afterwards clears it."""
    upload(app, SAMPLES / "cardiomegaly-effusion.png")
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo")
    check(app)
    choose(app, "demo", evidence=True)
    held = []

    def hold(route):  # the phrasings' request: the new question and the model, nothing else
        if posted_data(route) == ["Is there a pneumothorax?", "demo"]:
            held.append(route)
        else:
            route.continue_()

    app.route("**/gradio_api/**", hold)
    try:
        app.locator("#question textarea, #question input").first.fill("Is there a pneumothorax?")
        app.wait_for_timeout(1000)
        assert held and "effusion" in app.locator("#paraphrases textarea").input_value()
        old = app.evaluate("document.querySelector('#verdict .q-verdict')?.dataset.check || ''")
        app.locator("#run").click()
        app.wait_for_selector("#verdict [data-testid=status-tracker]:not(.hide)", timeout=30_000)  # it runs
        for route in held:
            route.continue_()
        app.wait_for_selector(f".q-verdict:not([data-check='{old}']) #quadrant-evidence", timeout=120_000)
        offered = settled(app, "#paraphrases textarea")
    finally:
        app.unroute("**/gradio_api/**")
    assert app.locator(f".q-verdict:not([data-check='{old}']) #quadrant-banner").count() == 1  # and stays
    assert "\u201cIs there a pneumothorax?\u201d" in app.locator("#quadrant-judged").inner_text()
    rows = app.locator("#quadrant-phrasings tr[data-answer]").all_inner_texts()
    shot(app, "checked-before-phrasings-landed")
    assert len(rows) == 6 and not any("effusion" in row or "fluid" in row for row in rows), rows
    assert "pneumothorax" in offered and all(line in " ".join(rows) for line in offered.splitlines()), (offered, rows)
    choose(app, "demo")
    audited = server.audit_rows()
    check(app)  # asked again, the same phrasings
    assert app.locator("#quadrant-phrasings tr[data-answer]").all_inner_texts()[1:] == rows[1:]
    assert server.audit_rows() == audited + 1
    app.locator("#paraphrases textarea").fill(offered + "\nIs there air in the pleural space?")
    cleared(app, "the question or its phrasings changed")


def test_check_pressed_just_before_the_phrasings_land_is_answered_when_the_server_hears_the_press_last(app, server):
    """As above, and the server hears the box's refill before the press (the page sends both at once; a loaded
    server answers them in either order): the refill is the set the press asks, so it clears nothing and the check
    is answered. (The refill judged against the press before cleared the verdict, and the check was dropped.)"""
    upload(app, SAMPLES / "cardiomegaly-effusion.png")
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo")
    check(app)
    question, held, refills = "Is there a pneumothorax?", {}, []

    def hold(route):
        data = posted_data(route)
        if data == [question, "demo"]:  # the new question's phrasings
            held["phrasings"] = route
        elif data and len(data) == 5 and data[0] == question:  # the press: the question, its phrasings, ...
            held["press"] = route
        else:
            if data and len(data) == 3 and "pneumothorax" in str(data[0]):  # the box's refill, judged
                refills.append(data)
            route.continue_()

    app.route("**/gradio_api/**", hold)
    try:
        app.locator("#question textarea, #question input").first.fill(question)
        old = app.evaluate("document.querySelector('#verdict .q-verdict')?.dataset.check || ''")
        app.wait_for_timeout(500)
        app.locator("#run").click()
        deadline = time.monotonic() + 30
        while len(held) < 2 and time.monotonic() < deadline:
            app.wait_for_timeout(100)
        assert set(held) == {"phrasings", "press"}
        held.pop("phrasings").continue_()
        deadline = time.monotonic() + 30
        while not refills and time.monotonic() < deadline:
            app.wait_for_timeout(100)
        assert refills and "pneumothorax" in app.locator("#paraphrases textarea").input_value()
        app.wait_for_timeout(1000)  # the refill handled first
        held.pop("press").continue_()
        app.wait_for_selector(f".q-verdict:not([data-check='{old}']) #quadrant-banner", timeout=60_000)
    finally:
        for route in held.values():
            route.continue_()
        app.unroute("**/gradio_api/**")
    assert "\u201cIs there a pneumothorax?\u201d" in app.locator("#quadrant-judged").inner_text()
    assert app.locator("#quadrant-placeholder").count() == 0


def test_the_same_upload_announced_again_is_no_change_of_the_study(app):
    """On a loaded server the page announces its study again, the same file each time, while a check that reads it
    is under way (a dozen times in three seconds, seen in the server's handlers): each announcement stamped a clear
    after the Check pressed meanwhile, and that check showed nothing. The page's rule, run in the page: a change
    of the study clears unless the same upload is still in place; a new upload, or none, does."""
    from quadrant.app.check_tab import STUDY_CHANGED_JS

    stamps = app.evaluate(f"""() => {{
      const changed = {STUDY_CHANGED_JS};
      delete window.quadrantStudy;
      const file = (path, url) => ({{path, url, orig_name: 'study.png', meta: {{_type: 'gradio.FileData'}}}});
      return [changed(0, file('/up/a', 'u1')), changed(0, file('/up/a', 'u2')), changed(0, null), changed(0, null),
              changed(0, file('/up/a', 'u1')), changed(0, file('/up/b', 'u1'))].map(([at]) => at);
    }}""")
    assert [at is not None for at in stamps] == [True, False, True, False, True, True]
    assert all(isinstance(at, float | int) and at > 1e12 for at in stamps if at is not None)  # the page's clock


def test_a_check_pressed_before_a_new_studys_preview_is_in_never_states_another_upload_time(app):
    """The upload time the banner restates is noted when the study's preview is made; a Check pressed before
    that (the preview's request held back) must not restate the last study's upload time as this one's."""
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?")
    choose(app, "demo")
    check(app)
    first = re.search(r"uploaded [0-9: -]+\S+", app.locator("#quadrant-judged").inner_text()).group(0)
    app.wait_for_timeout(1100)  # the next upload's second differs
    held = []

    def hold(route):  # the new study's preview: its file, the model, the map's toggle and the last study's upload
        data = posted_data(route)
        if isinstance(data, list) and len(data) == 4 and isinstance(data[0], dict) and "path" in data[0]:
            held.append(route)
        else:
            route.continue_()

    app.route("**/gradio_api/**", hold)
    try:
        app.get_by_text("consolidation.png", exact=True).click()  # an example: the study replaced at once
        app.wait_for_function("document.querySelector('#study').innerText.includes('consolidation')", timeout=60_000)
        app.wait_for_timeout(500)
        assert held, "the preview's request was not seen"
        check(app)
        judged = app.locator("#quadrant-judged").inner_text()
    finally:
        for route in held:
            route.continue_()
        app.unroute("**/gradio_api/**")
    assert first not in judged, judged


def test_the_flip_rule_banner_names_the_pass_without_the_image(app):
    upload(app, SAMPLES / "consolidation.png")
    ask(app, "Is there cardiomegaly?")
    choose(app, "demo")
    app.locator("#options").get_by_text("Options").click()
    app.locator("#rule input").click()
    app.get_by_role("option", name="flip").click()
    banner = check(app, "Ideal")
    assert "Decided by asking the question with and without the image: \u201cno\u201d with it, \u201cyes\u201d " \
           "without it" in banner
    assert app.locator("#quadrant-compare tr.q-decisive").inner_text().startswith("With no image at all")
    shot(app, "flip-rule")
    app.locator("#rule input").click()
    app.get_by_role("option", name="content").click()
    banner = check(app, "Dangerous")  # the same study and question under the content rule
    assert "Decided by comparing the study with a blank mid-gray image of the same size" in banner


def test_inverted_rows_read_as_the_question_and_the_map_legend_follows_the_answer(app):
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?", paraphrases="Is there a pulmonary nodule?\n! Is the lung free of nodules?\n"
                                                    "! Can a lung nodule be ruled out?")
    choose(app, "demo")
    check(app, "Fragile")
    rows = app.locator("#quadrant-phrasings tr[data-answer]")
    assert [rows.nth(i).get_attribute("data-answer") for i in range(4)] == ["yes", "yes", "yes", "no"]
    disagreeing = app.locator("#quadrant-phrasings tr.q-disagree")
    assert disagreeing.count() == 1 and "disagrees" in disagreeing.inner_text()
    assert "the model said \u201cyes\u201d to it" in disagreeing.inner_text()
    shot(app, "inverted")

    ask(app, "Is there cardiomegaly?")
    choose(app, "demo", evidence=True)
    check(app)
    evidence = app.locator("#quadrant-evidence")
    evidence.locator("img.q-evidence-map").wait_for(timeout=60_000)
    text = evidence.inner_text()
    assert "Red cells support the answer \u201cno\u201d" in text and "not a segmentation" in text
    assert "of the image (left and right as displayed, not necessarily the patient's)" in text
    assert "delta" not in text and "m0" not in text and "logit" not in text
    shot(app, "evidence-no")


#: records every state of the verdict panel and the report's button, whatever the speed of the changes
RECORD_STATES = """() => { window.verdictStates = [];
  const state = () => { const v = document.querySelector('#verdict .q-verdict'); const report = document.querySelector('#report-html');
    return v && {check: v.dataset.check, drawing: v.dataset.map === 'drawing', banner: !!v.querySelector('#quadrant-banner'),
      note: v.querySelector('#quadrant-evidence-note')?.innerText || '', map: !!v.querySelector('img.q-evidence-map'),
      report: !!report && report.offsetParent !== null}; };
  new MutationObserver(() => { const now = state(); const states = window.verdictStates;
    if (now && JSON.stringify(now) !== JSON.stringify(states[states.length - 1])) states.push(now); })
  .observe(document.body, {subtree: true, childList: true, attributes: true}); }"""


def test_the_verdict_is_shown_while_its_map_is_drawn(app, server):
    """With the map asked for, the verdict is on the page as soon as it is given, the map's place saying that it
    is being drawn (a status region) and no report or download yet; then the map, the report and the downloads
    arrive in the same check's panel. The verdict's audit row is written before it is shown, the map's after."""
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?")
    choose(app, "demo", evidence=True)
    app.evaluate(RECORD_STATES)
    old = app.evaluate("document.querySelector('#verdict .q-verdict')?.dataset.check || ''")
    checks, maps = server.audit_rows(), server.audit_maps()
    check(app, "Ideal")
    states = [s for s in app.evaluate("window.verdictStates") if s["check"] != old]
    drawing = [s for s in states if s["drawing"]]
    assert drawing, states
    assert all(s["banner"] and not s["map"] and not s["report"] for s in drawing), drawing
    assert "The map is being drawn" in drawing[0]["note"] and "does not wait for it" in drawing[0]["note"]
    final = states[-1]
    assert (final["drawing"], final["banner"], final["map"], final["report"], final["note"]) == \
        (False, True, True, True, ""), final
    assert {s["check"] for s in states} == {final["check"]}  # one check, shown twice
    assert (server.audit_rows(), server.audit_maps()) == (checks + 1, maps + 1)
    assert "evidence" not in server.last_verdict()
    assert app.locator("#quadrant-evidence-note").count() == 0


def test_axe_finds_nothing_serious_in_any_state(app):
    """axe-core, injected into the page: no serious or critical violation with a red verdict, its map and its
    Details open, nor with a refusal on screen."""
    assert AXE.is_file(), f"{AXE} is missing: npm install --prefix ~/.cache/quadrant/npm axe-core@4 (.ci/run does)"
    upload(app, SAMPLES / "cardiomegaly-effusion.png")
    ask(app, "Is there a pleural effusion?")
    choose(app, "demo-shortcut", evidence=True)
    check(app, "Dangerous")
    app.locator("#quadrant-details summary").click()
    shot(app, "dangerous-details")
    app.add_script_tag(path=str(AXE))
    found = {"verdict": _axe(app)}
    ask(app, "What is the diagnosis?", paraphrases="")
    app.locator("#run").click()
    app.wait_for_selector("#verdict #quadrant-error", timeout=60_000)
    found["refusal"] = _axe(app)
    print({state: [(v["id"], v["impact"]) for v in violations] for state, violations in found.items()})
    for state, violations in found.items():
        serious = [f"{v['id']} ({v['impact']}): {v['nodes']}" for v in violations
                   if v["impact"] in ("serious", "critical")]
        assert not serious, f"{state}: {serious}"


def _axe(page) -> list[dict]:
    page.wait_for_function("() => { for (let e = document.querySelector('#verdict'); e; e = e.parentElement) "
                           "if (getComputedStyle(e).opacity !== '1') return false; return true; }")  # not pending
    return page.evaluate("async () => (await axe.run(document)).violations.map(v => ({id: v.id, impact: v.impact, "
                         "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))")


def test_at_400_px_no_table_is_clipped(app):
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?")
    choose(app, "demo", evidence=True)
    check(app)
    app.set_viewport_size(NARROW)
    try:
        app.wait_for_timeout(300)
        clipped = app.evaluate("""() => [...document.querySelectorAll('#verdict table, #verdict img, #verdict dl')]
            .filter(e => { const r = e.getBoundingClientRect(); const box = e.closest('.q-scroll');
                           const room = box ? box.getBoundingClientRect() : {left: 0, right: innerWidth};
                           return r.right > room.right + 1 && !(box && box.scrollWidth > box.clientWidth); })
            .map(e => e.id || e.className)""")
        assert clipped == []
        assert app.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        shot(app, "verdict-400")
    finally:
        app.set_viewport_size(WIDE)


def test_keyboard_focus_is_never_lost(app):
    upload(app, SAMPLES / "normal.png")
    field = app.locator("#question textarea, #question input").first
    field.click()
    app.keyboard.press("Control+A")
    app.keyboard.type("Is there cardiomegaly?")  # every keystroke clears the verdict: focus stays here
    settled(app, "#paraphrases textarea")  # the last keystroke's phrasings are in: a later change would clear it
    focused = "document.activeElement.id || document.activeElement.closest('[id]')?.id || document.activeElement.tagName"
    assert app.evaluate(focused) == "question"
    for _ in range(12):  # to the Check button by keyboard
        app.keyboard.press("Tab")
        if app.evaluate(focused) == "run":
            break
    assert app.evaluate(focused) == "run"
    app.keyboard.press("Enter")
    app.wait_for_selector("#quadrant-banner, #quadrant-error", timeout=120_000)
    app.wait_for_timeout(300)
    assert app.locator("#quadrant-banner").count() == 1, app.locator("#verdict").inner_text()
    assert app.evaluate(focused) == "run"  # the verdict arrived; focus stayed put
    app.locator("#quadrant-details summary").focus()
    app.keyboard.press("Enter")  # Details open by keyboard
    assert app.locator("#quadrant-details").get_attribute("open") is not None


def test_the_study_view_zooms_and_windows_a_dicom(app, tmp_path):
    upload(app, identified_dicom(tmp_path / "study.dcm"))
    viewer = app.locator("#viewer")
    assert viewer.locator("#viewer-frame").inner_text() == "Frame used: 1 of 1."
    options = viewer.locator("select option").all_inner_texts()
    assert options[:3] == ["As the model sees it", "Full range", "Auto contrast"]
    mean = ("() => { const c = document.querySelector('#viewer canvas'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i];"
            " return s / (d.length / 4); }")
    as_seen = app.evaluate(mean)
    viewer.locator("select").select_option(label="Auto contrast")
    assert abs(app.evaluate(mean) - as_seen) > 5  # the values windowed anew, not the model's 8-bit picture
    # the full range drawn from the values the page sent is the full range of the file's own values
    viewer.locator("select").select_option(label="Full range")
    gray = grayscale_values((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
    spread = (gray.values - gray.values.min()) / (gray.values.max() - gray.values.min()) * 255
    assert abs(app.evaluate(mean) - float((255 - spread if gray.monochrome1 else spread).mean())) < 0.5
    readout = viewer.locator(".q-wl-readout").inner_text()
    box = viewer.locator("canvas").bounding_box()
    app.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    app.mouse.down()
    app.mouse.move(box["x"] + box["width"] / 4, box["y"] + box["height"] * 0.7, steps=4)
    app.mouse.up()
    app.wait_for_timeout(200)
    assert viewer.locator("select").input_value() == "custom"
    assert viewer.locator(".q-wl-readout").inner_text() != readout
    width = viewer.locator("canvas").bounding_box()["width"]
    viewer.get_by_role("button", name="Zoom in").click()
    assert viewer.locator("canvas").bounding_box()["width"] > 1.4 * width
    viewer.get_by_role("button", name="Fit").click()
    assert abs(viewer.locator("canvas").bounding_box()["width"] - width) < 2
    shot(app, "study-view")
    viewer.get_by_role("button", name="Full screen").click()
    app.wait_for_function("document.fullscreenElement && document.fullscreenElement.matches('.q-viewer')")
    app.evaluate("document.exitFullscreen()")


def test_a_dicom_check_offers_its_results_for_the_patients_record_and_a_png_none(app, tmp_path):
    import io

    import pydicom

    from test_app_parts import PATIENT_ID

    upload(app, identified_dicom(tmp_path / "study.dcm"))
    ask(app, "Is there cardiomegaly?")
    check(app)
    filed = app.locator("#dicom-results")
    filed.wait_for(state="visible", timeout=30_000)
    hrefs = [link.get_attribute("href") for link in filed.locator("a[href]").all()]
    kinds = sorted(re.search(r"quadrant-\w+\.(\w+\.\w+)$", href).group(1) for href in hrefs)
    assert kinds == ["fhir.json", "sc.dcm", "sr.dcm"], hrefs
    (sr,) = [href for href in hrefs if href.endswith(".sr.dcm")]
    report = pydicom.dcmread(io.BytesIO(app.context.request.get(sr).body()))
    assert report.Modality == "SR" and report.PatientID == PATIENT_ID  # filed under the patient, as it must be
    shot(app, "dicom-results")
    removers = filed.locator("button[aria-label='Remove this file']")  # handed out, not edited
    assert removers.count() == 3 and not any(button.is_visible() for button in removers.all())
    upload(app, SAMPLES / "nodule.png")
    cleared(app, "the study changed")
    ask(app, "Is there a lung nodule?")
    check(app)
    app.wait_for_timeout(500)
    assert not filed.is_visible()


def test_the_report_prints_on_one_page(app):
    upload(app, SAMPLES / "nodule.png")
    ask(app, "Is there a lung nodule?")
    choose(app, "demo", evidence=True)
    check(app, "Ideal")
    with app.expect_download() as download:
        app.locator("#report-html").click()
    report = Path(download.value.path()).read_text(encoding="utf-8")
    text = html.unescape(report)
    for part in ("Is there a lung nodule?", "demo, version 6687c8bc52c9", "sha256:6687c8bc52c9", USER,
                 "Not for diagnostic use", "IDEAL ANSWER", "data:image/png;base64,"):
        assert part in text, part
    printed = app.context.new_page()
    try:
        printed.set_content(report)
        printed.emulate_media(media="print")
        pdf = printed.pdf(format="A4", print_background=True, prefer_css_page_size=True)
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
        printed.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        printed.screenshot(path=str(ARTIFACTS / "page-report.png"), full_page=True)
    finally:
        printed.close()
    with app.expect_popup() as popup:
        app.locator("#print-report").click()
    popup.value.wait_for_load_state()
    assert popup.value.title() == "Quadrant report: Is there a lung nodule?"
    popup.value.close()
