"""The study view: the picture the model sees, to zoom into or show full screen, and for a grayscale DICOM a
window/level a radiologist would expect (the file's own windows, full range, auto contrast, and dragging on
the image), on the study's own values rather than on the 8-bit picture.

The page sends the browser two things: the model's picture as a PNG (drawn as it is: "As the model sees
it"), and for a grayscale DICOM its values after the modality LUT, quantised to 16 bits over their range,
little-endian as every browser's typed arrays read them (about 2 MB for a chest film shown at up to MAX_SIDE
pixels a side). `JS` windows those values in the browser, so dragging costs no round trip and nothing is kept
on the server. Nothing from the DICOM header but pixel facts reaches the page.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from PIL import Image

from quadrant.errors import QuadrantError
from quadrant.images import Study
from quadrant.images.dicom import Grayscale, grayscale_values

#: the longest side shown: enough to zoom into a chest film, small enough for the page
MAX_SIDE = 1024
#: auto contrast: the window spanning these percentiles of the values
AUTO_PERCENTILES = (1.0, 99.0)


def viewer_html(study: Study, data: bytes) -> str:
    """The viewer for a freshly uploaded study (what `JS` brings to life)."""
    gray = _grayscale(study, data)
    # a grayscale DICOM's picture has three equal channels: one is shrunk, a third of the work
    picture = _shown(study.image.getchannel(0) if gray is not None else study.image)
    attributes = {"kind": "raster", "label": f"The study as the model sees it: {study.format}, {study.width} x "
                                             f"{study.height} pixels"}
    window_tools, frame = "", ""
    if gray is not None:
        values = np.asarray(_shown(Image.fromarray(gray.values)), dtype=np.float32)
        low, high = float(values.min()), float(max(values.max(), values.min() + 1))
        quantised = np.rint((values - low) / (high - low) * 65535).astype("<u2")
        # sent as they are: the 16 bits' low bytes are noise to a compressor, and on RG1_UNCR's 1,955 x 1,841 CR
        # zlib's fastest level took 46 ms of the preview to save 5% (1.87 MB against 1.97 MB)
        attributes.update(kind="dicom", raw=base64.b64encode(quantised.tobytes()).decode("ascii"),
                          width=str(values.shape[1]), height=str(values.shape[0]), low=repr(low), high=repr(high),
                          invert="1" if gray.monochrome1 else "0", presets=json.dumps(presets(gray, values)),
                          start=json.dumps(drag_start(gray, values)))
        window_tools = WINDOW_TOOLS
        frame = f'<p class="q-small" id="viewer-frame">Frame used: {gray.frame + 1} of {gray.frames}.</p>'
    data_attributes = " ".join(f'data-{key}="{html.escape(value)}"' for key, value in attributes.items())
    return (f'<div class="q-viewer" {data_attributes}>{TOOLS}{window_tools}'
            f'<div class="q-viewer-box"><canvas tabindex="0" role="img" '
            f'aria-label="{html.escape(attributes["label"])}"></canvas></div>'
            f'<img class="q-model-png" hidden alt="" src="{_png_url(picture)}">{frame}</div>')


def empty_html() -> str:
    return '<div class="q-viewer-empty">The study will show here as the model sees it.</div>'


def presets(gray: Grayscale, values: np.ndarray) -> list[dict]:
    """The windows offered besides the model's own picture: the file's further windows, the full range and an
    auto contrast; (centre, width) in the values' own units."""
    low, high = float(values.min()), float(values.max())
    offered = [{"name": f"File window {i + 1}{f' ({note})' if note else ''}", "centre": centre, "width": width}
               for i, (centre, width, note) in enumerate(gray.windows) if i > 0]
    offered.append({"name": "Full range", "centre": (low + high) / 2, "width": max(high - low, 1.0)})
    a, b = (float(v) for v in np.percentile(values, AUTO_PERCENTILES))
    offered.append({"name": "Auto contrast", "centre": (a + b) / 2, "width": max(b - a, 1.0)})
    return offered


def drag_start(gray: Grayscale, values: np.ndarray) -> dict:
    """Where dragging from the model's own picture starts: the file's first window, else the full range."""
    if gray.windows:
        return {"centre": gray.windows[0][0], "width": gray.windows[0][1]}
    low, high = float(values.min()), float(values.max())
    return {"centre": (low + high) / 2, "width": max(high - low, 1.0)}


def _grayscale(study: Study, data: bytes) -> Grayscale | None:
    if study.format != "DICOM":
        return None
    try:
        return grayscale_values(data, frame=study.facts.frame)
    except QuadrantError:  # the study itself decoded: the viewer then offers zoom only
        return None


def _shown(image: Image.Image) -> Image.Image:
    """The image at most MAX_SIDE pixels a side (never enlarged)."""
    scale = MAX_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _png_url(image: Image.Image) -> str:
    """The picture as a PNG data URL: one gray channel where its three are equal (a radiograph, as every
    grayscale DICOM is drawn), at zlib's fastest level. An 839 x 1,024 preview of a 2,048 x 2,500 DICOM took
    118 ms to encode as RGB at the default level (368 kB), and 20 ms as one channel at level 1 (302 kB)."""
    pixels = np.asarray(image)
    gray = pixels.ndim == 3 and (pixels[..., :1] == pixels[..., 1:3]).all()
    buffer = io.BytesIO()
    (image.convert("L") if gray else image).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


TOOLS = ('<div class="q-viewer-tools" role="toolbar" aria-label="Study view">'
         '<button type="button" data-act="zoom-in">Zoom in</button>'
         '<button type="button" data-act="zoom-out">Zoom out</button>'
         '<button type="button" data-act="fit">Fit</button>'
         '<button type="button" data-act="full">Full screen</button></div>')

WINDOW_TOOLS = ('<div class="q-wl"><label>Window <select data-act="preset"></select></label> '
                '<span class="q-wl-readout" aria-live="polite"></span>'
                '<p class="q-small">Drag on the image to window it: left and right for width, up and down for '
                'level (arrow keys when the image has focus).</p></div>')

#: the browser side: draws the model's picture, zooms, goes full screen, and windows a DICOM's values
JS = r"""
const MODEL = 'As the model sees it';
async function setup() {
  const root = element.querySelector('.q-viewer');
  if (!root) return;
  const canvas = root.querySelector('canvas');
  const picture = root.querySelector('img.q-model-png');
  await picture.decode();
  const st = {root, canvas, picture, zoom: 1, dicom: root.dataset.kind === 'dicom'};
  root._q = st;
  if (st.dicom) {
    st.raw = new Uint16Array(Uint8Array.from(atob(root.dataset.raw), c => c.charCodeAt(0)).buffer);
    st.w = +root.dataset.width; st.h = +root.dataset.height;
    st.low = +root.dataset.low; st.high = +root.dataset.high; st.invert = root.dataset.invert === '1';
    st.presets = [{name: MODEL}].concat(JSON.parse(root.dataset.presets));
    const select = root.querySelector('select[data-act=preset]');
    select.innerHTML = '';
    st.presets.forEach((p, i) => select.add(new Option(p.name, String(i))));
    select.add(new Option('Custom (dragged)', 'custom'));
  }
  preset(st, 0);
  size(st);
  root.dataset.ready = '1';
}
function drawModel(st) {
  st.canvas.width = st.picture.naturalWidth; st.canvas.height = st.picture.naturalHeight;
  st.canvas.getContext('2d').drawImage(st.picture, 0, 0);
  st.window = null;
  readout(st, MODEL + ' (the file\'s own window)');
}
function drawWindow(st, centre, width) {
  width = Math.max(width, 1e-6);
  st.window = {centre, width};
  st.canvas.width = st.w; st.canvas.height = st.h;
  const ctx = st.canvas.getContext('2d');
  const out = ctx.createImageData(st.w, st.h);
  const step = (st.high - st.low) / 65535, bottom = centre - width / 2;
  for (let i = 0; i < st.raw.length; i++) {
    let v = (st.low + st.raw[i] * step - bottom) / width;
    let g = Math.round(255 * (v < 0 ? 0 : v > 1 ? 1 : v));
    if (st.invert) g = 255 - g;
    out.data[4 * i] = out.data[4 * i + 1] = out.data[4 * i + 2] = g; out.data[4 * i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  readout(st, 'centre ' + centre.toFixed(0) + ', width ' + width.toFixed(0));
}
function readout(st, text) {
  const r = st.root.querySelector('.q-wl-readout');
  if (r) r.textContent = text;
}
function preset(st, index) {
  const select = st.root.querySelector('select[data-act=preset]');
  if (select) select.value = String(index);
  const p = st.dicom ? st.presets[index] : null;
  if (!p || p.name === MODEL) drawModel(st); else drawWindow(st, p.centre, p.width);
}
function custom(st, centre, width) {
  const select = st.root.querySelector('select[data-act=preset]');
  if (select) select.value = 'custom';
  drawWindow(st, centre, width);
}
function current(st) {
  return st.window || JSON.parse(st.root.dataset.start);
}
function size(st) {  // fit the box (or the screen), times the zoom
  const box = st.root.querySelector('.q-viewer-box');
  const room = document.fullscreenElement ? window.innerHeight - 90 : 340;
  const fit = Math.min(box.clientWidth / st.canvas.width, room / st.canvas.height);
  if (fit > 0) st.canvas.style.width = (st.canvas.width * fit * st.zoom) + 'px';
}
function zoom(st, factor) {
  st.zoom = factor === 0 ? 1 : Math.min(8, Math.max(1, st.zoom * factor));
  size(st);
}
const viewer = () => element.querySelector('.q-viewer')?._q;
document.addEventListener('fullscreenchange', () => { const st = viewer(); if (st) size(st); });
window.addEventListener('resize', () => { const st = viewer(); if (st) size(st); });
element.addEventListener('click', (e) => {
  const button = e.target.closest('button[data-act]');
  const st = viewer();
  if (!button || !st) return;
  const act = button.dataset.act;
  if (act === 'zoom-in') zoom(st, 1.5);
  else if (act === 'zoom-out') zoom(st, 1 / 1.5);
  else if (act === 'fit') zoom(st, 0);
  else if (act === 'full') {
    if (document.fullscreenElement) document.exitFullscreen(); else st.root.requestFullscreen?.();
  }
});
element.addEventListener('change', (e) => {
  const st = viewer();
  if (st && e.target.matches('select[data-act=preset]') && e.target.value !== 'custom') preset(st, +e.target.value);
});
element.addEventListener('pointerdown', (e) => {
  const st = viewer();
  if (!st || !st.dicom || e.target !== st.canvas) return;
  const start = {x: e.clientX, y: e.clientY, ...current(st)};
  const range = st.high - st.low;
  st.canvas.setPointerCapture(e.pointerId);
  let pending = false;
  const move = (m) => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const dx = (m.clientX - start.x) / st.canvas.clientWidth, dy = (m.clientY - start.y) / st.canvas.clientHeight;
      custom(st, start.centre + dy * range, Math.max(1, start.width + dx * range));
    });
  };
  const up = () => {
    st.canvas.removeEventListener('pointermove', move);
    st.canvas.removeEventListener('pointerup', up);
  };
  st.canvas.addEventListener('pointermove', move);
  st.canvas.addEventListener('pointerup', up);
  e.preventDefault();
});
element.addEventListener('keydown', (e) => {
  const st = viewer();
  if (!st || e.target !== st.canvas) return;
  if (e.key === '+' || e.key === '=') zoom(st, 1.5);
  else if (e.key === '-') zoom(st, 1 / 1.5);
  else if (e.key === '0') zoom(st, 0);
  else if (st.dicom && e.key.startsWith('Arrow')) {
    const w = current(st), step = (st.high - st.low) / 40;
    const dw = e.key === 'ArrowRight' ? step : e.key === 'ArrowLeft' ? -step : 0;
    const dc = e.key === 'ArrowDown' ? step : e.key === 'ArrowUp' ? -step : 0;
    custom(st, w.centre + dc, Math.max(1, w.width + dw));
  } else return;
  e.preventDefault();
});
setup();
watch('value', setup);
"""
