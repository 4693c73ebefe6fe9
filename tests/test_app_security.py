"""What a hospital security reviewer and an integrator try against a running `quadrant app`: uploads (random
names, no DICOM header on disk, a file served only to the session given it), sign-in (timing, throttling, the
audit's access rows, sign-out, the idle timeout), roles, and the API called the ordinary way.

One server (a subprocess, with clinicians, an auditor and a short idle timeout) serves the module through
plain HTTP, gradio_client with its default settings, and a real browser; one small server without a login
(in this process, on the demo model) shows that files are private to their session without a login too.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from quadrant.app.auth import auth_line
from quadrant.images import load_study
from quadrant.models.presets import MODELS_DIR

from test_app_security_parts import IDENTIFIERS, _identified
from test_app_server import ARTIFACTS, Server, browser_type_launch_args  # noqa: F401 (a fixture, used by name)

pytestmark = pytest.mark.slow
SAMPLES = MODELS_DIR / "samples"
NODULE = SAMPLES / "nodule.png"
USERS = {"alice": ("alice-Pw-7", "clinician"), "bob": ("bob-Pw-8", "clinician"), "audrey": ("audrey-Pw-9", "auditor")}
TIMING_USERS = [f"staff{i:02d}" for i in range(15)]
IDLE_S = 6
#: a study file named the way a hospital export names them: the name must never reach the disk or a log
PATIENT_FILE = "Doe_Jane_MRN998877_ct.dcm"
NAME_PARTS = ("Doe_Jane", "MRN998877")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    lines = tuple(auth_line(user, password, role) for user, (password, role) in USERS.items()) + \
        tuple(auth_line(user, "staff-Pw-0") for user in TIMING_USERS)
    running = Server(tmp_path_factory.mktemp("app-security"), lines,
                     ("--idle-timeout", str(IDLE_S / 60), "--evidence-grid", "3"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def sign_in(server, user: str, password: str | None = None, address: str | None = None) -> tuple[int, dict, float]:
    """POST /login as a browser's form does: (status, cookies set, milliseconds). `address` is sent as
    X-Forwarded-For, which the server trusts from 127.0.0.1 only (uvicorn's rule for a local reverse proxy)."""
    password = USERS[user][0] if password is None else password
    headers = {"X-Forwarded-For": address} if address else {}
    start = time.perf_counter()
    response = httpx.post(server.url + "login", data={"username": user, "password": password}, headers=headers)
    return response.status_code, dict(response.cookies), (time.perf_counter() - start) * 1000


def session(server, user: str) -> dict:
    status, cookies, _ = sign_in(server, user)
    assert status == 200, (user, status)
    return cookies


def upload(server, cookies: dict, path: Path, name: str | None = None) -> str:
    with path.open("rb") as file:
        response = httpx.post(server.url + "gradio_api/upload", cookies=cookies,
                              files=[("files", (name or path.name, file))])
    assert response.status_code == 200, response.text
    (kept,) = response.json()
    return kept


def fetch(server, path: str, cookies: dict | None = None, route: str = "gradio_api/file=") -> int:
    return httpx.get(server.url + route + path, cookies=cookies or {}).status_code


def call_check(url: str, data: list, cookies) -> tuple[str, str]:
    """The `check` endpoint of the server at `url` over plain HTTP: (event, its data line)."""
    posted = httpx.post(url + "gradio_api/call/check", json={"data": data}, cookies=cookies)
    assert posted.status_code == 200, posted.text
    stream = httpx.get(f"{url}gradio_api/call/check/{posted.json()['event_id']}", cookies=cookies,
                       timeout=180).text
    event = next(line for line in stream.splitlines() if line.startswith("event:")).split(":", 1)[1].strip()
    data_line = next(line for line in stream.splitlines() if line.startswith("data:")).split(":", 1)[1].strip()
    return event, data_line


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def access_rows(server, where: str = "1", args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(f"file:{server.audit}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT user, address, event FROM access WHERE {where} ORDER BY id", args).fetchall()


def checks_rows(server) -> list[tuple]:
    with sqlite3.connect(f"file:{server.audit}?mode=ro", uri=True) as db:
        return db.execute("SELECT user, pixels_sha256, verdict FROM checks ORDER BY id").fetchall()


def log_since(server, start: int) -> str:
    return server.log.read_text(errors="replace")[start:]


def assert_nothing_identifying_on_disk(server) -> None:
    """No file under the server's folders (its cache, audit log, server log) is named after the upload or
    holds a byte of the identifiers written into its DICOM header."""
    for path in server.root.rglob("*"):
        assert not any(part in path.name for part in NAME_PARTS), path
        if path.is_file():
            data = path.read_bytes()
            for needle in (*IDENTIFIERS, *(part.encode() for part in NAME_PARTS)):
                assert needle not in data, (needle, path)


# -- uploads -------------------------------------------------------------------------------------------

def test_an_upload_is_kept_under_a_random_name_without_its_header_and_audited_by_its_pixels(server, tmp_path):
    study = _identified(tmp_path / PATIENT_FILE)
    uploads = server.cache / "uploads"
    before = set(uploads.iterdir()) if uploads.exists() else set()  # the browser tests' uploads, when run first
    client = Client(server.url, auth=("alice", USERS["alice"][0]), verbose=False)
    verdict = json.loads(client.predict(handle_file(str(study)), "Is there cardiomegaly?", api_name="/check"))
    original = load_study(SAMPLES / "cardiomegaly-dicom.dcm")
    assert verdict["image"]["format"] == "DICOM" and verdict["image"]["pixels_sha256"] == original.pixels_sha256
    user, audited, stored = checks_rows(server)[-1]
    assert user == "alice" and audited == original.pixels_sha256
    assert json.loads(stored)["image"]["pixels_sha256"] == original.pixels_sha256
    (kept,) = set(uploads.iterdir()) - before
    assert re.fullmatch(r"[0-9a-f]{32}", kept.name)
    assert_nothing_identifying_on_disk(server)


def test_an_uploads_progress_goes_to_its_session_alone_and_ends_with_done(server, tmp_path):
    """The page's progress bar: the stream it opens with an upload gets the file's bytes piece by piece, under
    the name the page knows the file by, then `done`; a stream opened after a small upload was answered still
    gets them. Another session asking after that upload, a request without a login and an id no upload has
    get nothing (Gradio's own route, which ours replaced, fed this stream; without it every upload's stream
    was a 404 after 3 s)."""
    big = tmp_path / PATIENT_FILE.replace(".dcm", ".png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)).save(big)
    alice = session(server, "alice")
    heard: list = []

    def listen(upload_id: str) -> None:
        with httpx.stream("GET", server.url + "gradio_api/upload_progress", params={"upload_id": upload_id},
                          cookies=alice, timeout=30) as response:
            heard.append(response.status_code)
            heard.extend(json.loads(line.removeprefix("data: ")) for line in response.iter_lines()
                         if line.startswith("data: "))

    def upload_as(cookies: dict, path: Path, upload_id: str) -> None:
        with path.open("rb") as file:
            response = httpx.post(server.url + "gradio_api/upload", params={"upload_id": upload_id}, cookies=cookies,
                                  files=[("files", (path.name, file))])
        assert response.status_code == 200, response.text

    def pieces(events: list) -> tuple[set, int]:
        return {e["orig_name"] for e in events}, sum(e["chunk_size"] for e in events)

    listener = threading.Thread(target=listen, args=("big-1",))
    listener.start()  # the page opens the stream as it starts the upload: either may reach the server first
    upload_as(alice, big, "big-1")
    listener.join(timeout=30)
    assert heard[0] == 200 and heard[-1] == {"msg": "done"}, heard[:3]
    assert len(heard) > 3 and pieces(heard[1:-1]) == ({big.name}, big.stat().st_size)

    small = SAMPLES / "nodule.png"
    upload_as(alice, small, "small-1")
    heard.clear()
    listen("small-1")  # after the upload was answered
    assert heard[0] == 200 and heard[-1] == {"msg": "done"}
    assert pieces(heard[1:-1]) == ({small.name}, small.stat().st_size)

    upload_as(alice, small, "small-2")
    url = server.url + "gradio_api/upload_progress"
    assert httpx.get(url, params={"upload_id": "small-2"}, cookies=session(server, "bob")).status_code == 404
    assert httpx.get(url, params={"upload_id": "small-2"}).status_code in (401, 403)
    assert httpx.get(url, params={"upload_id": "never-made"}, cookies=alice, timeout=30).status_code == 404
    heard.clear()
    listen("small-2")  # the other session's try took nothing from alice's stream
    assert heard[-1] == {"msg": "done"} and pieces(heard[1:-1]) == ({small.name}, small.stat().st_size)
    assert PATIENT_FILE.split(".")[0] not in server.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def open_app(tmp_path_factory):
    """`quadrant app` without a login, served in this process on the demo model (a real uvicorn server): its
    URL and its Blocks."""
    import os

    from quadrant.app.server import ServeOptions, launch, make_cache
    from quadrant.app.service import CheckService
    from quadrant.check import Checker
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    from test_app_server import _free_port

    before = {key: os.environ.get(key) for key in ("GRADIO_TEMP_DIR", "GRADIO_EXAMPLES_CACHE",
                                                   "GRADIO_ANALYTICS_MAX_EVENTS", "GRADIO_ANALYTICS_CACHE_FREQUENCY")}
    cache = make_cache()
    service = CheckService({"demo": Checker(load_model(ModelSpec("demo")))}, None, upload_dir=cache).start()
    demo, url = launch(service, cache, ServeOptions(port=_free_port(), sessions_kept=3), block=False)
    try:
        yield url, demo
    finally:
        demo.close(verbose=False)
        service.stop()
        shutil.rmtree(cache, ignore_errors=True)
        for key, value in before.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def open_server(open_app) -> str:
    return open_app[0]


def test_without_a_login_gradio_keeps_no_history_that_grows_with_the_calls(open_app):
    """Gradio's monitoring summary (calls, counts, timings) is not for every visitor, and its queue rebuilt it
    from its event history after every call, at a cost that grew with the server's uptime; and every plain
    HTTP call leaves a session state of its own, kept up to the server's `sessions_kept` (here 3)."""
    url, demo = open_app
    client = httpx.Client(base_url=url)
    client.get("/config")
    with NODULE.open("rb") as file:
        (kept,) = client.post("/gradio_api/upload", files=[("files", ("nodule.png", file))]).json()
    for _ in range(5):
        event, _ = call_check(url, [file_data(kept), "Is there a lung nodule?", "", ""], client.cookies)
        assert event == "complete"
    assert client.get("/monitoring/summary").status_code == 403
    queue = demo._queue  # where Gradio keeps these: nothing else shows them
    assert len(queue.event_analytics) <= 1 and queue.event_count_at_last_cache == 0
    assert len(demo.state_holder.session_data) == 3


def test_without_a_login_an_upload_is_still_served_only_to_its_session(open_server):
    mine = httpx.Client(base_url=open_server)  # a cookie jar: the session the server gives it
    assert mine.get("/config").status_code == 200 and "quadrant-session" in mine.cookies
    with NODULE.open("rb") as file:
        (kept,) = mine.post("/gradio_api/upload", files=[("files", ("Doe_Jane.png", file))]).json()
    assert "Doe_Jane" not in kept
    assert mine.get(f"/gradio_api/file={kept}").status_code == 200
    other = httpx.Client(base_url=open_server)
    other.get("/config")
    assert other.get(f"/gradio_api/file={kept}").status_code == 403  # another browser
    assert httpx.get(f"{open_server}gradio_api/file={kept}").status_code == 403  # a plain request
    forged = httpx.get(f"{open_server}gradio_api/file={kept}", cookies={"quadrant-session": "made.up"})
    assert forged.status_code == 403  # a cookie the server did not sign


def test_a_file_is_served_only_to_the_session_it_was_given_to(server, tmp_path):
    alice = session(server, "alice")
    kept = upload(server, alice, NODULE, "Doe_Jane.png")
    assert fetch(server, kept, alice) == 200
    again = session(server, "alice")  # the same user, signed in elsewhere: another session
    for cookies in (again, session(server, "bob"), None):
        assert fetch(server, kept, cookies) == 403
        assert fetch(server, kept, cookies, route="gradio_api/file/") == 403  # Gradio's older route too
    examples = server.cache / "examples" / "nodule.png"
    assert fetch(server, str(examples), again) == 200  # the bundled phantoms are public
    event, data = call_check(server.url, [file_data(kept), "Is there a lung nodule?", "", ""], alice)
    assert event == "complete" and json.loads(json.loads(data)[0])["quadrant"] == "Ideal"  # four values still do


def test_naming_a_file_the_session_was_not_given_is_one_line_to_the_caller_and_one_warning_in_the_log(server):
    alice, bob = session(server, "alice"), session(server, "bob")
    kept = upload(server, alice, NODULE)
    rows, start = len(checks_rows(server)), len(server.log.read_text(errors="replace"))
    for path in (kept, "/etc/passwd", str(server.audit)):
        event, message = call_check(server.url, [file_data(path), "Is there a lung nodule?", "", ""], bob)
        assert event == "error" and "must be uploaded to the app from this session" in message, message
        assert "\n" not in json.loads(message) and "root:" not in message
    time.sleep(0.5)
    logged = log_since(server, start)
    warnings = [line for line in logged.splitlines() if "refused a request naming a file" in line]
    assert len(warnings) == 3 and "Traceback" not in logged, logged
    assert len(checks_rows(server)) == rows


# -- sign-in ----------------------------------------------------------------------------------------------

def test_sign_in_takes_as_long_for_an_unknown_user_as_for_a_wrong_password(server):
    """Measured through the running server, interleaved, each attempt from an address of its own so that
    throttling stays out of the way. The figures are reported, not asserted: the machine is shared, and the
    equal work behind them is asserted in test_app_security_parts (one scrypt of the same cost either way)."""
    timings: dict[str, list[float]] = {"wrong password": [], "unknown user": []}
    for i, user in enumerate(TIMING_USERS):
        for attempt in range(2):
            for kind, name in (("wrong password", user), ("unknown user", f"ghost{i:02d}x{attempt}")):
                address = f"198.51.{i}.{attempt * 2 + (kind == 'unknown user')}"
                status, _, milliseconds = sign_in(server, name, "not-the-password", address)
                assert status == 400, (name, status)
                timings[kind].append(milliseconds)
    report = {kind: {"n": len(v), "median_ms": round(statistics.median(v), 1),
                     "p10_ms": round(statistics.quantiles(v, n=10)[0], 1),
                     "p90_ms": round(statistics.quantiles(v, n=10)[-1], 1)} for kind, v in timings.items()}
    report["median_ratio_unknown_over_wrong"] = round(report["unknown user"]["median_ms"] /
                                                      report["wrong password"]["median_ms"], 2)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "login-timing.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"sign-in timing over HTTP: {json.dumps(report)}")
    recorded = access_rows(server, "address LIKE '198.51.%'")
    assert len(recorded) == 4 * len(TIMING_USERS) and {event for _, _, event in recorded} == {"login_failed"}
    assert {user for user, _, _ in recorded} == {None, *TIMING_USERS}  # an unknown name is never kept
    assert {address for _, address, _ in recorded} == {f"198.51.{i}.{k}" for i in range(len(TIMING_USERS))
                                                       for k in range(4)}


def test_failed_sign_ins_slow_down_per_user_and_per_address_and_each_is_recorded(server):
    here, elsewhere, third = "192.0.2.10", "192.0.2.20", "192.0.2.30"
    guesses = [f"guess-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    assert [sign_in(server, "bob", g, here)[0] for g in guesses[:4]] == [400] * 4  # 3 free; the 4th locks 1 s
    time.sleep(1.2)
    assert sign_in(server, "bob", guesses[4], here)[0] == 400  # locks 2 s
    time.sleep(2.2)
    assert sign_in(server, "bob", guesses[5], here)[0] == 400  # locks 4 s: the next three come within it
    assert sign_in(server, "bob", None, here)[0] == 400  # even the right password waits
    assert sign_in(server, "bob", None, elsewhere)[0] == 400  # from anywhere: the user is locked
    assert sign_in(server, "alice", None, here)[0] == 400  # and the address, for anyone
    assert sign_in(server, "alice", None, third)[0] == 200  # alice elsewhere is not held up
    recorded = access_rows(server, "address IN (?, ?)", (here, elsewhere))
    assert recorded == [("bob", here, "login_failed")] * 6 + [("bob", here, "login_throttled"),
                                                              ("bob", elsewhere, "login_throttled"),
                                                              ("alice", here, "login_throttled")]
    time.sleep(4.2)
    assert sign_in(server, "bob", None, elsewhere)[0] == 200  # the lock runs out; a success clears it
    stored = b"".join(p.read_bytes() for p in server.root.glob("audit.sqlite*"))
    logged = server.log.read_bytes()
    for secret in (*guesses, USERS["bob"][0]):
        assert secret.encode() not in stored and secret.encode() not in logged


# -- the page ------------------------------------------------------------------------------------------------

def _sign_in_page(context, server, user: str):
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(server.url)
    page.locator("input[type=password]").wait_for(timeout=60_000)
    page.locator("input[type=text]").fill(user)
    page.locator("input[type=password]").fill(USERS[user][0])
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#run", timeout=60_000)
    page.wait_for_function("document.querySelector('#signed-in-as')?.innerText.includes('Signed in as')")
    return page


def test_sign_out_and_the_idle_timeout_in_the_browser(server, context):
    page = _sign_in_page(context, server, "alice")
    assert page.locator("#signed-in-as").inner_text().strip() == "Signed in as alice (clinician)"
    page.locator("#logout").click()
    page.locator("input[type=password]").wait_for(timeout=30_000)
    assert context.request.get(server.url + "config").status == 401  # the browser's login is gone
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-signed-out.png"))

    page = _sign_in_page(context, server, "alice")
    signed_in = time.monotonic()
    page.locator("input[type=password]").wait_for(timeout=(IDLE_S * 4 + 20) * 1000)  # left alone: signed out
    assert time.monotonic() - signed_in >= IDLE_S
    assert context.request.get(server.url + "config").status == 401
    page.screenshot(path=str(ARTIFACTS / "app-idle-signed-out.png"))
    events = [event for user, address, event in access_rows(server, "user = 'alice' AND address = '127.0.0.1'")]
    assert events[-4:] == ["login", "logout", "login", "idle_timeout"], events


def _fn_index(config: dict, elem_id: str) -> int:
    (component,) = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    (index,) = [d["id"] for d in config["dependencies"] if [component, "click"] in d["targets"]]
    return index


def test_a_clinician_sees_only_their_checks_and_only_an_auditor_exports(server, browser, tmp_path):
    for user in ("alice", "bob"):
        Client(server.url, auth=(user, USERS[user][0]), verbose=False).predict(
            handle_file(str(NODULE)), "Is there a lung nodule?", api_name="/check")
    alice = _sign_in_page(browser.new_context(), server, "alice")
    alice.locator("#study input[type=file]").set_input_files(str(_identified(tmp_path / PATIENT_FILE)))
    alice.wait_for_selector("#viewer .q-viewer[data-ready]", timeout=60_000)
    alice.get_by_role("tab", name="Audit log").click()
    alice.locator("#audit-refresh").click()
    alice.wait_for_function("document.querySelector('#audit-table')?.innerText.includes('alice')")
    shown = alice.locator("#audit-table").inner_text()
    assert "bob" not in shown and "Your checks" in alice.locator("#audit-about").inner_text()
    assert not alice.locator("#audit-export").is_visible()
    assert str(server.audit) not in alice.content() and "audit.sqlite" not in alice.content()
    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / "app-audit-clinician.png"), full_page=True)
    assert_nothing_identifying_on_disk(server)  # the page's upload, too

    cookies = session(server, "alice")  # the export, asked for directly: refused
    config = httpx.get(server.url + "config", cookies=cookies).json()
    asked = httpx.post(server.url + "gradio_api/run/predict", cookies=cookies,
                       json={"data": [], "fn_index": _fn_index(config, "audit-export"), "session_hash": "s1"})
    assert "for auditors" in asked.text and "quadrant-audit.csv" not in asked.text, asked.text

    auditor = _sign_in_page(browser.new_context(), server, "audrey")
    auditor.get_by_role("tab", name="Audit log").click()
    auditor.wait_for_function("document.querySelector('#audit-table')?.innerText.includes('bob')")
    assert "All checks" in auditor.locator("#audit-about").inner_text()
    with auditor.expect_download() as download:
        auditor.locator("#audit-export").click()
        auditor.locator("#audit-csv a").first.click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("id,time,user,") and ",alice," in exported and ",bob," in exported
    csv_url = auditor.locator("#audit-csv a").first.get_attribute("href")
    assert httpx.get(csv_url, cookies=cookies).status_code == 403  # a clinician holding the URL: refused
    auditor.screenshot(path=str(ARTIFACTS / "app-audit-auditor.png"), full_page=True)


# -- the API ------------------------------------------------------------------------------------------------

def test_the_api_with_gradio_clients_defaults_takes_a_served_model_and_the_pages_options(server):
    client = Client(server.url, auth=("bob", USERS["bob"][0]), verbose=False)  # nothing but the defaults
    plain = json.loads(client.predict(handle_file(str(NODULE)), "Is there a lung nodule?", api_name="/check"))
    assert plain["model"]["name"] == "demo" and plain["quadrant"] == "Ideal"
    assert plain["reliance"] == {"rule": "content", "threshold": 0.2, "reference": "blank"}
    assert plain["evidence"]["grid"] == [3, 3]  # the server's --evidence-grid 3 draws a map for every API check
    assert isinstance(plain["timing_ms"]["path"], str)  # the key gradio_client used to take for a file
    chosen = json.loads(client.predict(handle_file(str(NODULE)), "Is there a lung nodule?", model="demo-shortcut",
                                       rule="flip", threshold=0.5, reference="white", evidence=False,
                                       api_name="/check"))
    assert chosen["model"]["name"] == "demo-shortcut" and chosen["quadrant"] == "Dangerous"
    assert chosen["reliance"] == {"rule": "flip", "threshold": 0.5, "reference": "white"}
    assert "evidence" not in chosen
    for options, message in (({"model": "gpt-9"}, "demo-shortcut"), ({"question": "Describe the film."}, "yes or no"),
                             ({"threshold": -1}, "minimum"), ({"ablation": "fog"}, "fog")):
        arguments = {"image": handle_file(str(NODULE)), "question": "Is there a lung nodule?", **options}
        with pytest.raises(Exception, match=message) as refused:
            client.predict(**arguments, api_name="/check")
        assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value), str(refused.value)
