"""Evaluating a whole dataset: every manifest row checked, appended to samples.jsonl as it finishes.

Resumable by construction: a finished sample is one flushed and fsynced line with its study_id, and a rerun
skips the ids already there (a half-written last line from a kill is dropped and redone). A rerun resumes
only the same run (run_folder: same model, same verdict-changing options) and never while another process
writes the folder. Where the checks run is an engine's business (engines/: this process, or Ray workers);
this module is the one loop that writes what they return. Rows that cannot be checked (an unreadable study,
a question that is not yes/no) go to errors.jsonl with the message, never into the metrics, and never stop
the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .atomic import write_atomically
from .engines.base import Engine, Job, Partner, SwapImage
from .errors import OptionError
from .fingerprint import DigestCache, file_digest
from .manifest import FINDING, ManifestRow, read_manifest, row_digests
from .metrics import summarize
from .reliance import Reliance
from .run_folder import RunFolder

log = logging.getLogger(__name__)

SAMPLES, ERRORS, SUMMARY = "samples.jsonl", "errors.jsonl", "summary.json"
IMAGE_DIGESTS = ".image-digests.json"  # image files read at a resume, by size and mtime (`_replaced_images`)
ROW_DIGEST = "manifest_row_sha256"  # in each sample: the manifest row it was checked from (`row_digests`)
IMAGE_FILE = "image_file"  # in each sample: its image file's size and mtime when its row went out (`_stamp`)
RULE_NAMES = ("ideal", "fragile", "dangerous", "worst", "flip_rate", "accuracy", "text_only_agreement")


@dataclass(frozen=True)
class FailRule:
    """`NAME>VALUE` (or `<`, `>=`, `<=`) over summary.json; a rule that holds fails the run (exit 1). Every
    name is a fraction, so the value is one from 0 to 1 or a percentage: a rule that could never hold (a
    gate written `dangerous>2` for 2%) is refused rather than left to pass every run."""

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "FailRule":
        match = _RULE.fullmatch(text)
        if match is None:
            raise OptionError(f"--fail-if {text!r}: expected NAME>VALUE, NAME<VALUE, NAME>=VALUE or NAME<=VALUE, "
                              "one rule per --fail-if (e.g. 'dangerous>0.2')")
        name, op, raw = match.group("name").lower(), match.group("op"), match.group("value").strip()
        if name not in RULE_NAMES:
            raise OptionError(f"--fail-if {text!r}: unknown name {name!r}; known: {', '.join(RULE_NAMES)}")
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise OptionError(f"--fail-if {text!r}: {raw!r} is not a number (e.g. 0.2 or 20%)") from None
        if not 0 <= value <= 1:
            raise OptionError(f"--fail-if {text!r}: {name} is a fraction from 0 to 1, so {raw} can never be "
                              "crossed: give a fraction such as 0.2 or a percentage such as 20%")
        return cls(name, op, value)

    def measured(self, summary: dict) -> float | None:
        """The summary's figure this rule judges; None where the run has none (accuracy without labels)."""
        if self.name in ("ideal", "fragile", "dangerous", "worst"):
            return summary["fractions"].get(self.name.capitalize())
        return summary.get(self.name)

    def not_judged(self, summary: dict) -> str | None:
        """Why this rule cannot be judged on `summary`, or None: a gate that silently never holds is worse
        than none."""
        if self.measured(summary) is not None:
            return None
        why = "no row has a label" if self.name == "accuracy" else "no study was checked"
        return f"fail-if rule {self} not judged: there is no {self.name} ({why})"

    def holds(self, summary: dict) -> bool:
        actual = self.measured(summary)
        return actual is not None and _COMPARE[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


_RULE = re.compile(r"\s*(?P<name>[A-Za-z_]+)\s*(?P<op>[<>]=?)(?P<value>[^<>=]+)")
_COMPARE = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


class Finished(NamedTuple):
    """What resume needs of a sample: the digest of the row it was checked from (None in a folder written before
    samples recorded it), its image's sha256, and the image file's stamp when its row went out (None before
    samples recorded it)."""

    row_digest: str | None
    image_sha256: str | None
    image_file: dict | None


def finished(out_dir: Path) -> dict[str, Finished]:
    """study_id -> what each sample in samples.jsonl was checked from; a torn last line (killed mid-write) is cut
    off the file."""
    path = out_dir / SAMPLES
    if not path.exists():
        return {}
    rows, good_bytes = {}, 0
    with open(path, "rb") as handle:
        for line in handle:
            try:
                sample = json.loads(line)
                image = sample.get("image")
                rows[sample["study_id"]] = Finished(sample.get(ROW_DIGEST),
                                                    image.get("sha256") if isinstance(image, dict) else None,
                                                    sample.get(IMAGE_FILE))
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                break
            good_bytes += len(line)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return rows


def _current_samples(out_dir: Path, digests: dict[str, str], images: dict[str, Path],
                     known: DigestCache) -> set[str]:
    """The study_ids whose samples stand: those checked from their row as the manifest now holds it, and from the
    image file now at the row's path. A sample of a row edited since, or of an image replaced under the same
    name, is dropped, so that its row is checked again (a warning line says how many); a sample from before
    digests were recorded stands."""
    done = finished(out_dir)
    edited = {i for i, f in done.items() if f.row_digest is not None and digests.get(i, f.row_digest) != f.row_digest}
    if edited:
        log.warning("%d finished row(s) changed in the manifest since they were checked: checking them again",
                    len(edited))
    replaced = _replaced_images({i: f for i, f in done.items() if f.row_digest is not None and i not in edited},
                                images, known)
    if replaced:
        log.warning("%d finished row(s) whose image file was replaced since they were checked: checking them again",
                    len(replaced))
    if edited or replaced:
        _drop_samples(out_dir, edited | replaced)
    return set(done) - edited - replaced


def _replaced_images(samples: dict[str, Finished], images: dict[str, Path], known: DigestCache) -> set[str]:
    """The study_ids whose image file is no longer the one their sample was checked from, reading as little as
    it can: a file with the size and mtime it had when its row went out is taken as unchanged without being read
    (as make and rsync judge files); any other is hashed and compared with the sample's sha256, and its digest
    kept in the run folder (`known`) under its new size and mtime, so that a dataset copied without its mtimes is
    read at one resume only, and nothing is redone for it. A file that cannot be read now leaves its sample
    standing: there is nothing to compare it with."""
    stamps = {path: _stamp(path) for path in {images[i] for i in samples if i in images}}
    unsure = {i: f for i, f in samples.items()
              if i in images and f.image_sha256 is not None and stamps[images[i]] is not None
              and f.image_file != stamps[images[i]]}
    paths = sorted({images[i] for i in unsure})
    now = {path: _digest(known.known, path) for path in paths}
    unread = {path for path, digest in now.items() if digest is None}
    if unread:
        log.warning("%d finished row(s) whose image file changed size or time since it was checked, or whose "
                    "sample did not record them: reading %d file(s) to tell a replaced picture from a copied one",
                    sum(images[i] in unread for i in unsure), len(unread))
    for path in unread:
        now[path] = _digest(known.digest, path)
    return {i for i, f in unsure.items() if now[images[i]] not in (None, f.image_sha256)}


def _digest(of: Callable[[Path], str | None], path: Path) -> str | None:
    """`of(path)`, or None for a file that cannot be read."""
    try:
        return of(path)
    except OSError:
        return None


def _stamp(path: Path) -> dict | None:
    """A file's size and modification time (ns), or None where it cannot be read."""
    try:
        status = path.stat()
    except OSError:
        return None
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _drop_samples(out_dir: Path, study_ids: set[str]) -> None:
    """samples.jsonl without the given studies' lines, replaced whole so that a kill leaves one or the other."""
    path = out_dir / SAMPLES

    def keep(kept: BinaryIO) -> None:
        with open(path, "rb") as source:
            for line in source:
                if json.loads(line)["study_id"] not in study_ids:
                    kept.write(line)

    write_atomically(path, keep)


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _batches(jobs: Sequence[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(jobs), size):
        yield list(jobs[start : start + size])


def _stamped(batches: Iterable[list[Job]], stamps: dict[Path, dict | None]) -> Iterator[list[Job]]:
    """The batches as they go to the engine, each image file stamped first (`_stamp`): before any engine has read
    it, so that a file replaced after the stamp and before its reading is hashed at the next resume rather than
    taken for the file its sample was checked from."""
    for batch in batches:
        for job in batch:
            if job.row.image not in stamps:
                stamps[job.row.image] = _stamp(job.row.image)
        yield batch


def evaluate(
    engine: Engine,
    manifest: str | Path,
    out_dir: str | Path,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Check every unfinished row on `engine` (not yet started), then write summary.json from all samples.

    The folder is locked for the whole run, and its run record checked before anything in it changes.
    """
    if batch_size < 1:
        raise OptionError("--batch-size must be at least 1")
    rows = read_manifest(manifest)
    options = engine.settings.options
    # what earlier runs in this folder read of the images, by size and mtime: saved once the folder is claimed
    known = DigestCache.load(Path(out_dir) / IMAGE_DIGESTS)
    swaps = swap_partners(rows, known) if options.ablation == "swap" else {}
    partners = reference_partners(rows, options.reliance, known) if options.reliance.counterfactual else {}
    with RunFolder(out_dir) as folder, engine:
        folder.claim(engine.start(), SAMPLES)
        out = folder.path
        masks = mask_hashes(rows, known) if options.evidence is not None else {}
        digests = _job_digests(row_digests(manifest, rows), swaps, partners, masks)
        images = {row.study_id: row.image for row in rows}
        kept = _current_samples(out, digests, images, known)
        known.save()
        jobs = [Job(r, swaps.get(r.study_id), partners.get(r.study_id)) for r in rows if r.study_id not in kept]
        # every row without a sample is tried again, its error with it: errors.jsonl holds each failing row of
        # the manifest once, from its latest try, not one line per rerun
        (out / ERRORS).unlink(missing_ok=True)
        completed = len(rows) - len(jobs)
        if progress:
            progress(completed, len(rows))
        stamps: dict[Path, dict | None] = {}
        for result in engine.run(_stamped(_batches(jobs, batch_size), stamps)):
            for record in result.errors:
                _append(out / ERRORS, record)
            for record in result.samples:
                study_id = record["study_id"]
                _append(out / SAMPLES, {**record, ROW_DIGEST: digests[study_id], IMAGE_FILE: stamps[images[study_id]]})
            completed += result.rows
            if progress:
                progress(completed, len(rows))
        return write_summary(out, rows)


def _job_digests(rows: dict[str, str], swaps: dict[str, SwapImage], partners: dict[str, Partner],
                 masks: dict[str, str | None]) -> dict[str, str]:
    """study_id -> a digest of what its verdict rests on besides the run's options: its manifest row, the other
    study's image it is shown (`swap`) or compared with (a counterfactual reference), which an edit to another
    row (an image, a label) can change, and the content of its finding mask where a map is pointed at it."""
    digests = {}
    for study_id, row in rows.items():
        swap, partner = swaps.get(study_id), partners.get(study_id)
        others = [swap.sha256 if swap else None,
                  [partner.sha256, partner.study_id, partner.label] if partner else None]
        if masks.get(study_id):
            others.append(masks[study_id])
        digests[study_id] = row if others == [None, None] else hashlib.sha256(
            json.dumps([row, others]).encode("utf-8")).hexdigest()
    return digests


def swap_partners(rows: Sequence[ManifestRow], known: DigestCache | None = None) -> dict[str, SwapImage]:
    """study_id -> the image `--ablation swap` shows it: another study's, by content.

    The partner of an image is the next distinct sha256 after its own in the sorted set of the manifest's
    image hashes (cyclically), so it is never the study's own image however many rows share it, and it
    depends only on the manifest: not on batches, engines or how often the run was resumed. Unreadable
    images are left out (their rows fail on their own). `known`: as in `image_hashes`.
    """
    hash_of = image_hashes(rows, known)
    path_of: dict[str, Path] = {}
    for path, digest in hash_of.items():  # sorted by path: the first path holding each image
        path_of.setdefault(digest, path)
    hashes = sorted(path_of)
    if len(hashes) < 2:
        raise OptionError(
            f"--ablation swap shows each study another study's image, but this manifest has {len(hashes)} "
            "distinct readable image(s); use another ablation, or a manifest with at least two images"
        )
    following = {digest: hashes[(i + 1) % len(hashes)] for i, digest in enumerate(hashes)}
    return {
        row.study_id: SwapImage(path_of[following[hash_of[row.image]]], following[hash_of[row.image]])
        for row in rows
        if row.image in hash_of
    }


def image_hashes(rows: Sequence[ManifestRow], known: DigestCache | None = None) -> dict[Path, str]:
    """Each readable image's sha256 (of the file's bytes, as a verdict's image.sha256), by path, sorted by path.
    With `known` (a run folder's), a file whose size and mtime are those it was hashed with is not read again,
    and what is read is added: a resumed swap or counterfactual run over a large dataset stats its images
    instead of reading them all before its first check."""
    digests = _file_digests({row.image for row in rows}, known)
    return {path: digest for path, digest in digests.items() if digest is not None}


def mask_hashes(rows: Sequence[ManifestRow], known: DigestCache | None = None) -> dict[str, str | None]:
    """study_id -> its finding mask file's sha256, for the rows that have one (None where it cannot be read: the
    row fails on its own). A replaced mask changes the pointing game a sample records. `known`: as in
    `image_hashes`."""
    hash_of = _file_digests({row.mask for row in rows if row.mask is not None}, known)
    return {row.study_id: hash_of[row.mask] for row in rows if row.mask is not None}


def _file_digests(paths: set[Path], known: DigestCache | None) -> dict[Path, str | None]:
    """Each file's sha256 by path, sorted by path (None for one that cannot be read), through `known` when given."""
    return {path: _digest(file_digest if known is None else known.digest, path) for path in sorted(paths)}


def population(row: ManifestRow) -> str:
    """Which rows share a label for a question: those of the same `finding` where the manifest has that column
    (the dataset builders and the phantoms write it; a finding asked in several wordings is one population),
    else those asking the same question, case and spacing aside."""
    finding = str(row.extra.get(FINDING) or "").strip()
    return f"finding {finding!r}" if finding else f"question {' '.join(row.question.lower().split())!r}"


def reference_partners(rows: Sequence[ManifestRow], reliance: Reliance,
                       known: DigestCache | None = None) -> dict[str, Partner]:
    """study_id -> the study a counterfactual reference compares it with: another image of the manifest whose
    label for the same question (see `population`) is the opposite of the row's (`--reference opposite`) or
    the same (`same-label`).

    Chosen by content, as `--ablation swap` chooses: the row's image's rank among its own label's distinct
    image hashes (sorted) picks the candidate hash of the same rank, cyclically, from the other images of the
    wanted label. So never the row's own image; every candidate serves about as many rows (one misread study
    does not become every row's reference); and a function of the manifest alone, not of batches, engines or
    resumes. The partner's id is the first study id (sorted) holding that image in the population. Raises
    OptionError, before any model work, when a row has no label or a population has no candidate.
    """
    mode = reliance.reference
    unlabelled = [row.study_id for row in rows if row.label is None]
    if unlabelled:
        raise OptionError(
            f"--reference {mode} compares each study with another study whose label is known, but "
            f"{len(unlabelled)} of {len(rows)} manifest rows have no label (first: {unlabelled[0]}); "
            "give every row a yes/no label, or use --reference blank"
        )
    hash_of = image_hashes(rows, known)
    first_row: dict[tuple[str, str], dict[str, ManifestRow]] = {}  # (population, label) -> hash -> first row
    for row in sorted((r for r in rows if r.image in hash_of), key=lambda r: r.study_id):
        first_row.setdefault((population(row), row.label), {}).setdefault(hash_of[row.image], row)
    ordered = {key: sorted(rows_by_hash) for key, rows_by_hash in first_row.items()}
    rank = {key: {digest: i for i, digest in enumerate(hashes)} for key, hashes in ordered.items()}
    partners = {}
    for row in rows:
        if row.image not in hash_of:
            continue  # unreadable: the row fails on its own
        own, wanted = hash_of[row.image], (population(row), reliance.partner_label(row.label))
        pool = ordered.get(wanted, [])
        skip = rank.get(wanted, {}).get(own)  # the row's own image, where it also carries the wanted label
        size = len(pool) - (skip is not None)
        if size == 0:
            raise OptionError(
                f"--reference {mode}: no other study in the manifest is labelled {wanted[1]!r} for {wanted[0]}, "
                f"so {row.study_id} has none to be compared with; every question needs "
                f"{'studies of both labels' if mode == 'opposite' else 'two studies of each label'} "
                "(or use --reference blank)"
            )
        k = rank[(wanted[0], row.label)][own] % size
        chosen = pool[k + (skip is not None and k >= skip)]  # the k-th of the pool without the own image
        other = first_row[wanted][chosen]
        partners[row.study_id] = Partner(other.image, chosen, other.study_id, wanted[1])
    return partners


def _failed_ids(out_dir: Path) -> set[str]:
    path = out_dir / ERRORS
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as handle:
        return {json.loads(line)["study_id"] for line in handle if line.strip()}


# what a summary does not need of a verdict: the bulk of each line (every prompt's rendered text and margins)
_HEAVY = ("prompts", "text_only_all", "model", "image", "timing_ms")


def read_outcomes(out_dir: str | Path) -> list[dict]:
    """Every verdict in samples.jsonl without its per-prompt detail: what a summary needs, a few hundred
    bytes per sample, so that summarising a large dataset does not hold every verdict whole."""
    path = Path(out_dir) / SAMPLES
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [{k: v for k, v in json.loads(line).items() if k not in _HEAVY} for line in handle if line.strip()]


def first_sample(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / SAMPLES
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        line = handle.readline()
    return json.loads(line) if line.strip() else None


def studies_digest(samples: Sequence[dict]) -> str:
    """A digest of which questions a run answered, about which studies, against which labels: equal for two
    runs of one manifest whatever their model or options, so `compare` can tell runs on other data (or a run
    cut short) from configurations of one evaluation."""
    asked = sorted(json.dumps([s["study_id"], s["question"], s.get("label")]) for s in samples)
    return hashlib.sha256("\n".join(asked).encode("utf-8")).hexdigest()


def write_summary(out_dir: Path, rows: Sequence[ManifestRow] | None = None) -> dict:
    """summary.json, plots and report from samples.jsonl (only rows of the manifest, when given)."""
    samples = read_outcomes(out_dir)
    if rows is not None:
        wanted = {r.study_id for r in rows}
        samples = [s for s in samples if s["study_id"] in wanted]
    summary = summarize(samples)
    failed = _failed_ids(out_dir) if rows is None else _failed_ids(out_dir) & {r.study_id for r in rows}
    summary["n_errors"] = len(failed - {s["study_id"] for s in samples})
    summary["studies_sha256"] = studies_digest(samples)
    with open(out_dir / SUMMARY, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    from .report import write_report

    write_report(out_dir, summary, samples)
    return summary
