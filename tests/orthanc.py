"""A real Orthanc (Debian's package) for the tests: its own configuration and storage in a temporary folder,
free loopback ports, its REST API, stopped by its own PID. Missing Orthanc FAILS the tests that need it
(`.ci/run` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import stop_process

BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Orthanc:
    """One Orthanc server; `peers` are the DICOM nodes it may send to: {name: (AE title, port)}; `lua` are
    scripts it runs (routing rules)."""

    ae_title = "ORTHANC"

    def __init__(self, root: Path, peers: dict[str, tuple[str, int]], lua: tuple[Path, ...] = ()):
        binary = next((b for b in BINARIES if os.access(b, os.X_OK)), None) or shutil.which("Orthanc")
        assert binary, "Orthanc is not installed: apt-get install -y orthanc (.ci/run does it)"
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        config = {
            "Name": "quadrant-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "DicomModalities": {name: [title, "127.0.0.1", port] for name, (title, port) in peers.items()},
            "LuaScripts": [str(script) for script in lua],
        }
        (root / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
        self.log = root / "orthanc.log"
        self.process = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"Orthanc exited:\n{self.log.read_text()}"
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"Orthanc did not answer in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)

    # -- REST ----------------------------------------------------------------------------------------

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body

    def post(self, path: str, data: bytes | dict | list):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        request = urllib.request.Request(self.url + path, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def upload(self, path: Path) -> str:
        """Store a file through the REST API; its instance's Orthanc ID."""
        return self.post("/instances", path.read_bytes())["ID"]

    def series(self, study_uid: str) -> list[dict]:
        """Every series of a study, with its main tags and instance IDs."""
        return self.post("/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True})

    def results(self, study_uid: str, modality: str) -> list[str]:
        """Instance IDs of a study's series of one modality (SR for reports, OT for secondary captures)."""
        return [i for s in self.series(study_uid) if s["MainDicomTags"].get("Modality") == modality
                for i in s["Instances"]]

    def file(self, instance_id: str) -> bytes:
        return self.get(f"/instances/{instance_id}/file")
