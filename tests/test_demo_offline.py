"""The bundled demo works out of the box with the network off: the installed command, no --model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import QUADRANT
from quadrant.models.presets import MODELS_DIR

SAMPLE = MODELS_DIR / "samples" / "cardiomegaly-effusion.png"
QUESTION = "Is there a pleural effusion?"


def _without_network() -> list[str]:
    """`unshare -n` puts the command in a network namespace with no interface up: truly offline."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []  # no permission for namespaces here: fall back to the hub's offline switch alone


def _check(*extra: str) -> dict:
    command = [*_without_network(), QUADRANT, "check",
               "--image", str(SAMPLE), "--question", QUESTION, "--json", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if not _without_network():
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_default_model_is_the_demo_and_reads_the_image():
    verdict = _check()
    assert verdict["model"]["name"] == "demo"
    assert verdict["answer"] == "yes"  # the sample has an effusion (models/samples/README.md)
    assert verdict["quadrant"] == "Ideal"


def test_shortcut_preset_is_consistent_but_dangerous():
    verdict = _check("--model", "demo-shortcut")
    assert verdict["model"]["name"] == "demo-shortcut"
    assert verdict["consistent"] and not verdict["image_reliant"]
    assert verdict["quadrant"] == "Dangerous"


@pytest.mark.skipif(not _without_network(), reason="no network namespaces here")
def test_the_sandbox_really_has_no_network():
    # in a fresh namespace even loopback is down: nothing at all can be reached
    probe = "import socket; s = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', 9))"
    done = subprocess.run([*_without_network(), sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode != 0 and "unreachable" in done.stderr.lower()
