"""Render one live stream: segments of products, motion, camera effects, UI, H.264 encoding."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from engines.preprocess import box_iou
from training.synth.catalog import Product
from training.synth.compose import box_of, paste, paste_at, project, similarity
from training.synth.overlays import draw_overlay, make_overlay, text_patch
from training.synth.scenes import Actor, Room, make_actor, make_room
from training.synth.texts import banner_text

PORTRAIT = (540, 960)
LANDSCAPE = (1280, 720)
FPS_CHOICES = (20, 24, 25, 30)


@dataclass(frozen=True)
class StreamJob:
    """Everything needed to render one stream (picklable, so a worker can take it).

    Attributes:
        video_id: ``"v000003"``.
        index: stream index in the whole data set (seeds the stream's generator).
        products: the sold products, shown in this order.
        seconds: stream length.
        fps: frame rate, or 0 to draw one of 20/24/25/30.
        annotate_every: annotate frames whose index is a multiple of this.
        seed: data set seed.
        landscape: 1280x720 when true, else portrait 540x960.
        crf: x264 constant rate factor.
        banners: draw each shown product's banner (``texts.banner_text``) while it is shown.
    """

    video_id: str
    index: int
    products: tuple[Product, ...]
    seconds: float
    fps: int
    annotate_every: int
    seed: int
    landscape: bool = False
    crf: int = 23
    banners: bool = False


@dataclass
class _Segment:
    product: Product | None
    start: int
    end: int
    mode: str


def plan_segments(rng: np.random.Generator, n_frames: int, fps: int, products: tuple[Product, ...]) -> list[_Segment]:
    """Split the stream into product segments with short presenter-only gaps between them.

    Returns:
        Consecutive segments covering ``[0, n_frames)``; gaps have ``product`` None.
    """
    m = len(products)
    gaps = [int(rng.uniform(0.0, 0.4) * fps)] + [int(rng.uniform(0.3, 0.7) * fps) for _ in range(m - 1)]
    busy = n_frames - sum(gaps)
    weights = rng.uniform(0.8, 1.2, m)
    lengths = np.floor(busy * weights / weights.sum()).astype(int)
    lengths[-1] = busy - int(lengths[:-1].sum())
    out: list[_Segment] = []
    t = 0
    for k, product in enumerate(products):
        if gaps[k] > 0:
            out.append(_Segment(None, t, t + gaps[k], "wear"))
            t += gaps[k]
        mode = str(rng.choice(["wear", "hold", "front"], p=[0.5, 0.3, 0.2]))
        out.append(_Segment(product, t, t + int(lengths[k]), mode))
        t += int(lengths[k])
    return out


def _wave(rng: np.random.Generator, amplitude: float) -> tuple[float, float, float]:
    return float(rng.uniform(-1, 1) * amplitude), float(rng.uniform(0.1, 0.5)), float(rng.uniform(0, 2 * np.pi))


def _at(w: tuple[float, float, float], t: float) -> float:
    return w[0] * float(np.sin(2 * np.pi * w[1] * t + w[2]))


class _SegmentMotion:
    """The actor, its placement and the per-segment effect parameters."""

    def __init__(self, rng: np.random.Generator, seg: _Segment, width: int, height: int):
        sub = int(rng.integers(2**62))
        probe = make_actor(np.random.default_rng(sub), seg.product, seg.mode, 40.0)
        lo, hi = (0.32, 0.52) if height > width else (0.4, 0.6)  # sold item height / frame height
        share = float(rng.uniform(lo, hi)) if seg.product is not None else 0.45
        extent = 5.6 if seg.mode == "hold" and seg.product is not None else 4.2
        S = min(40.0 * share * height / probe.focus_height, 0.95 * width / extent)
        self.actor: Actor = make_actor(np.random.default_rng(sub), seg.product, seg.mode, S)
        self.S = S
        self.target = (width * (0.5 + rng.uniform(-0.08, 0.08)), height * (0.5 + rng.uniform(-0.05, 0.05)))
        self.dx, self.dy = _wave(rng, 0.06 * width), _wave(rng, 0.03 * height)
        self.ds, self.rot = _wave(rng, 0.1), _wave(rng, 6.0)
        self.tx, self.ty = _wave(rng, 0.25 / (6 * S)), _wave(rng, 0.12 / (8 * S))
        self.sway = _wave(rng, 5.0)
        self.gain, self.cast = _wave(rng, 0.15), rng.uniform(0.9, 1.1, 3)
        self.bias = float(rng.uniform(-12, 12))
        n = seg.end - seg.start
        self.blur: list[tuple[int, int, float]] = []
        for _ in range(int(rng.integers(0, 3))):
            b0 = int(rng.integers(0, max(1, n)))
            # (first, last, strength): positive = defocus (Gaussian sigma), negative = horizontal motion blur
            strength = float(rng.uniform(1.2, 3.0)) if rng.random() < 0.5 else -float(rng.integers(5, 15))
            self.blur.append((b0, b0 + int(rng.integers(4, 14)), strength))
        self.occluder = None
        if seg.product is not None and rng.random() < 0.5:
            self.occluder = (
                float(rng.uniform(0.25, 0.4)) * min(self.actor.focus_width, 0.6 * self.actor.focus_height),
                _wave(rng, 0.35), _wave(rng, 0.3),
                tuple(int(c) for c in (self.actor.skin if rng.random() < 0.5 else rng.integers(20, 90, 3))),
            )

    def homography(self, t: float) -> np.ndarray:
        fx, fy = self.actor.focus
        scale = 1.0 + _at(self.ds, t)
        return similarity((fx, fy), (self.target[0] + _at(self.dx, t), self.target[1] + _at(self.dy, t)),
                          scale, _at(self.rot, t), (_at(self.tx, t), _at(self.ty, t)))


def _annotation(box: list[float], label: str, viewpoint: int, display: int, instance_id: int) -> dict:
    return {"box": box, "label": label, "viewpoint": viewpoint, "display": display, "instance_id": instance_id}


def render_stream(job: StreamJob, out_path: Path) -> tuple[dict, list[dict], dict]:
    """Render and encode one stream.

    Args:
        job: what to render.
        out_path: the ``.mp4`` to write.

    Returns:
        (video annotation JSON, segment list for ``segments.json``, stream facts: fps, size, gop).
    """
    import av

    rng = np.random.default_rng([job.seed, 2, job.index])
    width, height = LANDSCAPE if job.landscape else PORTRAIT
    fps = job.fps or int(rng.choice(FPS_CHOICES))
    gop = int(round(fps * rng.uniform(1.0, 2.0)))
    gop = min(max(gop, fps), 2 * fps)
    n_frames = int(round(job.seconds * fps))
    segments = plan_segments(rng, n_frames, fps, job.products)
    room = make_room(rng, width, height, int(rng.integers(1, 7)))
    overlay = make_overlay(rng, width, height)
    shake = (_wave(rng, 0.8 * room.margin[0]), _wave(rng, 0.8 * room.margin[1]))
    sigma = float(rng.uniform(0.8, 2.5))
    noise = [np.abs(rng.normal(0, sigma, (height, width, 3))).astype(np.uint8) for _ in range(4)]
    motions = [_SegmentMotion(rng, seg, width, height) for seg in segments]
    scale = min(width, height) / 540.0
    banners = [
        text_patch(banner_text(seg.product), 0.8 * scale, (255, 255, 255), (190, 25, 45, 230))
        if job.banners and seg.product is not None else None
        for seg in segments
    ]

    frames_json: list[dict] = []
    container = av.open(str(out_path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=Fraction(fps, 1))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.gop_size = gop
    stream.options = {
        "preset": "fast", "tune": "zerolatency", "crf": str(job.crf), "threads": "1", "g": str(gop),
        "keyint_min": str(gop), "sc_threshold": "0", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
    }
    seg_i = 0
    try:
        for i in range(n_frames):
            while i >= segments[seg_i].end:
                seg_i += 1
            seg, mo = segments[seg_i], motions[seg_i]
            t, tau = i / fps, (i - seg.start) / fps
            ox = int(room.margin[0] + _at(shake[0], t))
            oy = int(room.margin[1] + _at(shake[1], t))
            frame = room.image[oy : oy + height, ox : ox + width].copy()
            hom = mo.homography(tau)
            paste(frame, mo.actor.rgba, hom)
            held_hom = None
            if mo.actor.held is not None:
                sprite, _ = mo.actor.held
                hx, hy = mo.actor.held_hook
                held_hom = hom @ similarity(sprite.anchor, (hx, hy), 1.0, _at(mo.sway, tau))
                paste(frame, sprite.rgba, held_hom)
                radius = max(2, int(mo.actor.hand_radius * float(np.sqrt(abs(np.linalg.det(hom[:2, :2]))))))
                for hand in project(np.array(mo.actor.hands, np.float32), held_hom):
                    cv2.circle(frame, (int(hand[0]), int(hand[1])), radius, mo.actor.skin, -1, cv2.LINE_AA)
            if mo.occluder is not None:
                size, wx, wy, colour = mo.occluder
                c = project(np.array([mo.actor.focus], np.float32), hom)[0]
                cx = int(c[0] + (0.35 + _at(wx, tau)) * mo.actor.focus_width)
                cy = int(c[1] + _at(wy, tau) * mo.actor.focus_height)
                cv2.ellipse(frame, (cx, cy), (int(size * 0.6), int(size)), 20.0, 0, 360, colour, -1, cv2.LINE_AA)
            gain = 1.0 + _at(mo.gain, tau)
            mat = np.zeros((3, 4), np.float32)
            mat[[0, 1, 2], [0, 1, 2]] = gain * mo.cast
            mat[:, 3] = mo.bias
            frame = cv2.transform(frame, mat)
            for b0, b1, s in mo.blur:
                if b0 <= i - seg.start < b1:
                    frame = cv2.GaussianBlur(frame, (0, 0), s) if s > 0 else cv2.blur(frame, (int(-s), 1))
            nz = noise[i % len(noise)]
            cv2.add(frame, nz, dst=frame)
            cv2.subtract(frame, noise[(i + 1) % len(noise)], dst=frame)
            draw_overlay(frame, overlay, t)
            banner = banners[seg_i]
            if banner is not None:
                paste_at(frame, banner, int(width * 0.04), int(height * 0.2))
            if i % job.annotate_every == 0:
                frames_json.append({"frame_index": i, "annotations": _frame_boxes(mo, hom, held_hom, room, ox, oy,
                                                                                  width, height)})
            yuv = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)
            vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    seg_json = [
        {"item_id": s.product.item_id, "instance_id": s.product.instance_id, "start_frame": s.start,
         "end_frame": s.end, "start_s": round(s.start / fps, 4), "end_s": round(s.end / fps, 4)}
        for s in segments if s.product is not None
    ]
    facts = {"fps": fps, "width": width, "height": height, "gop": gop, "frames": n_frames,
             "modes": [s.mode for s in segments if s.product is not None]}
    return {"video_id": job.video_id, "frames": frames_json}, seg_json, facts


def _frame_boxes(mo: _SegmentMotion, hom: np.ndarray, held_hom: np.ndarray | None, room: Room, ox: int, oy: int,
                 width: int, height: int) -> list[dict]:
    """Annotations of one frame: sold item first, then the other garments (instance 0).

    Garments of instance 0 that overlap the sold box with IoU >= 0.5 (e.g. the presenter's own top
    behind a garment held in front) are left out, so a sold box is never shadowed by a twin.
    """
    sold: list[dict] = []
    others: list[dict] = []
    for g in mo.actor.garments:
        box = box_of(project(g.outline, hom), width, height)
        if box is not None:
            (sold if g.instance_id > 0 else others).append(
                _annotation(box, g.label, g.viewpoint, g.display, g.instance_id))
    if held_hom is not None and mo.actor.held is not None:
        sprite, placed = mo.actor.held
        box = box_of(project(sprite.outline, held_hom), width, height)
        if box is not None:
            sold.append(_annotation(box, placed.label, placed.viewpoint, placed.display, placed.instance_id))
    for g in room.garments:
        box = box_of(g.outline - np.array([ox, oy], np.float32), width, height)
        if box is not None:
            others.append(_annotation(box, g.label, g.viewpoint, g.display, 0))
    others = [o for o in others if all(box_iou(o["box"], s["box"]) < 0.5 for s in sold)]
    return sold + others
