"""The phantom generator: deterministic, its labels visible in its pixels at the model's 64 px, its files valid.

Each finding is checked by rendering the same generator state twice, with and without it (the other findings
drawn at random and kept), shrinking both to 64 x 64 as the demo model sees them, and measuring where and how
much the picture changed. Every assertion below fails if the finding were not drawn.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from quadrant.errors import OptionError
from quadrant.models.phantoms import (
    FINDINGS,
    QUESTIONS,
    Phantom,
    finding_slug,
    generate_phantoms,
    render_phantom,
    sample_phantom,
    to_uint8,
)

SEEDS = range(16)
SIDE = 64  # what the demo model sees
MID = (SIDE - 1) / 2


def small(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float32)


def toggled(finding: str, seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(without, with) the finding at 64 px, from the same generator state, the other findings random."""
    others = np.random.default_rng(10_000 + seed).random(len(FINDINGS)) < 0.5
    base = {name: bool(flag) for name, flag in zip(FINDINGS, others)}
    base[finding] = False
    without = render_phantom(np.random.default_rng(seed), base, size)
    with_it = render_phantom(np.random.default_rng(seed), {**base, finding: True}, size)
    return small(without), small(with_it)


def centroid(weights: np.ndarray) -> tuple[float, float]:
    rows, cols = np.mgrid[: weights.shape[0], : weights.shape[1]]
    total = weights.sum()
    return float((weights * rows).sum() / total), float((weights * cols).sum() / total)


def one_side_share(weights: np.ndarray) -> float:
    """The share of `weights` on its heavier side of the image's vertical midline."""
    left = weights[:, : SIDE // 2].sum()
    return float(max(left, weights.sum() - left) / weights.sum())


# ------------------------------------------------------------------------------------------- the contract


def test_contract_names():
    assert FINDINGS == ("cardiomegaly", "pleural effusion", "pneumothorax", "nodule", "consolidation")
    assert set(QUESTIONS) == set(FINDINGS)
    assert all(q.startswith("Is there") and q.endswith("?") for q in QUESTIONS.values())
    assert finding_slug("pleural effusion") == "pleural-effusion"


def test_sample_phantom_shape_range_and_ground_truth():
    phantom = sample_phantom(np.random.default_rng(0), size=96)
    assert isinstance(phantom, Phantom)
    assert phantom.image.shape == (96, 96) and phantom.image.dtype == np.float32
    assert 0.0 <= phantom.image.min() and phantom.image.max() <= 1.0
    assert set(phantom.findings) == set(FINDINGS)
    assert all(isinstance(v, bool) for v in phantom.findings.values())


def test_p_finding_extremes_and_balance():
    rng = np.random.default_rng(1)
    assert not any(sample_phantom(rng, 32, p_finding=0.0).findings.values())
    assert all(sample_phantom(rng, 32, p_finding=1.0).findings.values())
    counts = np.zeros(len(FINDINGS))
    for _ in range(200):
        counts += [sample_phantom(rng, 32).findings[f] for f in FINDINGS]
    assert np.all((counts > 70) & (counts < 130)), counts


def test_bad_arguments_are_refused_clearly():
    rng = np.random.default_rng(0)
    with pytest.raises(OptionError, match="unknown phantom finding"):
        render_phantom(rng, {"fracture": True})
    with pytest.raises(OptionError, match="size"):
        render_phantom(rng, {}, size=8)
    with pytest.raises(OptionError, match="p_finding"):
        sample_phantom(rng, 64, p_finding=1.5)
    with pytest.raises(OptionError, match="n must be"):
        generate_phantoms("/nonexistent-never-created", 0, 1)


# ------------------------------------------------------------------------------------------ determinism


def test_same_seed_same_pixels_different_seed_different():
    a = sample_phantom(np.random.default_rng(7))
    b = sample_phantom(np.random.default_rng(7))
    c = sample_phantom(np.random.default_rng(8))
    assert np.array_equal(a.image, b.image) and a.findings == b.findings
    assert np.abs(a.image - c.image).mean() > 0.01


def test_anatomy_varies_between_phantoms():
    """Positioning, anatomy and exposure differ between healthy phantoms, not only the noise."""
    images = [small(render_phantom(np.random.default_rng(s), {})) for s in range(6)]
    diffs = [np.abs(images[i] - images[j]).mean() for i in range(6) for j in range(i + 1, 6)]
    assert min(diffs) > 0.02


def test_a_chest_layout():
    """Dark lung fields on both sides of a bright mediastinum, bright abdomen below, air outside the body."""
    for seed in range(6):
        img = small(render_phantom(np.random.default_rng(seed), {}))
        lungs = np.concatenate([img[18:36, 12:20].ravel(), img[18:36, 44:52].ravel()])
        mediastinum = img[18:36, 29:35]
        assert np.median(lungs) + 0.2 < np.median(mediastinum)
        assert np.median(lungs) + 0.2 < np.median(img[58:, 20:44])  # abdomen
        assert np.median(img[:6, :3]) < np.median(lungs)  # air above the shoulders


# ------------------------------------------------------------------------- each finding is in the pixels


@pytest.mark.parametrize("seed", SEEDS)
def test_cardiomegaly_widens_the_heart(seed):
    without, with_it = toggled("cardiomegaly", seed)
    diff = with_it - without
    grown = diff > 0.15
    assert grown.sum() >= 40  # a substantial area turned from lung to heart
    rows, _ = np.nonzero(grown)
    assert rows.min() >= SIDE * 0.4  # below the hila: the heart, not the apices
    # row by row across the lower chest, the bright (heart-level) region is wider
    lung, heart = np.percentile(without[16:40, 8:56], 20), np.median(without[30:40, 29:35])
    threshold = 0.5 * (lung + heart)
    widths = lambda img: (img[24:56, 4:60] > threshold).sum(axis=1)  # noqa: E731
    widening = widths(with_it) - widths(without)
    assert widening.min() >= -2  # (where the heart now covers fluid or consolidation a row can lose a pixel)
    assert widening.max() >= 4 and widening.sum() >= 20  # typically 6-10 px wider over 10-15 rows


@pytest.mark.parametrize("seed", SEEDS)
def test_pleural_effusion_brightens_a_lung_base(seed):
    without, with_it = toggled("pleural effusion", seed)
    diff = with_it - without
    assert diff.min() > -0.1  # fluid only adds density
    brighter = np.clip(diff, 0.0, None)
    assert (diff > 0.15).sum() >= 30
    assert brighter[SIDE // 2 :].sum() >= 0.9 * brighter.sum()  # the lower half: the bases
    assert centroid(brighter)[0] > SIDE * 0.55
    assert brighter[:, 29:35].sum() < 0.1 * brighter.sum()  # in the lungs' bases, not the mediastinum
    # the costophrenic angle is blunted: the lateral lung base, dark before, is bright now
    for half in (slice(0, SIDE // 2), slice(SIDE // 2, SIDE)):
        if brighter[:, half].sum() > 0.2 * brighter.sum():
            assert (diff[SIDE // 2 :, half] > 0.15).sum() >= 15


@pytest.mark.parametrize("seed", SEEDS)
def test_pneumothorax_darkens_the_lung_periphery(seed):
    without, with_it = toggled("pneumothorax", seed)
    diff = with_it - without
    darker = np.clip(-diff, 0.0, None)
    assert (diff < -0.08).sum() >= 40  # a lucent rim, not a line
    assert one_side_share(darker) > 0.97  # one lung
    row, col = centroid(darker)
    assert abs(col - MID) > 10 and row < SIDE * 0.5  # lateral and upper: apex and chest wall
    # the rim hugs the chest wall: just outside its outer edge, row by row, lies brighter chest wall
    # (most rows: a consolidation under the rim can make the lung there as bright as the wall)
    lung_level = float(np.median(without[diff < -0.08]))  # what the rim was before: lung
    walled = []
    for r in range(20, 38):
        rim = np.nonzero(diff[r] < -0.08)[0]
        if rim.size:
            outer = rim.min() if col < MID else rim.max()
            outside = without[r, max(outer - 3, 0) : outer] if col < MID else without[r, outer + 1 : outer + 4]
            walled.append(outside.max() > lung_level + 0.06)
    assert len(walled) >= 6 and np.mean(walled) >= 0.75


@pytest.mark.parametrize("seed", SEEDS)
def test_nodule_adds_a_small_bright_blob_in_a_lung(seed):
    without, with_it = toggled("nodule", seed)
    diff = with_it - without
    assert diff.min() > -1e-6
    assert diff.max() > 0.3  # contrast 0.4-0.5 survives the downscale
    blob = diff > 0.1
    assert 4 <= blob.sum() <= 40  # round and small
    rows, cols = np.nonzero(blob)
    assert np.ptp(rows) <= 7 and np.ptp(cols) <= 7
    r, c = int(np.rint(rows.mean())), int(np.rint(cols.mean()))
    assert abs(c - MID) > 6  # in a lung, not on the mediastinum
    assert without[r, c] < np.median(without[28:36, 29:35])  # on dark lung, darker than mediastinum


@pytest.mark.parametrize("seed", SEEDS)
def test_consolidation_brightens_part_of_one_lung(seed):
    without, with_it = toggled("consolidation", seed)
    diff = with_it - without
    assert diff.min() > -1e-6
    patch = diff > 0.1
    assert patch.sum() >= 40  # larger than a nodule
    assert diff[patch].mean() > 0.12
    assert one_side_share(np.clip(diff, 0.0, None)) > 0.97  # one lung
    assert patch.sum() < 0.25 * SIDE * SIDE  # part of a lung, not the whole picture


@pytest.mark.parametrize("finding", FINDINGS)
def test_switching_a_finding_leaves_the_rest_alone(finding):
    """Same generator state: only the finding's own pixels change (all else equal)."""
    for seed in range(4):
        without, with_it = toggled(finding, seed, size=128)
        assert (np.abs(with_it - without) > 0.02).mean() < 0.2


@pytest.mark.parametrize("seed", range(24))
def test_nodule_and_consolidation_never_share_a_lung(seed):
    rng_state = np.random.default_rng(seed)
    base = {name: bool(flag) for name, flag in zip(FINDINGS, rng_state.random(len(FINDINGS)) < 0.5)}
    none = {**base, "nodule": False, "consolidation": False}
    render = lambda f: small(render_phantom(np.random.default_rng(seed), f, 128))  # noqa: E731
    both = render({**none, "nodule": True, "consolidation": True})
    consolidation_only = render({**none, "consolidation": True})
    nodule_only = render({**none, "nodule": True})
    nodule = np.clip(both - consolidation_only, 0.0, None)
    consolidation = np.clip(consolidation_only - render(none), 0.0, None)
    nodule_col, consolidation_col = centroid(nodule)[1], centroid(consolidation)[1]
    assert (nodule_col - MID) * (consolidation_col - MID) < 0  # opposite sides of the midline
    assert np.array_equal(nodule, np.clip(nodule_only - render(none), 0.0, None))  # and it never moved


# -------------------------------------------------------------------------------------------- the files


def read_manifest(path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_generate_writes_images_dicoms_and_manifest(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    n, seed = 7, 11
    manifest = generate_phantoms(tmp_path / "set", n, seed, size=64, dicom_every=3)
    assert manifest == tmp_path / "set" / "manifest.csv"
    columns, rows = read_manifest(manifest)
    assert columns == ["image", "question", "label", "study_id", "finding", "mask"]
    assert len(rows) == n * len(FINDINGS)
    assert len({row["study_id"] for row in rows}) == len(rows)
    files = sorted(p.name for p in (tmp_path / "set" / "images").iterdir())
    assert len(files) == n
    assert [f for f in files if f.endswith(".dcm")] == ["phantom-11-00002.dcm", "phantom-11-00005.dcm"]

    for i in range(n):
        truth = sample_phantom(np.random.default_rng([seed, i]), 64)
        study_rows = rows[i * len(FINDINGS) : (i + 1) * len(FINDINGS)]
        assert [r["finding"] for r in study_rows] == list(FINDINGS)
        assert len({r["image"] for r in study_rows}) == 1
        for row in study_rows:
            assert row["question"] == QUESTIONS[row["finding"]]
            assert row["label"] == ("yes" if truth.findings[row["finding"]] else "no")
            assert row["study_id"] == f"phantom-11-{i:05d}-{finding_slug(row['finding'])}"
        path = manifest.parent / study_rows[0]["image"]  # relative to the manifest's folder
        assert path.is_file()
        if path.suffix == ".png":
            with Image.open(path) as im:
                assert im.mode == "L" and im.size == (64, 64)
                assert np.array_equal(np.asarray(im), to_uint8(truth.image))
            continue
        ds = pydicom.dcmread(path)
        assert str(ds.PatientName) == "PHANTOM" and ds.PatientID == f"phantom-11-{i:05d}"
        assert ds.BitsAllocated == 16 and ds.Rows == ds.Columns == 64
        for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
            assert keyword in ds
        stored = ds.pixel_array.astype(np.int64)
        expected = np.rint(truth.image * 4095).astype(np.int64)
        if i == 2:
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            assert np.array_equal(stored, expected)
        else:
            assert ds.PhotometricInterpretation == "MONOCHROME1"
            assert np.array_equal(stored, 4095 - expected)  # stored inverted: high values are dark
        # modality LUT, window, MONOCHROME1 inversion: the picture comes back
        # (pydicom's window maps onto the modality LUT's output range, [intercept, intercept + 4095])
        shown = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
        shown = (shown - float(ds.RescaleIntercept)) / 4095
        if ds.PhotometricInterpretation == "MONOCHROME1":
            shown = 1.0 - shown
        assert np.abs(shown - truth.image).max() < 1e-3


def test_generate_is_byte_identical_by_seed_and_a_prefix_for_smaller_n(tmp_path):
    a = generate_phantoms(tmp_path / "a", 5, 3, size=48, dicom_every=2).parent
    b = generate_phantoms(tmp_path / "b", 5, 3, size=48, dicom_every=2).parent
    c = generate_phantoms(tmp_path / "c", 5, 4, size=48, dicom_every=2).parent
    d = generate_phantoms(tmp_path / "d", 3, 3, size=48, dicom_every=2).parent
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "images/phantom-3-00000.png").read_bytes() != (c / "images/phantom-4-00000.png").read_bytes()
    for name in ("images/phantom-3-00000.png", "images/phantom-3-00001.dcm", "images/phantom-3-00002.png"):
        assert (a / name).read_bytes() == (d / name).read_bytes()


def test_a_datasets_own_manifest_is_never_replaced(tmp_path):
    mine = "image,question,label\nscan.png,Is there a nodule?,yes\n"
    (tmp_path / "manifest.csv").write_text(mine)
    with pytest.raises(OptionError, match="manifest.csv exists and is not a phantom manifest"):
        generate_phantoms(tmp_path, 2, 0, size=64)
    assert (tmp_path / "manifest.csv").read_text() == mine and not (tmp_path / "images").exists()
    generate_phantoms(tmp_path / "again", 2, 0, size=64)
    generate_phantoms(tmp_path / "again", 3, 0, size=64)  # phantoms over phantoms: rewritten
    assert len((tmp_path / "again" / "manifest.csv").read_text().splitlines()) == 1 + 3 * 5


def test_no_dicoms_when_dicom_every_is_zero(tmp_path):
    manifest = generate_phantoms(tmp_path, 4, 0, size=32, dicom_every=0)
    _, rows = read_manifest(manifest)
    assert all(row["image"].endswith(".png") for row in rows)
