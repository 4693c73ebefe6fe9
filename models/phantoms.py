"""Synthetic chest phantoms: procedural PA chest-radiograph-like images with ground-truth findings.

They train and evaluate the bundled demo model on a CPU, offline, so they are drawn to stay readable after
the model's downscale to 64 x 64 pixels, and they are deterministic by seed.

The picture, in the usual PA display convention (the patient's right on the image's left): dark lung
fields with rounded apices and vessel markings that fade from the hila, a bright mediastinum with the
spine and a dark trachea, the heart shadow mostly to the image's right, diaphragm domes (the right one
higher) with the costophrenic angles, clavicles and rib hints, the chest-wall soft tissue and air outside
the body. Every phantom varies in anatomy (lung size, heart position and size, dome heights), positioning
(rotation of a few degrees, shift, scale) and exposure (gamma, brightness, contrast, noise).

Findings, as drawn:

- cardiomegaly: the heart's width over the thorax's (cardiothoracic ratio) is 0.56-0.68 when present and
  0.33-0.44 when absent.
- pleural effusion: a bright fluid opacity fills the lung base of one or both sides up to a meniscus that
  climbs the lateral chest wall, blunting the costophrenic angle and hiding the dome.
- pneumothorax: a dark rim without lung markings along the apex and lateral edge of one lung, inside it the
  bright thin visceral pleural line of the collapsed lung.
- nodule: a round opacity of radius 0.08-0.11 of the lung's width and contrast 0.4-0.5, in the upper or
  middle zone of a lung, never in the lung that holds a consolidation.
- consolidation: a patchy, fluffy opacity inside one lung, bounded by its pleura, sometimes with darker
  air-bronchogram streaks.

`render_phantom` draws the same random numbers whatever findings it is asked for, so rendering twice from
the same generator state with one finding switched changes only the pixels of that finding. This is what
the tests use to check that every label is visible in the pixels.
"""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import OptionError

FINDINGS = ("cardiomegaly", "pleural effusion", "pneumothorax", "nodule", "consolidation")

QUESTIONS: dict[str, str] = {
    "cardiomegaly": "Is there cardiomegaly?",
    "pleural effusion": "Is there a pleural effusion?",
    "pneumothorax": "Is there a pneumothorax?",
    "nodule": "Is there a lung nodule?",
    "consolidation": "Is there consolidation?",
}

MANIFEST_COLUMNS = ("image", "question", "label", "study_id", "finding", "mask")

#: a pixel belongs to a finding's mask when drawing the finding changes it by more than this (of full
#: brightness); the same rule marks the patches the demo model's training located findings with
MASK_THRESHOLD = 0.08

#: cardiothoracic ratio ranges, absent and present
CTR_NORMAL = (0.33, 0.44)
CTR_ENLARGED = (0.56, 0.68)

#: the heart shadow's minor over major semi-axis
HEART_MINOR = 0.75

#: smallest side that still draws every structure with at least a pixel or two
MIN_SIZE = 32


@dataclass(frozen=True)
class Phantom:
    """One study: the picture and its ground truth."""

    image: np.ndarray  # float32 [H, W] in [0, 1], 1 = bright (bone, soft tissue), 0 = dark (air)
    findings: dict[str, bool]  # ground truth for every name in FINDINGS
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # present finding -> bool [H, W]: its pixels


def finding_slug(finding: str) -> str:
    """The finding's name as it appears in a row's study_id: "pleural effusion" -> "pleural-effusion"."""
    return finding.replace(" ", "-")


# ----------------------------------------------------------------------------------------------- drawing


def _step(d, width):
    """A soft step: 0 where d << 0, 1 where d >> 0, the edge `width` wide (anti-aliased masks)."""
    return 0.5 + 0.5 * np.tanh(d * (1.0 / width))


def _mix(base, value, alpha):
    return base + alpha * (value - base)


def _smooth_noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Unit-variance noise that varies smoothly over about size / cells pixels (bicubic upsampling)."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return field * (1.0 / max(float(field.std()), 1e-6))


def _check_findings(findings: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(findings) - set(FINDINGS))
    if unknown:
        raise OptionError(f"unknown phantom finding(s) {unknown}; known: {', '.join(FINDINGS)}")
    return {name: bool(findings.get(name, False)) for name in FINDINGS}


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise OptionError(f"phantom size must be an integer of at least {MIN_SIZE} pixels, got {size!r}")
    return int(size)


def _draw_parameters(rng: np.random.Generator) -> dict:
    """Every number the picture needs, drawn in a fixed order whatever the findings."""
    u = rng.uniform
    p: dict = {}
    # positioning
    p["rot"] = math.radians(u(-4.0, 4.0))
    p["shift_x"], p["shift_y"] = u(-0.05, 0.05), u(-0.05, 0.05)
    p["scale"] = u(0.92, 1.05)
    # anatomy
    p["body_hw"] = u(0.87, 0.94)
    p["lung_cx"] = u(0.40, 0.44)
    p["lung_ax"] = u(0.29, 0.33)
    p["lung_ax_asym"] = u(-0.015, 0.015)
    p["apex_y"] = u(-0.82, -0.72)
    p["cpa_y"] = u(0.54, 0.64)
    p["dome_rise_r"] = u(0.14, 0.20)  # how far the right dome rises above the costophrenic angle
    p["dome_rise_l"] = p["dome_rise_r"] - u(0.02, 0.05)
    p["mid_x"] = u(-0.02, 0.02)
    p["med_hw"] = u(0.12, 0.15)
    p["heart_above_dome"] = u(0.08, 0.14)
    p["heart_shift"] = u(-0.03, 0.03)
    p["ctr_u"] = u(0.0, 1.0)
    p["hilum_y"] = u(-0.18, -0.08)
    p["rib_spacing"] = u(0.125, 0.145)
    p["rib_phase"] = u(0.0, 1.0)
    p["vessel_k"] = u(5.0, 12.0, size=(2, 4))
    p["vessel_m"] = u(-2.0, 2.0, size=(2, 4))
    p["vessel_phase"] = u(0.0, 2 * math.pi, size=(2, 4))
    # densities
    p["air"] = u(0.0, 0.04)
    p["soft"] = u(0.46, 0.54)
    p["lung"] = u(0.15, 0.21)
    p["heart"] = u(0.62, 0.70)
    p["abdomen"] = p["heart"] - u(0.0, 0.04)
    p["mediastinum"] = u(0.66, 0.74)
    p["marking_amp"] = u(0.07, 0.11)
    p["rib_amp"] = u(0.05, 0.08)
    p["clavicle_amp"] = u(0.16, 0.24)
    # exposure
    p["gamma"] = u(0.8, 1.25)
    p["contrast"] = u(0.92, 1.05)
    p["brightness"] = u(-0.04, 0.04)
    p["noise_sd"] = u(0.008, 0.022)
    # pleural effusion
    p["eff_sides"] = u(0.0, 1.0)
    p["eff_level_r"], p["eff_level_l"] = u(0.16, 0.28), u(0.16, 0.28)
    p["eff_meniscus"] = u(0.12, 0.20)
    p["eff_density"] = u(0.58, 0.68)
    # pneumothorax
    p["ptx_side"] = u(0.0, 1.0)
    p["ptx_depth"] = u(0.34, 0.46)
    p["ptx_extent"] = u(0.70, 0.92)
    p["ptx_dark"] = u(0.0, 0.04)
    p["ptx_line"] = u(0.25, 0.35)
    # nodule, and the side of the lung that holds it (the consolidation takes the other lung)
    p["lesion_side"] = u(0.0, 1.0)
    p["nod_u"], p["nod_v"] = u(-0.25, 0.45), u(0.22, 0.55)
    p["nod_radius"] = u(0.08, 0.11)
    p["nod_contrast"] = u(0.40, 0.50)
    # consolidation
    p["con_u"], p["con_v"] = u(0.0, 0.5), u(0.35, 0.70)
    p["con_radius"] = u(0.30, 0.40)
    p["con_aspect"] = u(0.75, 1.3)
    p["con_density"] = u(0.45, 0.55)
    p["con_bronchogram"] = u(0.0, 0.5)
    return p


def _lung_half_width(ax, v):
    """A lung's half-width at height v (0 apex, 1 costophrenic angle): narrow apex, widest at the base."""
    return ax * (0.70 + 0.30 * np.sqrt(np.clip(v * (1.0 / 0.75), 0.0, 1.0)))


def render_phantom(rng: np.random.Generator, findings: dict[str, bool], size: int = 256) -> np.ndarray:
    """A float32 [size, size] picture in [0, 1] showing exactly `findings` (names missing are absent).

    The generator is consumed identically whatever the findings, so two calls from the same state that
    differ in one finding differ only in that finding's pixels.
    """
    present = _check_findings(findings)
    n = _check_size(size)
    p = _draw_parameters(rng)
    noise = rng.standard_normal((n, n)).astype(np.float32)
    texture = _smooth_noise(rng, 40, n)  # parenchymal mottle, vessel wiggle
    fluff = _smooth_noise(rng, 14, n)  # consolidation patchiness

    # Canonical coordinates: x left to right, y top to bottom, both about [-1, 1]; the pixel grid is
    # mapped into them through the positioning jitter (scale, shift, rotation).
    t = (np.arange(n, dtype=np.float32) + 0.5) * (2.0 / n) - 1.0
    gx, gy = np.meshgrid(t, t)
    sx, sy = (gx - p["shift_x"]) / p["scale"], (gy - p["shift_y"]) / p["scale"]
    c, s = math.cos(p["rot"]), math.sin(p["rot"])
    x, y = c * sx + s * sy, -s * sx + c * sy
    px = 2.0 / n / p["scale"]  # one pixel in canonical units
    edge = 1.2 * px
    mid = p["mid_x"]

    # body: chest-wall soft tissue, thicker (brighter) in the middle, narrowing to the neck at the top
    shoulder = np.clip((-0.78 - y) * (1.0 / 0.22), 0.0, 1.0)
    body_hw = p["body_hw"] - 0.50 * shoulder**1.5
    body = _step(body_hw - np.abs(x - mid), 2 * px)
    thickness = np.sqrt(np.clip(1.0 - ((x - mid) / body_hw) ** 2, 0.0, 1.0))
    img = _mix(np.float32(p["air"]), p["soft"] * (0.8 + 0.2 * thickness), body)

    # lungs (side -1: image left, the patient's right; +1: image right), each in its own coordinates:
    # v runs 0 (apex) to 1 (costophrenic angle), ul -1 (medial) to 1 (lateral wall)
    height = p["cpa_y"] - p["apex_y"]
    v = (y - p["apex_y"]) * (1.0 / height)
    cap = 0.22  # the apex is rounded over this much of the height
    w = np.clip((cap - v) * (1.0 / cap), 0.0, None)
    lungs = {}
    for side in (-1, 1):
        ax = p["lung_ax"] + side * p["lung_ax_asym"]
        near = side * (x - mid) > 0
        half_w = _lung_half_width(ax, v)
        ul = (side * (x - mid) - p["lung_cx"]) / half_w
        r = np.sqrt(ul * ul + w * w)
        rise = p["dome_rise_r"] if side == -1 else p["dome_rise_l"]
        dome = p["cpa_y"] - rise + rise * ((np.maximum(ul, -1.0) + 0.1) * (1.0 / 1.1)) ** 2
        dome = dome + 1.5 * half_w * np.maximum(ul - 1.0, 0.0)  # the chest wall below the angle
        shape = _step((1.0 - r) * half_w, edge)
        lungs[side] = dict(ax=ax, ul=ul, half_w=half_w, dome=dome, shape=shape, near=near,
                           mask=shape * _step(dome - y, edge))

    # abdomen below the domes, a small gastric bubble under the left one
    diaphragm = np.where(x < mid, lungs[-1]["dome"], lungs[1]["dome"])
    abdomen = body * _step(y - diaphragm, 1.5 * edge)
    img = _mix(img, p["abdomen"] * (0.9 + 0.1 * thickness), abdomen)
    bubble_x = mid + p["lung_cx"] + 0.06
    bubble_y = p["cpa_y"] - p["dome_rise_l"] + 0.10
    bubble = _step(0.05 - np.hypot((x - bubble_x) * (1.0 / 1.5), y - bubble_y), 2 * px) * abdomen
    img = img - 0.12 * bubble

    # heart: the cardiothoracic ratio sets its width, about a third of it right of the midline; its lower
    # half sinks into the diaphragm
    lo, hi = CTR_ENLARGED if present["cardiomegaly"] else CTR_NORMAL
    ctr = lo + (hi - lo) * p["ctr_u"]
    thorax_w = 2 * p["lung_cx"] + lungs[-1]["ax"] + lungs[1]["ax"]
    heart_w = ctr * thorax_w
    heart_cx = mid + 0.18 * heart_w + p["heart_shift"]
    # a tilted ellipse, its long axis running down towards the image's right (the apex), scaled so that
    # its horizontal extent is exactly heart_w and its vertical extent heart_h
    heart_h = 0.22 + 0.12 * ctr
    heart_y = p["cpa_y"] - p["dome_rise_l"] - p["heart_above_dome"]  # its widest row clears the dome
    tilt = math.radians(35.0)
    ct, st = math.cos(tilt), math.sin(tilt)
    kx, ky = math.hypot(ct, HEART_MINOR * st), math.hypot(st, HEART_MINOR * ct)
    hx, hy = (x - heart_cx) * (2.0 * kx / heart_w), (y - heart_y) * (ky / heart_h)
    hq = np.hypot(ct * hx + st * hy, (-st * hx + ct * hy) * (1.0 / HEART_MINOR))
    heart = _step((1.0 - hq) * HEART_MINOR * heart_h, edge) * (1.0 - abdomen)  # it sits on the diaphragm
    img = _mix(img, p["heart"], heart)

    # mediastinum with the aortic knob, the spine faintly through it, the trachea
    med_hw = p["med_hw"] * (1.0 + 0.15 * np.clip(y + 0.3, 0.0, 1.0))
    knob = _step(0.06 - np.hypot(x - (mid + p["med_hw"] + 0.005), (y + 0.36) * 0.8), edge)
    mediastinum = np.maximum(_step(med_hw - np.abs(x - mid), edge), knob) * body
    mediastinum = mediastinum * _step(heart_y - y, 4 * px)
    img = _mix(img, p["mediastinum"], mediastinum)
    spine = _step(0.06 - np.abs(x - mid), edge) * body
    img = img + spine * (0.03 + 0.02 * np.cos(math.pi * y * (1.0 / 0.11)) ** 2)
    trachea = _step(0.03 - np.abs(x - mid - 0.01 * (y + 1.0)), edge) * _step(-0.28 - y, 4 * px)
    img = img - 0.16 * trachea * body

    # lung fields: air with vessel markings branching out of the hila, carved by heart and mediastinum
    solid = np.maximum(heart, mediastinum)
    lateral = np.abs(x - mid)
    hilum_x = p["lung_cx"] - 0.55 * p["lung_ax"]
    dist = np.hypot(lateral - hilum_x, y - p["hilum_y"])
    angle = np.arctan2(y - p["hilum_y"], lateral - hilum_x)
    log_dist = np.log(dist + 0.03)
    for i, side in enumerate((-1, 1)):
        wave = 0.35 * texture
        for k, m, phase in zip(p["vessel_k"][i], p["vessel_m"][i], p["vessel_phase"][i], strict=True):
            wave = wave + np.cos(k * angle + m * log_dist + phase)
        lungs[side]["vessels"] = np.exp(-((wave * (1.0 / 0.35)) ** 2))
        lungs[side]["visible"] = lungs[side]["mask"] * (1.0 - solid)
    vessels = np.where(lungs[-1]["near"], lungs[-1]["vessels"], lungs[1]["vessels"])
    hilar = 0.8 * np.exp(-((dist * (1.0 / 0.11)) ** 2))
    markings = p["marking_amp"] * (vessels * np.exp(-dist * (1.0 / 0.45)) + hilar)
    lung_visible = lungs[-1]["visible"] + lungs[1]["visible"]
    parenchyma = p["lung"] * (1.0 + 0.08 * texture) + markings
    img = _mix(img, parenchyma, lung_visible)

    # pneumothorax: a dark rim without markings along the apex and lateral wall, inside it the visceral
    # pleural line of the collapsed lung
    if present["pneumothorax"]:
        lung = lungs[-1 if p["ptx_side"] < 0.5 else 1]
        taper = np.clip((p["ptx_extent"] - v) * (1.0 / 0.25), 0.0, 1.0)
        r_in = 1.0 - p["ptx_depth"] * taper
        rr = np.sqrt(np.maximum(lung["ul"], 0.0) ** 2 + w * w)
        gap = (rr - r_in) * lung["half_w"]  # canonical distance outside the collapsed lung's edge
        rim = lung["visible"] * _step(gap, edge)
        img = _mix(img, p["ptx_dark"], rim)
        line = np.exp(-((gap * (1.0 / (0.9 * px))) ** 2)) * np.minimum(taper * 3.0, 1.0)
        img = img + p["ptx_line"] * line * lung["visible"]

    # posterior ribs arching over the lung fields, clavicles over the apices
    posterior = y - 0.25 * lateral - 1.1 * np.maximum(lateral - 0.35, 0.0) ** 2
    ribs = (0.5 + 0.5 * np.cos(2 * math.pi * (posterior * (1.0 / p["rib_spacing"]) + p["rib_phase"]))) ** 3
    anterior = y + 0.45 * lateral
    ribs = ribs + 0.5 * (0.5 + 0.5 * np.cos(2 * math.pi * anterior * (1.0 / (1.3 * p["rib_spacing"])))) ** 3
    img = img + p["rib_amp"] * ribs * lung_visible
    a = lateral - 0.07
    clav_y = -0.64 - 0.22 * a + 0.06 * np.sin(math.pi * np.clip(a * (1.0 / 0.64), 0.0, 1.0))
    clavicle = np.exp(-(((y - clav_y) * (1.0 / 0.032)) ** 2)) * _step(a, 2 * px) * _step(0.64 - a, 3 * px)
    img = img + p["clavicle_amp"] * clavicle * body

    # pleural effusion: fluid at the base up to a meniscus that climbs the lateral wall, blunting the
    # costophrenic angle and hiding the dome
    if present["pleural effusion"]:
        sides = (-1,) if p["eff_sides"] < 0.4 else (1,) if p["eff_sides"] < 0.8 else (-1, 1)
        for side in sides:
            lung = lungs[side]
            level = p["eff_level_r"] if side == -1 else p["eff_level_l"]
            reach = np.clip((lung["ul"] + 1.0) * 0.5, 0.0, 1.2)
            top = p["cpa_y"] - height * (level + p["eff_meniscus"] * reach**2.5)
            fluid = lung["shape"] * _step(y - top, 2 * px) * _step(lung["dome"] + 0.04 - y, 2 * px)
            fluid = fluid * lung["near"]
            density = p["eff_density"] * (0.85 + 0.15 * np.clip((y - top) * 4.0, 0.0, 1.0))
            img = _mix(img, density, fluid * (1.0 - solid))
            # seen through the heart, fading medially
            through = heart * np.clip((lung["ul"] + 0.6) * 1.25, 0.0, 1.0)
            img = img + 0.5 * (density - p["lung"]) * fluid * through

    # The nodule's and the consolidation's lungs are opposite whether or not either is present: never the
    # same lung, and switching one on or off never moves the other.
    nod_side = -1 if p["lesion_side"] < 0.5 else 1
    con_side = -nod_side
    # nodule: a round opacity in the upper or middle zone
    if present["nodule"]:
        side = nod_side
        vn = p["nod_v"]
        nx = mid + side * (p["lung_cx"] + p["nod_u"] * _lung_half_width(lungs[side]["ax"], vn))
        ny = p["apex_y"] + vn * height
        radius = p["nod_radius"] * 2 * lungs[side]["ax"]
        d = np.hypot(x - nx, y - ny)
        dome_profile = np.sqrt(np.clip(1.0 - (d * (1.0 / radius)) ** 2, 0.0, 1.0))
        img = img + p["nod_contrast"] * _step(radius - d, 1.5 * px) * (0.55 + 0.45 * dome_profile)

    # consolidation: a patchy, fluffy opacity bounded by the pleura, with air bronchograms
    if present["consolidation"]:
        lung = lungs[con_side]
        vc = p["con_v"]
        cx = mid + con_side * (p["lung_cx"] + p["con_u"] * _lung_half_width(lung["ax"], vc))
        cy = p["apex_y"] + vc * height
        radius = p["con_radius"] * 2 * lung["ax"]
        d = np.hypot((x - cx) * (1.0 / p["con_aspect"]), (y - cy) * p["con_aspect"]) * (1.0 / radius)
        patch = np.exp(-(d**4)) * np.clip(0.8 + 0.3 * fluff, 0.35, 1.0)
        bronchi = (0.5 + 0.5 * np.cos(20.0 * angle + 0.6 * texture)) ** 8  # streaks out of the hilum
        fade = np.clip((dist - 0.10) * (1.0 / 0.15), 0.0, 1.0)  # no converging star at the hilum
        patch = patch * (1.0 - p["con_bronchogram"] * fade * bronchi)
        img = img + p["con_density"] * patch * lung["mask"] * (1.0 - 0.5 * solid)  # dimmer behind the heart

    # exposure and noise
    img = np.clip(img, 0.0, 1.0) ** p["gamma"]
    img = p["brightness"] + p["contrast"] * img + p["noise_sd"] * noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def sample_phantom(rng: np.random.Generator, size: int = 256, p_finding: float = 0.5,
                   masks: bool = False) -> Phantom:
    """A phantom whose findings are each present, independently, with probability `p_finding`; with
    `masks`, where each present finding lies (the same picture with it switched off, compared)."""
    if not 0.0 <= p_finding <= 1.0:
        raise OptionError(f"p_finding must lie in [0, 1], got {p_finding!r}")
    draws = rng.random(len(FINDINGS))
    findings = {name: bool(draw < p_finding) for name, draw in zip(FINDINGS, draws, strict=True)}
    state = copy.deepcopy(rng)
    image = render_phantom(rng, findings, size)
    where = {name: finding_mask(state, image, findings, name) for name in (FINDINGS if masks else ()) if findings[name]}
    return Phantom(image=image, findings=findings, masks=where)


def finding_mask(state: np.random.Generator, image: np.ndarray, findings: dict[str, bool], name: str) -> np.ndarray:
    """Where the present finding `name` lies in `image`, drawn from a generator in `state`: `render_phantom`
    consumes its generator identically whatever the findings, so the picture re-rendered from the same state
    with that finding switched off differs exactly in its pixels (by more than MASK_THRESHOLD)."""
    without = render_phantom(copy.deepcopy(state), {**findings, name: False}, image.shape[0])
    return np.abs(image - without) > MASK_THRESHOLD


# ------------------------------------------------------------------------------------------------ files


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A [0, 1] float picture as 8-bit gray."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


#: stored DICOM values: 12 bits; the modality LUT maps them to output units by these
DICOM_BITS = 12
DICOM_SLOPE = 1.0
DICOM_INTERCEPT = -1024.0


def write_dicom(path: Path, image: np.ndarray, study: str, *, monochrome1: bool, seed: int) -> None:
    """A 16-bit CR DICOM of `image`, MONOCHROME2 or (stored values inverted) MONOCHROME1.

    No real identifiers: PatientName is "PHANTOM", PatientID the study id, UIDs derived from seed and study.
    The window covers the whole stored range, so modality LUT, then window, then MONOCHROME1 inversion
    gives back the picture.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    top = 2**DICOM_BITS - 1
    values = np.rint(np.clip(image, 0.0, 1.0) * top).astype(np.uint16)
    if monochrome1:
        values = (top - values).astype(np.uint16)
    sop_class = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
    entropy = ["quadrant-phantom", str(seed), study]
    sop_instance = generate_uid(entropy_srcs=entropy + ["sop"])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["quadrant-phantom-implementation"])

    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid(entropy_srcs=entropy + ["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=entropy + ["series"])
    ds.PatientName = "PHANTOM"
    ds.PatientID = study
    ds.StudyID = study[-16:]
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageComments = "Synthetic phantom from Quadrant; not a patient"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = (int(d) for d in image.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = DICOM_BITS
    ds.HighBit = DICOM_BITS - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = f"{DICOM_INTERCEPT:g}"
    ds.RescaleSlope = f"{DICOM_SLOPE:g}"
    ds.RescaleType = "US"
    # DICOM's linear window maps [c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2] onto the output range
    ds.WindowCenter = f"{DICOM_INTERCEPT + (top + 1) / 2:g}"
    ds.WindowWidth = f"{top + 1:g}"
    ds.PixelData = values.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _check_not_replacing_a_manifest(manifest: Path) -> None:
    """Refuse a folder whose manifest.csv is not one this generator wrote (a row whose study is not a
    phantom): writing the phantoms' would replace a dataset's manifest. Rewriting phantoms is fine."""
    if not manifest.exists():
        return
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            ours = all(row.get("study_id", "").startswith("phantom-") for row in csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        ours = False
    if not ours:
        raise OptionError(f"{manifest} exists and is not a phantom manifest: writing the phantoms' would replace "
                          "it; choose another --out")


def generate_phantoms(out_dir, n: int, seed: int, *, size: int = 256, dicom_every: int = 5,
                      masks: bool = True) -> Path:
    """Write n studies and out_dir/manifest.csv (one row per study and finding); return the manifest's path.

    With `masks`, each present finding's pixels go to masks/<study_id>.png (white on black, the study's size)
    and the row's `mask` column names it (empty for absent findings): the pointing game's ground truth.

    Study i is drawn from its own generator seeded by (seed, i), so a smaller n writes a prefix of a larger
    one. Every `dicom_every`-th study (0: none) is a 16-bit DICOM instead of an 8-bit PNG, alternately
    MONOCHROME2 and MONOCHROME1. The same seed writes byte-identical files.
    """
    for name, value, least in (("n", n, 1), ("seed", seed, 0), ("dicom_every", dicom_every, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise OptionError(f"{name} must be an integer of at least {least}, got {value!r}")
    size = _check_size(size)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OptionError(f"{out} exists and is not a folder; choose another --out")
    _check_not_replacing_a_manifest(out / "manifest.csv")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    if masks:
        (out / "masks").mkdir(exist_ok=True)

    rows = []
    for i in range(int(n)):
        study = f"phantom-{int(seed)}-{i:05d}"
        phantom = sample_phantom(np.random.default_rng([int(seed), i]), size, masks=masks)
        if dicom_every and i % dicom_every == dicom_every - 1:
            name = f"{study}.dcm"
            monochrome1 = (i // dicom_every) % 2 == 1
            write_dicom(images / name, phantom.image, study, monochrome1=monochrome1, seed=int(seed))
        else:
            name = f"{study}.png"
            Image.fromarray(to_uint8(phantom.image)).save(images / name, format="PNG")
        for finding in FINDINGS:
            study_id = f"{study}-{finding_slug(finding)}"
            mask = ""
            if finding in phantom.masks:
                mask = f"masks/{study_id}.png"
                Image.fromarray(phantom.masks[finding].astype(np.uint8) * 255).save(out / mask, format="PNG")
            rows.append({
                "image": f"images/{name}",
                "question": QUESTIONS[finding],
                "label": "yes" if phantom.findings[finding] else "no",
                "study_id": study_id,
                "finding": finding,
                "mask": mask,
            })

    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return manifest
