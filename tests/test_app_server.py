"""`quadrant app` really launched (a subprocess on a free port, with a login), driven by gradio_client, by
plain HTTP and by a real browser (Playwright on Debian's chromium).

One server serves the whole module: starting one costs seconds, and sharing it also shows that it keeps
serving after every bad request. A missing browser or a server that never comes up FAILS these tests.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from conftest import QUADRANT, stop_process
from quadrant.app.auth import auth_line
from quadrant.models.presets import MODELS_DIR

from test_app_parts import PATIENT_ID, PATIENT_NAME, identified_dicom

SAMPLES = MODELS_DIR / "samples"
STUDY = SAMPLES / "cardiomegaly-effusion.png"
QUESTION = "Is there a pleural effusion?"
USER, PASSWORD = "clinician", "not-a-real-password"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
pytestmark = pytest.mark.slow  # one real server for the module (about 20-40 s to start), and a browser

IDENTIFIERS = (PATIENT_NAME, PATIENT_NAME.split("^")[0], PATIENT_NAME.split("^")[2], PATIENT_ID, "19510203")


class Server:
    """One `quadrant app` process: its URL, its files, and its log."""

    def __init__(self, root: Path, auth_lines: tuple[str, ...] = (), options: tuple[str, ...] = ()):
        """`auth_lines`: the auth file (default: USER, a clinician); `options`: more `quadrant app` options."""
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.audit = root / "audit.sqlite"
        self.log = root / "server.log"
        self.tmp = root / "tmp"  # the server's TMPDIR: its private cache folder is made in here
        self.tmp.mkdir()
        auth = root / "users"
        auth.write_text("\n".join(auth_lines or (auth_line(USER, PASSWORD),)) + "\n", encoding="utf-8")
        env = {**os.environ, "TMPDIR": str(self.tmp), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [QUADRANT, "app", "--port", str(self.port), "--audit", str(self.audit), "--auth", str(auth),
             "--also-model", "demo-shortcut", "--max-upload-mb", "2", *options],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"quadrant app exited with {self.process.returncode}:\n{self.log.read_text()}")
            if "Serving" in self.log.read_text():
                return
            time.sleep(0.5)
        pytest.fail(f"quadrant app did not come up in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)

    @property
    def cache(self) -> Path:
        (folder,) = self.tmp.glob("quadrant-app-*")
        return folder

    def client(self) -> Client:
        return Client(self.url, auth=(USER, PASSWORD), verbose=False)  # gradio_client's own defaults

    def audit_rows(self) -> int:
        with sqlite3.connect(f"file:{self.audit}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM checks").fetchone()[0]

    def audit_maps(self) -> int:
        """Evidence maps audited: each drawn after its check's row."""
        with sqlite3.connect(f"file:{self.audit}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0]

    def last_verdict(self) -> dict:
        """The verdict of the latest audit row, as recorded."""
        with sqlite3.connect(f"file:{self.audit}?mode=ro", uri=True) as db:
            return json.loads(db.execute("SELECT verdict FROM checks ORDER BY rowid DESC LIMIT 1").fetchone()[0])

    def login_cookie(self) -> str:
        request = urllib.request.Request(self.url + "login", method="POST", data=urllib.parse.urlencode(
            {"username": USER, "password": PASSWORD}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            cookies = response.headers.get_all("set-cookie")
        return "; ".join(c.split(";")[0] for c in cookies)

    def call(self, api_name: str, data: list, cookie: str) -> str:
        """A named endpoint called over Gradio's plain HTTP API, as any HTTP client could: the event stream's
        text (`event: complete` and the output, or `event: error`)."""
        request = urllib.request.Request(f"{self.url}gradio_api/call/{api_name}", method="POST",
                                         data=json.dumps({"data": data}).encode(),
                                         headers={"Cookie": cookie, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            event = json.loads(response.read())["event_id"]
        request = urllib.request.Request(f"{self.url}gradio_api/call/{api_name}/{event}", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read().decode()

    def get(self, path: str, cookie: str | None = None) -> int:
        request = urllib.request.Request(self.url.rstrip("/") + path, headers={"Cookie": cookie} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("app-server"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cli_check():
    """`quadrant check --json` on the study, started before the server so that the two start together."""
    process = subprocess.Popen([QUADRANT, "check", "--image", str(STUDY), "--question", QUESTION, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def check(client: Client, image, question: str = QUESTION, paraphrases: str = "", ablation: str = "") -> dict:
    return json.loads(client.predict(image=handle_file(str(image)), question=question, paraphrases=paraphrases,
                                     ablation=ablation, api_name="/check"))


def streamed_verdict(stream: str) -> dict:
    """The verdict in a plain HTTP call's event stream (`event: complete`, then the outputs: the verdict's text)."""
    data = next(line for line in stream.splitlines() if line.startswith("data:"))
    return json.loads(json.loads(data.removeprefix("data:"))[0])


def assert_same_verdict(got: dict, expected: dict) -> None:
    for key in ("quadrant", "consistent", "image_reliant", "answer", "flip_count", "image"):
        assert got[key] == expected[key], key
    assert got["model"]["fingerprint"] == expected["model"]["fingerprint"]
    assert [p["text"] for p in got["prompts"]] == [p["text"] for p in expected["prompts"]]
    for a, b in zip(got["prompts"] + [got["text_only"]], expected["prompts"] + [expected["text_only"]]):
        assert a["answer"] == b["answer"] and abs(a["margin"] - b["margin"]) < 1e-4
    assert abs(got["margin_shift"] - expected["margin_shift"]) < 1e-4


# -- the API ---------------------------------------------------------------------------------------------------

def test_api_gives_the_same_verdict_as_the_command_line(cli_check, server):
    stdout, stderr = cli_check.communicate(timeout=300)
    assert cli_check.returncode == 0, stderr
    expected = json.loads(stdout)
    got = check(server.client(), STUDY)
    assert_same_verdict(got, expected)
    assert got["model"]["name"] == "demo" and got["quadrant"] == "Ideal"


def test_bad_files_get_a_clear_error_and_the_server_keeps_serving(server, tmp_path):
    client = server.client()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(STUDY.read_bytes()[:2000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all", encoding="utf-8")
    for path, message in ((truncated, "truncated or corrupt"), (empty, "empty"), (text, "not a PNG, JPEG, DICOM")):
        with pytest.raises(Exception, match=message):
            check(client, path)
    with pytest.raises(Exception, match="yes or no"):
        check(client, STUDY, question="Describe this radiograph.")
    huge = tmp_path / "huge.png"
    huge.write_bytes(STUDY.read_bytes() + os.urandom(3 * 2**20))  # over this server's --max-upload-mb 2
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        check(client, huge)
    assert check(client, STUDY)["quadrant"] == "Ideal"  # still serving, and correctly


def test_login_is_required_and_the_user_is_recorded(server):
    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(server.url, verbose=False)  # no login: the app's config is refused
    with pytest.raises(ValueError, match="Could not login"):
        Client(server.url, auth=(USER, "wrong"), verbose=False)
    before = server.audit_rows()
    check(server.client(), SAMPLES / "nodule.png", "Is there a lung nodule?")
    with sqlite3.connect(f"file:{server.audit}?mode=ro", uri=True) as db:
        user, quadrant = db.execute("SELECT user, quadrant FROM checks ORDER BY id DESC LIMIT 1").fetchone()
    assert server.audit_rows() == before + 1 and user == USER and quadrant == "Ideal"


def test_files_outside_the_apps_cache_are_refused(server):
    cookie = server.login_cookie()
    assert server.get("/gradio_api/file=/etc/passwd", cookie) == 403
    assert server.get("/file=/etc/passwd", cookie) == 403
    assert server.get(f"/gradio_api/file={server.audit}", cookie) == 403
    assert server.get("/gradio_api/file=https://example.com/x.png", cookie) == 403
    link = server.cache / "innocent.png"
    link.symlink_to("/etc/passwd")
    assert server.get(f"/gradio_api/file={link}", cookie) == 403
    inside = server.cache / "examples" / "nodule.png"
    assert server.get(f"/gradio_api/file={inside}", cookie) == 200  # the guard is not simply refusing everything
    # a request naming a server path instead of uploading a file is refused too (raw HTTP: gradio_client would
    # read the path on the client's side and upload what it found there)
    before = server.audit_rows()
    uploaded = server.call("check", [{"path": str(inside), "meta": {"_type": "gradio.FileData"}},
                                     "Is there a lung nodule?", "", ""], cookie)
    assert uploaded.startswith("event: complete") and streamed_verdict(uploaded)["quadrant"] == "Ideal", uploaded
    before += 1
    reply = server.call("check", [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, QUESTION, "", ""],
                        cookie)
    assert reply.startswith("event: error") and "root:" not in reply, reply
    assert server.audit_rows() == before
    assert check(server.client(), STUDY)["quadrant"] == "Ideal"  # and the server keeps serving


def test_a_burst_of_twenty_gives_the_serial_verdicts_with_an_audit_row_each(server):
    """The repository's load tool on the real server: the sample cases asked once each, then 20 calls one at a
    time, then 20 others at once, then those 20 again one at a time. Every concurrent verdict equals its study's
    verdict alone, each call writes its audit row, and the server reports how the burst was batched."""
    from quadrant.models.measure_burst import CASES, measure

    before = server.audit_rows()
    cookies = dict(pair.split("=", 1) for pair in server.login_cookie().split("; "))
    result = measure(server.url, server.process.pid, 20, cookies=cookies)
    print(f"burst: {result}")
    assert result["identical_verdicts"] == 20
    assert server.audit_rows() == before + len(CASES) + 60
    assert sum(result["studies_in_batch"].values()) == 20 and result["server_cpu_s"]["serial"] > 0


def test_the_burst_ceiling_batches_the_same_checks_to_the_same_verdicts():
    """The load tool's ceiling: the sample checks one at a time and in batches, in this process, the same
    verdicts both ways (every margin within 1e-4), and the gain its own medians give."""
    from quadrant.models.measure_burst import model_ceiling

    ceiling = model_ceiling("demo", 6, 4, repeats=1)
    assert ceiling["model_identical_verdicts"] == 6
    assert ceiling["model_serial_s"] > 0 and ceiling["model_batched_s"] > 0
    assert ceiling["model_batch_gain"] == pytest.approx(ceiling["model_serial_s"] / ceiling["model_batched_s"], rel=0.05)


def test_port_in_use_and_bad_options_exit_2_with_one_line(server, tmp_path, capsys):
    from quadrant.cli.main import main

    free = str(_free_port())
    for args, message in ((["--port", str(server.port)], "in use"),
                          (["--port", free, "--auth", str(tmp_path / "missing")], "auth file"),
                          (["--port", free, "--batch", "0"], "--batch must be at least 1")):
        assert main(["app", "--audit", str(tmp_path / "a.sqlite"), *args]) == 2, args
        stderr = capsys.readouterr().err
        assert message in stderr and "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1


# -- the page, in a real browser -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium, headless: no `playwright install`, no sandbox (containers), no background traffic."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run"]}


@pytest.fixture
def app_page(server, context):
    """A logged-in page on the app, recording every request that leaves 127.0.0.1."""
    response = context.request.post(server.url + "login", form={"username": USER, "password": PASSWORD})
    assert response.ok
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.outside = []
    local = (server.url, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else page.outside.append(r.url))
    page.goto(server.url)
    page.wait_for_selector("#run", timeout=60_000)
    return page


def _upload(page, path: Path) -> None:
    page.locator("#study input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#viewer .q-viewer[data-ready]", timeout=60_000)


def _run(page, model: str, quadrant_expected: str | None = None):
    page.locator("#model").get_by_label(model, exact=True).check()
    _settled(page)
    page.locator("#run").click()
    selector = f"#quadrant-banner[data-quadrant={quadrant_expected}]" if quadrant_expected else "#quadrant-banner"
    page.wait_for_selector(selector, timeout=60_000)


def _settled(page, quiet: float = 1.5) -> None:
    """Wait until the page has finished filling in the phrasings for the question typed: a phrasing that
    arrives after Check is pressed changes the inputs, which clears that check's verdict, as it must."""
    value, since = None, time.monotonic()
    while time.monotonic() - since < quiet:
        now = page.locator("#paraphrases textarea").input_value()
        if now != value:
            value, since = now, time.monotonic()
        page.wait_for_timeout(200)


def _assert_text_faces_complete(page) -> None:
    """Every text face the page loaded holds every letter, digit and mark a verdict prints. A face missing
    glyphs is filled in letter by letter from another font: Gradio's default theme loads a Source Sans Pro
    SemiBold file of 55 glyphs, which turned the banner's "IDEAL" into "IDEᴀL"."""
    import string

    from fontTools.ttLib import TTFont
    from gradio.themes.utils.fonts import font_file_path

    loaded = page.evaluate("async () => { await document.fonts.ready; const faces = []; document.fonts.forEach(f => "
                           "{ if (f.status === 'loaded') faces.push([f.family.replace(/[\"']/g, ''), Number(f.weight)]); "
                           "}); return faces; }")
    text_faces = [(family, weight) for family, weight in loaded if family == "Source Sans Pro"]
    assert (("Source Sans Pro", 400) in text_faces) and len(text_faces) >= 2, loaded  # regular and a bold
    needed = set(string.ascii_letters + string.digits + "-:,.()%'“”≥←")
    for family, weight in text_faces:
        glyphs = TTFont(font_file_path(family, weight)).getBestCmap()
        assert not sorted(c for c in needed if ord(c) not in glyphs), f"{family} {weight} is missing letters"


def test_browser_red_banner_for_dangerous_and_none_for_ideal(app_page):
    page = app_page
    ARTIFACTS.mkdir(exist_ok=True)
    _upload(page, STUDY)
    page.locator("#question input, #question textarea").first.fill(QUESTION)
    page.wait_for_function("document.querySelector('#paraphrases textarea').value.includes('pleural')")

    _run(page, "demo", "Ideal")
    assert page.locator(".q-banner.q-green").is_visible()
    assert page.locator(".q-banner.q-red").count() == 0
    assert page.locator("#quadrant-grid .q-lit").inner_text().startswith("Ideal")
    page.screenshot(path=str(ARTIFACTS / "app-ideal.png"), full_page=True)

    _run(page, "demo-shortcut", "Dangerous")
    banner = page.locator(".q-banner.q-red")
    assert banner.is_visible() and "DANGEROUS ANSWER" in banner.inner_text()
    assert "the study's image did not move it, compared with a blank mid-gray image" in banner.inner_text()
    assert page.locator("#quadrant-grid .q-lit").inner_text().startswith("Dangerous")
    assert "Not for diagnostic use" in page.content()
    _assert_text_faces_complete(page)
    page.screenshot(path=str(ARTIFACTS / "app-dangerous.png"), full_page=True)

    with page.expect_download() as download:
        page.locator("#verdict-json").click()
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert saved["quadrant"] == "Dangerous" and saved["model"]["name"] == "demo-shortcut"

    page.get_by_role("tab", name="Audit log").click()
    page.locator("#audit-refresh").click()
    page.wait_for_function("document.querySelector('#audit-table')?.innerText.includes('Dangerous')")
    assert page.outside == []


def test_browser_evidence_map_on_request(app_page):
    """The evidence toggle adds the occlusion overlay and its reading: a finding the model reads has a region,
    the shortcut model's map is flat."""
    page = app_page
    ARTIFACTS.mkdir(exist_ok=True)
    _upload(page, STUDY.with_name("nodule.png"))
    page.locator("#question input, #question textarea").first.fill("Is there a lung nodule?")
    page.wait_for_function("document.querySelector('#paraphrases textarea').value.includes('nodule')")
    assert page.locator("#quadrant-evidence img").count() == 0  # no map unless asked for
    page.locator("#evidence-toggle input").check()

    _run(page, "demo", "Ideal")
    page.wait_for_selector("#quadrant-evidence img.q-evidence-map", timeout=60_000)
    reading = page.locator("#quadrant-evidence").inner_text()
    assert "The answer rests mostly on" in reading and "not a segmentation" in reading
    page.screenshot(path=str(ARTIFACTS / "app-evidence.png"), full_page=True)

    _run(page, "demo-shortcut", "Dangerous")
    # the finished map's panel (a slow machine may show a first look before it, which can read flat as well)
    page.wait_for_function("() => { const map = document.querySelector('.q-verdict:not([data-map]) #quadrant-evidence');"
                           " return !!map && map.innerText.includes('No region'); }", timeout=60_000)
    assert page.locator("#quadrant-evidence img.q-evidence-map").is_visible()
    assert page.outside == []


def test_browser_dicom_shows_no_identifiers_and_errors_stay_in_the_page(app_page, tmp_path):
    page = app_page
    ARTIFACTS.mkdir(exist_ok=True)
    _upload(page, identified_dicom(tmp_path / "study.dcm"))
    page.wait_for_selector("#study-facts-list", timeout=60_000)
    assert "CR" in page.locator("#study-facts-list").inner_text()
    page.locator("#question input, #question textarea").first.fill("Is there cardiomegaly?")
    _run(page, "demo")
    page.screenshot(path=str(ARTIFACTS / "app-dicom.png"), full_page=True)
    html = page.content()
    for identifier in IDENTIFIERS:
        assert identifier not in html

    broken = tmp_path / "broken.png"
    broken.write_bytes(STUDY.read_bytes()[:1500])
    page.locator("#study button[aria-label=Clear]").click()
    page.locator("#study input[type=file]").set_input_files(str(broken))
    page.wait_for_selector("#study-error", timeout=60_000)  # the preview already says why
    page.locator("#run").click()
    page.wait_for_function("document.querySelector('#verdict #quadrant-error') !== null", timeout=60_000)
    assert "truncated or corrupt" in page.locator("#verdict").inner_text()
    assert page.locator("#verdict #quadrant-error b").inner_text() == "This study could not be checked."
    page.screenshot(path=str(ARTIFACTS / "app-error.png"), full_page=True)
    assert page.outside == []


def test_identifiers_never_reach_the_api_result_the_audit_database_or_the_server_log(server, tmp_path):
    dicom = identified_dicom(tmp_path / "study.dcm")
    result = check(server.client(), dicom, "Is there cardiomegaly?")
    assert result["image"]["format"] == "DICOM" and result["answer"] == "yes"
    shown = json.dumps(result)
    stored = b"".join(p.read_bytes() for p in server.root.glob("audit.sqlite*"))  # the WAL file too
    logged = server.log.read_text(errors="replace")
    for identifier in IDENTIFIERS:
        assert identifier not in shown
        assert identifier.encode() not in stored
        assert identifier not in logged


def _metrics(server) -> tuple[str, float, float]:
    """/metrics as a Prometheus scraper reads it (no session): the text, checks counted, errors counted."""
    with urllib.request.urlopen(server.url + "metrics", timeout=30) as response:
        assert response.headers.get_content_type() == "text/plain"
        text = response.read().decode()
    checks = re.findall(r'^quadrant_checks_total\{model="[^"]+",quadrant="\w+"\} (\S+)$', text, re.M)
    errors = re.findall(r'^quadrant_check_errors_total\{kind="\w+"\} (\S+)$', text, re.M)
    return text, sum(map(float, checks)), sum(map(float, errors))


def test_metrics_count_checks_by_model_and_quadrant_and_errors_by_kind_without_a_login(server, tmp_path):
    _, checks_before, errors_before = _metrics(server)
    check(server.client(), STUDY)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    with pytest.raises(Exception, match="not a PNG, JPEG, DICOM"):
        check(server.client(), not_an_image)
    text, checks, errors = _metrics(server)
    assert (checks - checks_before, errors - errors_before) == (1, 1)
    assert checks == server.audit_rows()  # every completed check, counted once
    assert re.search(r'^quadrant_check_errors_total\{kind="study"\} [1-9]', text, re.M)
    assert 'quadrant_check_seconds_bucket{le="+Inf",model="demo"}' in text
    for identifier in IDENTIFIERS:
        assert identifier not in text
