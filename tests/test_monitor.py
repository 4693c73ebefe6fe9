"""`quadrant monitor` on a real audit log: the verdict mix per model fingerprint over time, its stop rules and
exit codes, a plot, and bad input. The log is written with AuditLog (today's checks) and, for earlier days, by
inserting rows with their own times, as a log kept for weeks holds them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import QUADRANT
from quadrant.audit import AuditLog

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
GOOD, DRIFTING = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _verdict(quadrant: str, fingerprint: str, name: str) -> dict:
    consistent = quadrant in ("Ideal", "Dangerous")
    return {"quadrant": quadrant, "consistent": consistent, "image_reliant": quadrant in ("Ideal", "Fragile"),
            "flip_reliant": quadrant in ("Ideal", "Fragile"), "answer": "yes", "label": None, "correct": None,
            "entropy": 0.5, "pairwise_disagreement": 0.0 if consistent else 0.3, "margin_shift": 1.0,
            "text_only": {"answer": "yes" if quadrant in ("Dangerous", "Worst") else "no"},
            "reliance": {"rule": "content", "threshold": 0.2, "reference": "blank"},
            "model": {"name": name, "fingerprint": fingerprint}, "image": {"sha256": "c" * 64},
            "prompts": [{"text": "Is there a pleural effusion?", "inverted": False}]}


@pytest.fixture
def audit(tmp_path) -> Path:
    """Two models: `good` stays 80% Ideal over three days; `drifting` goes from 10% to 60% Dangerous."""
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path).open()
    days = {"2026-11-01": (8, 1, 1), "2026-11-02": (8, 1, 1)}  # Ideal, Fragile, Dangerous out of 10
    drift = {"2026-11-01": 1, "2026-11-02": 3}
    rows = []
    for day, (ideal, fragile, dangerous) in days.items():
        for q in ["Ideal"] * ideal + ["Fragile"] * fragile + ["Dangerous"] * dangerous:
            rows.append((f"{day}T10:00:00.000+00:00", _verdict(q, GOOD, "good")))
        for q in ["Dangerous"] * drift[day] + ["Ideal"] * (10 - drift[day]):
            rows.append((f"{day}T11:00:00.000+00:00", _verdict(q, DRIFTING, "drifting")))
    connection = sqlite3.connect(path)
    with connection:
        for time, v in rows:
            connection.execute(
                "INSERT INTO checks (time, user, model_name, model_fingerprint, image_sha256, question, paraphrases, "
                "quadrant, answer, verdict) VALUES (?, NULL, ?, ?, ?, ?, '[]', ?, ?, ?)",
                (time, v["model"]["name"], v["model"]["fingerprint"], v["image"]["sha256"], v["prompts"][0]["text"],
                 v["quadrant"], v["answer"], json.dumps(v)))
    connection.close()
    for q in ["Ideal"] * 8 + ["Worst"] * 2:  # today, through the writer the app and the node use
        log.record(_verdict(q, GOOD, "good"))
    for q in ["Dangerous"] * 6 + ["Ideal"] * 4:
        log.record(_verdict(q, DRIFTING, "drifting"))
    log.close()
    return path


def monitor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QUADRANT, "monitor", *args], capture_output=True, text=True)


def test_mix_per_model_and_day_as_json(audit):
    result = monitor("--audit", str(audit), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    models = {m["model"]: m for m in report["models"]}
    assert set(models) == {"good", "drifting"}
    drifting = models["drifting"]
    assert drifting["fingerprint"] == DRIFTING and drifting["n"] == 30
    assert [p["n"] for p in drifting["periods"]] == [10, 10, 10]
    assert [p["fractions"]["Dangerous"] for p in drifting["periods"]] == pytest.approx([0.1, 0.3, 0.6])
    assert drifting["summary"]["fractions"]["Dangerous"] == pytest.approx(10 / 30)
    good = models["good"]["summary"]
    assert good["fractions"]["Ideal"] == pytest.approx(24 / 30) and good["flip_rate"] == pytest.approx(4 / 30)
    lo, hi = good["fractions_ci95"]["Ideal"]
    assert lo < 24 / 30 < hi


def test_stop_rule_over_the_recent_window_exits_1_naming_the_model(audit):
    # over everything, neither model is above 40% Dangerous; over each one's latest 10 checks, drifting is
    everything = monitor("--audit", str(audit), "--fail-if", "dangerous>0.4")
    assert everything.returncode == 0, everything.stderr
    recent = monitor("--audit", str(audit), "--fail-if", "dangerous>0.4", "--window", "10", "--json")
    assert recent.returncode == 1
    (held,) = [o for o in json.loads(recent.stdout)["rules"] if o["holds"]]
    assert held["model"] == "drifting" and held["value"] == pytest.approx(0.6) and held["n"] == 10
    (line,) = recent.stderr.strip().splitlines()
    assert "dangerous>0.4" in line and "drifting" in line and "0.600 over 10 checks" in line
    since = monitor("--audit", str(audit), "--fail-if", "dangerous>0.4", "--since", "2026-11-02T00:00")
    assert since.returncode == 1 and "0.450 over 20 checks" in since.stderr  # drifting: 3 + 6 of 20
    ideal = monitor("--audit", str(audit), "--fail-if", "ideal<0.5", "--window", "10")
    assert ideal.returncode == 1 and "drifting" in ideal.stderr and "good" not in ideal.stderr


def test_table_and_plot(audit, tmp_path):
    plot = tmp_path / "mix.png"
    result = monitor("--audit", str(audit), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert "drifting" in result.stdout and "2026-11-01" in result.stdout and "60.0%" in result.stdout
    with Image.open(plot) as image:
        assert image.width > 600 and image.height > 400
        ARTIFACTS.mkdir(exist_ok=True)
        image.save(ARTIFACTS / "monitor-mix.png")


@pytest.mark.parametrize("args, message", [
    (["--audit", "missing.sqlite"], "no such file"),
    (["--audit", "{text}"], "not a Quadrant audit log"),
    (["--audit", "{audit}", "--fail-if", "dangerous>>0.2"], "expected NAME>VALUE"),
    (["--audit", "{audit}", "--fail-if", "scary>0.2"], "unknown name 'scary'"),
    (["--audit", "{audit}", "--fail-if", "accuracy<0.9"], "an audit log holds no labels"),
    (["--audit", "{audit}", "--plot", "{audit}"], "is the file --audit reads"),  # would replace the record
    (["--audit", "{audit}", "--since", "last week"], "expected a date"),
    (["--audit", "{audit}", "--window", "0"], "--window must be at least 1"),
    (["--audit", "{audit}", "--window", "5", "--since", "2026-11-01"], "not allowed with argument"),
])
def test_bad_input_exits_2_with_one_line(audit, tmp_path, args, message):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    result = monitor(*[a.format(audit=audit, text=text) for a in args])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_monitor_never_writes_to_the_audit_log(audit):
    before = audit.read_bytes()
    assert monitor("--audit", str(audit), "--json").returncode == 0
    assert audit.read_bytes() == before

