"""An evaluation's output folder as one run: a lock so two processes never write it at once, and a record
(run.json) so a rerun resumes only the run that is already there.

Why a record: samples.jsonl is resumed by study_id, so without it a rerun with another model or another
verdict-changing option would append its verdicts to the old ones and summarise both as one run. run.json is
written before the first sample; a rerun whose record differs is refused before anything in the folder changes.

Why flock: the kernel drops the lock when its holder exits, however it exits (SIGKILL included), so a killed
run never leaves the folder stuck; the lock file itself stays, empty, and is never rewritten.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import write_atomically
from .errors import InputError, OptionError

if TYPE_CHECKING:
    from .check import Checker
    from .loading import ModelSpec

RUN, LOCK, ABOUT = "run.json", ".quadrant.lock", "about"


class FolderBusyError(InputError):
    """Another process holds the output folder's lock."""


class RunMismatchError(InputError):
    """The folder holds a run made with another model or other verdict-changing options."""


def run_record(checker: Checker, spec: ModelSpec) -> dict:
    """Everything that decides a verdict besides the study: the model as loaded and every check option.

    The options come from the CheckOptions object itself (dataclasses.asdict), so an option added there later is
    recorded and compared without touching this function. The ablation is the resolved one (the default
    `none` and an explicit `--ablation none` are the same run).
    """
    from .loading import resolve_source

    loaded = checker.loaded
    model = loaded.to_json(checker.backend)
    name = model.pop("name")  # a display name: a copied model directory keeps its fingerprint, and its run
    model["device"] = loaded.device.type  # cuda:0 and cuda:1 compute alike
    template = loaded.chat_template
    options = {field.name: _recorded(getattr(checker.options, field.name))
               for field in dataclasses.fields(checker.options)}
    options["ablation"] = checker.ablation
    record = {
        "model": model,
        "adapter_config": _adapter_config_digest(resolve_source(spec)[2]),
        "prompt": loaded.prompt,
        "chat_template_sha256": None if template is None else hashlib.sha256(template.encode()).hexdigest(),
        "options": options,
        ABOUT: {"model_name": name},  # shown in messages, never compared
    }
    return json.loads(json.dumps(record, default=str))  # as it reads back from run.json


def _recorded(value):
    """An option as the record keeps it: a dataclass as its fields; an object that carries a content
    fingerprint (a paraphrase bank, a local paraphraser) as that fingerprint, so that a rerun compares what
    the object holds rather than where it lives in memory."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return getattr(value, "fingerprint", value)


def _adapter_config_digest(adapter: str | None) -> str | None:
    """The fingerprint hashes weight files only; a LoRA's scale (lora_alpha / r) lives in its config."""
    config = Path(adapter) / "adapter_config.json" if adapter else None
    return hashlib.sha256(config.read_bytes()).hexdigest() if config and config.is_file() else None


class RunFolder:
    """The output folder, locked for as long as the `with` block runs."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handle = None

    def __enter__(self) -> "RunFolder":
        if self.path.exists() and not self.path.is_dir():
            raise OptionError(f"--out {self.path} exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK, "a")  # noqa: SIM115 (held open for the lock's lifetime)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise FolderBusyError(
                f"{self.path} is being written by another quadrant evaluate right now; wait for it to finish, "
                "or use another --out"
            ) from None
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None

    def claim(self, record: dict, samples_file: str) -> None:
        """Write run.json for a new run, or check that this run is the one already in the folder.

        Raises RunMismatchError (and writes nothing) when it is not. A folder with samples but no run.json
        was written before runs were recorded: nothing says what made it, so it is not resumed either.
        """
        path = self.path / RUN
        if path.exists():
            try:
                existing = json.loads(path.read_text(encoding="utf-8"))["run"]
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                raise RunMismatchError(f"{path} is unreadable; {_AFRESH.format(out=self.path)}") from None
            differences = _differences(_compared(existing), _compared(record))
            if differences:
                shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
                raise RunMismatchError(
                    f"{self.path} holds another run{_names(existing, record)} ({shown}); "
                    f"{_AFRESH.format(out=self.path)}"
                )
            return
        if (self.path / samples_file).exists() and (self.path / samples_file).stat().st_size:
            raise RunMismatchError(
                f"{self.path} has samples but no {RUN} (written by an older quadrant), so this run cannot be "
                f"matched to them; {_AFRESH.format(out=self.path)}"
            )
        others = [entry for entry in self.path.iterdir() if not entry.name.startswith(".")]
        if others:  # a dataset's own folder: its report.md or summary.json would be written over
            raise OptionError(f"--out {self.path} already holds {len(others)} file(s) and no run: a new run writes "
                              "samples, a summary, a report and plots there; give a new or empty folder")
        text = json.dumps({"run": record}, indent=2) + "\n"
        write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


_AFRESH = "to start afresh use a new --out, or delete {out}"


def _compared(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != ABOUT}


def _names(old: dict, new: dict) -> str:
    before, now = (r.get(ABOUT, {}).get("model_name") for r in (old, new))
    return f" of model {before!r}, not {now!r}" if before and now and before != now else ""


def _differences(old: object, new: object, where: str = "") -> list[str]:
    """'key: old -> new' for every leaf that differs, keys dotted (options.reliance.threshold)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return found
    return [] if old == new else [f"{where}: {_short(old)} in the folder, {_short(new)} now"]


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


