"""Procedural chest-radiograph phantoms.

These are clearly synthetic frontal (PA) chest "X-rays" drawn from simple
geometry, so that ganzoo has a built-in dataset that needs no download and
contains no patient data.  Each image is rendered directly at the requested
resolution from normalised coordinates (0..1 across the film), which keeps
small sizes crisp and large sizes cheap.

Conventions: grayscale ``uint8``, bright = dense (bone, heart, abdomen), dark =
air (lungs, background).  As on a real PA film the patient's left side is on
the viewer's right, so the heart leans to the right of the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["LABELS", "render_phantom", "render_phantoms"]

LABELS: tuple[str, ...] = ("normal", "covid")

_MIN_SIZE = 16
_SHIFT = 4
_SUB = float(1 << _SHIFT)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE}, got {size!r}")
    return int(size)


def _check_label(label: str | None, allow_none: bool) -> None:
    if label is None and allow_none:
        return
    if label not in LABELS:
        allowed = ", ".join(repr(x) for x in LABELS) + (" or None" if allow_none else "")
        raise ValueError(f"label must be one of {allowed}, got {label!r}")


class _Canvas:
    """Draws shapes given in normalised film coordinates at pixel resolution.

    All geometry goes through one random similarity transform (small rotation,
    scale, shift, width stretch) so every anatomical part moves together.
    """

    def __init__(self, size: int, angle_deg: float, scale: float, stretch_x: float,
                 shift: tuple[float, float]) -> None:
        self.size = size
        a = math.radians(angle_deg)
        c, s = math.cos(a) * scale, math.sin(a) * scale
        self._m = np.array([[c * stretch_x, -s], [s * stretch_x, c]], dtype=np.float64)
        self._t = np.array([0.5 + shift[0], 0.5 + shift[1]])

    def px(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) normalised points to fixed-point pixel coordinates for cv2."""
        p = (np.asarray(pts, dtype=np.float64) - 0.5) @ self._m.T + self._t
        return np.round((p * self.size - 0.5) * _SUB).astype(np.int32)

    def mask(self) -> np.ndarray:
        return np.zeros((self.size, self.size), dtype=np.uint8)

    def layer(self) -> np.ndarray:
        return np.zeros((self.size, self.size), dtype=np.float32)

    def fill(self, img: np.ndarray, pts: np.ndarray, value: float = 1.0) -> None:
        cv2.fillPoly(img, [self.px(pts)], value, lineType=cv2.LINE_8, shift=_SHIFT)

    def line(self, img: np.ndarray, pts: np.ndarray, width: float, value: float = 1.0) -> None:
        """Polylines, width as a fraction of the film size.  ``pts`` is (N, 2)
        for one line or (K, N, 2) for K lines drawn in a single cv2 call,
        which matters because per-call overhead dominates at small sizes."""
        pts = np.asarray(pts, dtype=np.float64)
        if pts.ndim == 2:
            pts = pts[None]
        thick = max(1, int(round(width * self.size)))
        px = self.px(pts.reshape(-1, 2)).reshape(pts.shape)
        cv2.polylines(img, list(px), False, value, thickness=thick,
                      lineType=cv2.LINE_8, shift=_SHIFT)

    def blur(self, img: np.ndarray, sigma_frac: float, min_px: float = 0.3) -> np.ndarray:
        sigma = max(min_px, sigma_frac * self.size)
        return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                borderType=cv2.BORDER_REPLICATE)


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0,
             n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    a = math.radians(angle_deg)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([cx + x * math.cos(a) - y * math.sin(a),
                     cy + x * math.sin(a) + y * math.cos(a)], axis=1)


def _closed_spline(ctrl: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """Periodic Catmull-Rom curve through control points: organic outlines
    from a handful of anatomical landmarks."""
    p0 = np.roll(ctrl, 1, axis=0)
    p1 = ctrl
    p2 = np.roll(ctrl, -1, axis=0)
    p3 = np.roll(ctrl, -2, axis=0)
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[None, :, None]
    a, b, c, d = (x[:, None, :] for x in (p0, p1, p2, p3))
    pts = 0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t ** 2
                 + (3 * b - a - 3 * c + d) * t ** 3)
    return pts.reshape(-1, 2)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: cheap mottling for opacities and film."""
    coarse = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _body_outline(rng: np.random.Generator) -> np.ndarray:
    """Torso silhouette: neck, rounded shoulders, slightly tapering flanks."""
    neck = rng.uniform(0.07, 0.095)
    half_w = rng.uniform(0.43, 0.49)
    y_neck = rng.uniform(-0.06, 0.0)
    y_sh = rng.uniform(0.16, 0.22)
    ys = np.linspace(-0.05, 1.1, 48)
    t = np.clip((ys - y_neck) / (y_sh - y_neck), 0.0, 1.0)
    shoulder = neck + (half_w - neck) * np.sin(t * np.pi / 2) ** 0.7
    below = np.clip((ys - y_sh) / (1.0 - y_sh), 0.0, 1.0)
    hw = np.where(ys < y_sh, shoulder, half_w * (1.0 - 0.08 * below ** 2))
    left = np.stack([0.5 - hw, ys], axis=1)
    right = np.stack([0.5 + hw, ys], axis=1)[::-1]
    return np.concatenate([left, right])


def _lung_outline(side: int, rng: np.random.Generator, apex_y: float) -> np.ndarray:
    """Egg-shaped lung, narrow apex and wide base; the diaphragm and the heart
    are painted over it later, which yields the costophrenic angles and the
    medial borders without explicit geometry."""
    cx = 0.5 + side * rng.uniform(0.19, 0.215)
    rx = rng.uniform(0.17, 0.19)
    bottom = 1.05
    ry = (bottom - apex_y) / 2
    cy = apex_y + ry
    k = rng.uniform(0.22, 0.32)
    th = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    w = rx * np.sin(th) * (1.0 - k * np.cos(th))
    return np.stack([cx + w, cy - ry * np.cos(th)], axis=1)


def _dome(x: np.ndarray, peak_x: float, peak_y: float, drop: float) -> np.ndarray:
    """Hemidiaphragm: steep laterally (deep costophrenic angle), nearly flat
    medially so the heart sits on it without a gap."""
    s = (x - peak_x) / 0.24
    lateral = np.sign(s) == np.sign(peak_x - 0.5)
    return peak_y + np.where(lateral, drop, 0.25 * drop) * np.abs(s) ** 1.5


def _abdomen_outline(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Region below both hemidiaphragms; its upper edge is the pair of domes.
    The patient's right dome (viewer's left) usually sits a little higher."""
    base = rng.uniform(0.64, 0.74)
    right_y = base - rng.uniform(0.0, 0.035)
    left_y = base + rng.uniform(-0.01, 0.02)
    drop_r, drop_l = rng.uniform(0.12, 0.18), rng.uniform(0.12, 0.18)
    xl = np.linspace(-0.1, 0.5, 24)
    xr = np.linspace(0.5, 1.1, 24)[1:]
    top_l = _dome(xl, 0.5 - rng.uniform(0.17, 0.22), right_y, drop_r)
    top_r = _dome(xr, 0.5 + rng.uniform(0.17, 0.22), left_y, drop_l)
    top = np.concatenate([np.stack([xl, top_l], 1), np.stack([xr, top_r], 1)])
    bottom = np.array([[1.1, 1.2], [-0.1, 1.2]])
    return np.concatenate([top, bottom]), base


def _mediastinum(cv: _Canvas, rng: np.random.Generator, dome_y: float) -> np.ndarray:
    """Upper mediastinum, aortic knob and cardiac silhouette as one dense mask.
    The heart is a rounded trapezoid: right atrium just right of the spine
    (viewer's left), left ventricle sweeping down to an apex on the left dome."""
    m = cv.mask()
    top_hw = rng.uniform(0.045, 0.06)
    mid_hw = rng.uniform(0.055, 0.07)
    top_y = rng.uniform(0.04, 0.1)
    cv.fill(m, np.array([[0.5 - top_hw * 0.6, top_y - 0.04], [0.5 + top_hw * 0.6, top_y - 0.04],
                         [0.5 + top_hw, top_y + 0.03], [0.5 - top_hw, top_y + 0.03]]))
    cv.fill(m, np.array([[0.5 - top_hw, top_y + 0.03], [0.5 + top_hw, top_y + 0.03],
                         [0.5 + mid_hw, 0.3], [0.5 + mid_hw, 0.5],
                         [0.5 - mid_hw, 0.5], [0.5 - mid_hw, 0.3]]))
    cv.fill(m, _ellipse(0.5 + rng.uniform(0.055, 0.075), rng.uniform(0.25, 0.3),
                        rng.uniform(0.035, 0.05), rng.uniform(0.03, 0.045)))
    wr, wl = rng.uniform(0.09, 0.13), rng.uniform(0.18, 0.25)
    hb = dome_y + rng.uniform(0.0, 0.03)
    ctrl = np.array([
        [0.5 - 0.05, 0.38], [0.5 - 0.065, hb - 0.2], [0.5 - wr, hb - 0.1],
        [0.5 - wr * 0.95, hb], [0.5 + 0.05, hb + 0.06], [0.5 + wl, hb + 0.01],
        [0.5 + wl * 1.04, hb - 0.07], [0.5 + wl * 0.85, hb - 0.17],
        [0.5 + wl * 0.5, hb - 0.24], [0.5 + 0.075, 0.4],
    ])
    ctrl += rng.normal(0.0, 0.006, ctrl.shape)
    cv.fill(m, _closed_spline(ctrl))
    return m


def _spine(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Vertebral column: a bright band broken into vertebrae by darker discs."""
    layer = cv.layer()
    hw = rng.uniform(0.03, 0.04)
    cv.fill(layer, np.array([[0.5 - hw, -0.1], [0.5 + hw, -0.1],
                             [0.5 + hw * 1.25, 1.1], [0.5 - hw * 1.25, 1.1]]), 1.0)
    pitch = rng.uniform(0.05, 0.06)
    discs = []
    y = rng.uniform(0.0, pitch)
    while y < 1.05:
        w = hw * (1.0 + 0.25 * y)
        discs.append([[0.5 - w, y], [0.5 + w, y]])
        y += pitch * (1.0 + 0.12 * y)
    cv.line(layer, np.array(discs), 0.008, 0.35)
    return layer


def _ribs(cv: _Canvas, rng: np.random.Generator, apex_y: float, dome_y: float) -> np.ndarray:
    """Posterior ribs (arcs leaving the spine, cresting, then sweeping down the
    chest wall) and fainter anterior ribs running back down towards the
    midline; hollow-looking at larger sizes (bright cortex, paler marrow).
    Ten posterior ribs span apex to diaphragm, as on a well-inspired film."""
    layer = cv.layer()
    n, n_ant = 10, 7
    gap = (dome_y - apex_y + rng.uniform(-0.02, 0.03)) / (n - 0.5)
    width = rng.uniform(0.018, 0.024)
    side = np.array([-1.0, 1.0])[:, None, None]
    i = np.arange(n, dtype=np.float64)[None, :, None]
    s = np.linspace(0.0, 1.0, 24)[None, None, :]
    y0 = apex_y + rng.uniform(-0.015, 0.015, (2, 1, 1))
    yi = y0 + i * gap * (0.85 + 0.035 * i)
    length = rng.uniform(0.3, 0.34, (2, n, 1)) + 0.012 * np.minimum(i, 5)
    rise = rng.uniform(0.045, 0.065, (2, n, 1))
    fall = rng.uniform(0.16, 0.2, (2, n, 1)) + 0.006 * i
    u = 0.035 + length * s
    v = yi - rise * np.sin(np.pi * s * 0.9) + fall * s ** 2.5
    post = np.stack([0.5 + side * u, v], axis=-1).reshape(-1, s.size, 2)
    cv.line(layer, post, width, 1.0)
    if width * cv.size >= 5.0:
        cv.line(layer, post, width * 0.45, 0.55)
    u_end, v_end = u[:, :n_ant, -1:], v[:, :n_ant, -1:]
    ua = u_end - (u_end - 0.12) * s
    va = v_end + rng.uniform(0.1, 0.14, (2, n_ant, 1)) * s ** 1.3 - 0.015 * np.sin(np.pi * s)
    ant = np.stack([0.5 + side * ua, np.broadcast_to(va, ua.shape)], axis=-1)
    cv.line(layer, ant[:, :, 2:].reshape(-1, s.size - 2, 2), width * 0.9, 0.3)
    return layer


def _clavicles(cv: _Canvas, rng: np.random.Generator, apex_y: float) -> np.ndarray:
    """Gently S-shaped clavicles rising from the sternal notch to the
    shoulders, crossing the lung apices."""
    layer = cv.layer()
    y = apex_y + rng.uniform(0.04, 0.08)
    width = rng.uniform(0.022, 0.03)
    s = np.linspace(0.0, 1.0, 16)
    for side in (-1, 1):
        u = 0.05 + rng.uniform(0.26, 0.32) * s
        v = y + 0.012 * np.sin(2 * np.pi * s) - rng.uniform(0.05, 0.09) * s
        cv.line(layer, np.stack([0.5 + side * u, v], axis=1), width, 1.0)
    return layer


def _vessels(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Faint pulmonary vessels: tapering random walks radiating from the hila."""
    layer = cv.layer()
    k, steps = 6, 4
    side = np.array([-1.0, 1.0])[:, None, None]
    hx = 0.5 + side[..., 0] * rng.uniform(0.09, 0.12, (2, 1))
    hy = rng.uniform(0.4, 0.46, (2, 1))
    ang = np.radians(rng.uniform(-70.0, 80.0, (2, k, 1))) + np.cumsum(
        rng.normal(0.0, 0.3, (2, k, steps)), axis=-1)
    step = rng.uniform(0.05, 0.07, (2, k, 1)) * 0.85 ** np.arange(steps)
    x = np.cumsum(side * np.cos(ang) * step, axis=-1) + hx[..., None]
    y = np.cumsum(np.sin(ang) * step, axis=-1) + hy[..., None]
    start = np.broadcast_to(np.stack([hx, hy], -1)[:, :, None, :], (2, k, 1, 2))
    pts = np.concatenate([start, np.stack([x, y], -1)], axis=2)
    cv.line(layer, pts.reshape(-1, steps + 1, 2), 0.006, 1.0)
    return layer


def _opacities(cv: _Canvas, rng: np.random.Generator, apex_y: float, dome_y: float) -> np.ndarray:
    """COVID-like ground-glass opacities: blurry patchy blobs, mostly in the
    lower and peripheral lung zones, bilateral in about three cases of four."""
    layer = cv.layer()
    r = rng.random()
    sides = (-1, 1) if r < 0.75 else ((-1,) if r < 0.875 else (1,))
    for side in sides:
        for _ in range(int(rng.integers(3, 7))):
            lat = 0.5 + side * (0.14 + 0.2 * rng.beta(2.5, 1.5))
            y = apex_y + (dome_y - apex_y) * (0.2 + 0.75 * rng.beta(2.5, 1.3))
            cv.fill(layer, _ellipse(lat, y, rng.uniform(0.04, 0.1), rng.uniform(0.035, 0.08),
                                    rng.uniform(0.0, 180.0), n=20), rng.uniform(0.6, 1.0))
    layer = cv.blur(layer, 0.03)
    mottle = 0.45 + 0.55 * _smooth_noise(rng, cv.size, 9)
    return layer * mottle


def render_phantom(size: int, rng: np.random.Generator, label: str = "normal") -> np.ndarray:
    """One phantom: uint8 array (size, size), grayscale, bright = dense (like an X-ray)."""
    size = _check_size(size)
    _check_label(label, allow_none=False)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")

    cv = _Canvas(size,
                 angle_deg=float(np.clip(rng.normal(0.0, 1.6), -4.0, 4.0)),
                 scale=rng.uniform(0.9, 1.03),
                 stretch_x=rng.uniform(0.93, 1.07),
                 shift=(rng.uniform(-0.03, 0.03), rng.uniform(-0.02, 0.04)))
    apex_y = rng.uniform(0.1, 0.15)

    body = cv.mask()
    cv.fill(body, _body_outline(rng))
    abdomen = cv.mask()
    abd_pts, dome_y = _abdomen_outline(rng)
    cv.fill(abdomen, abd_pts)
    med = _mediastinum(cv, rng, dome_y)
    lungs = cv.mask()
    for side in (-1, 1):
        cv.fill(lungs, _lung_outline(side, rng, apex_y + rng.uniform(-0.01, 0.01)))

    bodyf = body.astype(np.float32)
    lung = (lungs & ~abdomen & ~med & body).astype(np.float32)
    lung_field = lung * (0.55 + 0.45 * cv.blur(lung, 0.05))

    soft, abd, heart = rng.uniform(0.36, 0.46), rng.uniform(0.6, 0.7), rng.uniform(0.62, 0.72)
    img = np.full((size, size), rng.uniform(0.0, 0.05), dtype=np.float32)
    img += bodyf * soft * (0.55 + 0.45 * cv.blur(bodyf, 0.06))
    img = np.where(abdomen & body, abd, img)
    img = np.where(med, heart, img)
    if rng.random() < 0.5:
        bubble = cv.mask()
        cv.fill(bubble, _ellipse(0.5 + rng.uniform(0.12, 0.22), dome_y + rng.uniform(0.06, 0.1),
                                 rng.uniform(0.04, 0.07), rng.uniform(0.018, 0.03), n=20))
        img -= rng.uniform(0.08, 0.15) * cv.blur((bubble & abdomen).astype(np.float32), 0.008)
    img -= rng.uniform(0.24, 0.3) * lung_field
    img += rng.uniform(0.04, 0.07) * cv.blur(_vessels(cv, rng), 0.004) * lung_field

    if label == "covid":
        img += rng.uniform(0.3, 0.42) * _opacities(cv, rng, apex_y, dome_y) * lung_field

    airway = cv.layer()
    carina = (0.5 + rng.uniform(0.0, 0.01), rng.uniform(0.3, 0.35))
    cv.line(airway, np.array([[0.5, -0.1], carina]), 0.03, 1.0)
    cv.line(airway, np.array([carina, [0.44, carina[1] + 0.07]]), 0.018, 1.0)
    cv.line(airway, np.array([carina, [0.57, carina[1] + 0.08]]), 0.018, 1.0)
    img -= rng.uniform(0.1, 0.16) * cv.blur(airway, 0.006) * bodyf

    bone_vis = 0.35 + 0.65 * cv.blur(lung, 0.02)
    bones = rng.uniform(0.05, 0.09) * _spine(cv, rng)
    bones += rng.uniform(0.08, 0.12) * _ribs(cv, rng, apex_y, dome_y) * bone_vis
    if rng.random() < 0.85:
        bones += rng.uniform(0.1, 0.15) * _clavicles(cv, rng, apex_y)
    img += bones * bodyf

    img = cv.blur(img, rng.uniform(0.003, 0.006), min_px=0.6)
    img *= 0.92 + 0.16 * _smooth_noise(rng, size, 4)
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.85, 1.2)
    img = img * rng.uniform(0.9, 1.1) + rng.uniform(-0.03, 0.03)
    img += rng.standard_normal((size, size), dtype=np.float32) * rng.uniform(0.01, 0.025)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_phantoms(n: int, size: int, seed: int = 0,
                    label: str | None = None) -> tuple[np.ndarray, list[str]]:
    """n phantoms as uint8 (n, size, size) and their labels.

    With ``label=None`` the classes alternate (even index normal, odd covid) so
    any prefix of the set is balanced.  Each image draws from its own generator
    seeded by ``(seed, i)``: the set is reproducible byte for byte and image i
    is the same whatever ``n`` is.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    size = _check_size(size)
    _check_label(label, allow_none=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")

    images = np.empty((int(n), size, size), dtype=np.uint8)
    labels: list[str] = []
    for i in range(int(n)):
        lab = label if label is not None else LABELS[i % len(LABELS)]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
        images[i] = render_phantom(size, rng, lab)
        labels.append(lab)
    return images, labels
