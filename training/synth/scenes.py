"""Room backgrounds, the presenter figure and distractor garments for the streams."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from training.categories import CATEGORIES
from training.categories import region as region_of
from training.synth.catalog import COLOUR_NAMES, COLOURS, Product, Shape
from training.synth.compose import paste_at
from training.synth.garments import BACK, FRONT, GarmentSprite, product_sprite, render_garment

SKIN = [(241, 194, 167), (224, 172, 138), (198, 134, 98), (160, 104, 70), (110, 70, 45), (250, 214, 190)]
HAIR = [(20, 18, 16), (60, 40, 25), (110, 75, 40), (170, 130, 80), (90, 30, 20), (200, 190, 170)]
NEUTRAL = ["black", "charcoal", "grey", "white", "cream", "beige", "navy", "brown", "camel"]
OUTFIT_TOPS = ["短袖上衣", "长袖上衣"]
OUTFIT_BOTTOMS = ["长裤", "中等半身裙", "长裤", "短裙"]


@dataclass
class PlacedGarment:
    """A garment in some image: its outline (K, 2) in that image's pixels and its annotation fields."""

    outline: np.ndarray
    label: str
    instance_id: int
    viewpoint: int
    display: int


@dataclass
class Room:
    """A background larger than the frame (the camera pans inside it).

    Attributes:
        image: (H + 2 * margin_y, W + 2 * margin_x, 3) uint8 RGB.
        margin: (margin_x, margin_y) in pixels.
        garments: rack garments in room pixels (instance 0).
    """

    image: np.ndarray
    margin: tuple[int, int]
    garments: list[PlacedGarment] = field(default_factory=list)


def _muted(rng: np.random.Generator, lo: int = 120, hi: int = 235) -> tuple[int, int, int]:
    base = rng.integers(lo, hi)
    v = np.clip(base + rng.integers(-25, 26, 3), 0, 255)
    return (int(v[0]), int(v[1]), int(v[2]))


def plain_garment(rng: np.random.Generator, category: str, unit_px: float, view: int = FRONT) -> GarmentSprite:
    """A garment the presenter wears besides the sold one.

    Mostly a neutral solid, but a third of the time a saturated colour or a two-colour pattern, as
    real presenters wear: so a loud colour or a print alone never tells the sold item apart.
    """
    draw = rng.random()
    if draw < 0.65:
        rgb = COLOURS[NEUTRAL[int(rng.integers(len(NEUTRAL)))]]
        colours, pattern = (rgb, rgb, rgb), "solid"
    else:
        main = COLOURS[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]]
        second = COLOURS[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]]
        colours = (main, second, second)
        pattern = "solid" if draw < 0.85 else ["stripes", "checks", "dots"][int(rng.integers(3))]
    shape = Shape(*(float(x) for x in rng.uniform(0.92, 1.08, 5)))
    return render_garment(category, shape, pattern, colours, int(rng.integers(2**31)), view, unit_px)


def random_garment(rng: np.random.Generator, unit_px: float) -> tuple[str, GarmentSprite]:
    """A garment that is not in the catalog: muted or saturated, solid, striped, checked or dotted."""
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    if rng.random() < 0.5:
        c0, c1 = _muted(rng, 60, 200), _muted(rng, 60, 200)
    else:
        c0 = COLOURS[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]]
        c1 = COLOURS[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]]
    pattern = ["solid", "stripes", "checks", "dots"][int(rng.integers(4))]
    shape = Shape(*(float(x) for x in rng.uniform(0.9, 1.1, 5)))
    sprite = render_garment(category, shape, pattern, (c0, c1, c1), int(rng.integers(2**31)), FRONT, unit_px)
    return category, sprite


def make_room(rng: np.random.Generator, width: int, height: int, distractors: int) -> Room:
    """Draw a room a few percent larger than the frame, with shelves, a window and a clothes rack.

    Args:
        rng: the stream's generator.
        width: frame width.
        height: frame height.
        distractors: number of garments on the rack (0-6).
    """
    mx, my = int(width * 0.05), int(height * 0.05)
    W, H = width + 2 * mx, height + 2 * my
    img = np.empty((H, W, 3), np.uint8)
    img[:] = _muted(rng, 150, 235)
    if rng.random() < 0.5:  # wallpaper stripes
        period = int(rng.integers(30, 90))
        tone = np.clip(np.array(img[0, 0], int) + rng.integers(-18, 19), 0, 255)
        for x in range(0, W, period):
            img[:, x : x + period // 3] = tone
    floor_y = int(H * rng.uniform(0.72, 0.86))
    img[floor_y:] = _muted(rng, 70, 160)
    for y in range(floor_y, H, 18):
        cv2.line(img, (0, y), (W, y), tuple(int(v * 0.85) for v in img[min(y, H - 1), 0]), 1)
    for _ in range(int(rng.integers(1, 3))):  # window or picture
        w, h = int(W * rng.uniform(0.12, 0.25)), int(H * rng.uniform(0.1, 0.22))
        x, y = int(rng.uniform(0, W - w)), int(rng.uniform(0.05, 0.4) * H)
        cv2.rectangle(img, (x, y), (x + w, y + h), _muted(rng, 170, 255), -1)
        cv2.rectangle(img, (x, y), (x + w, y + h), _muted(rng, 40, 120), max(3, w // 25))
    for _ in range(int(rng.integers(1, 3))):  # shelf with boxes
        y = int(H * rng.uniform(0.2, 0.6))
        x0 = int(rng.uniform(0, W * 0.7))
        x1 = min(W, x0 + int(W * rng.uniform(0.15, 0.3)))
        cv2.rectangle(img, (x0, y), (x1, y + 8), _muted(rng, 60, 140), -1)
        x = x0 + 4
        while x < x1 - 20:
            bw, bh = int(rng.integers(14, 40)), int(rng.integers(18, 60))
            cv2.rectangle(img, (x, y - bh), (min(x + bw, x1), y), _muted(rng, 40, 230), -1)
            x += bw + int(rng.integers(2, 10))
    if rng.random() < 0.6:  # a plant
        px, py = int(rng.uniform(0.05, 0.95) * W), floor_y
        cv2.rectangle(img, (px - 18, py - 40), (px + 18, py), (150, 90, 60), -1)
        for _ in range(9):
            cv2.ellipse(img, (px + int(rng.integers(-40, 41)), py - 40 - int(rng.integers(10, 90))),
                        (int(rng.integers(12, 26)), int(rng.integers(6, 12))), float(rng.uniform(0, 180)), 0, 360,
                        (int(rng.integers(20, 70)), int(rng.integers(100, 170)), int(rng.integers(30, 80))), -1)
    room = Room(img, (mx, my))
    if distractors > 0:  # clothes rack at one side
        side = -1 if rng.random() < 0.5 else 1
        rack_x0 = int(W * (0.02 if side < 0 else 0.7))
        rack_x1 = int(rack_x0 + W * 0.28)
        rack_y = int(H * rng.uniform(0.22, 0.32))
        cv2.line(img, (rack_x0, rack_y), (rack_x1, rack_y), (90, 90, 95), 6)
        cv2.line(img, (rack_x0 + 4, rack_y), (rack_x0 + 4, floor_y + 10), (90, 90, 95), 5)
        cv2.line(img, (rack_x1 - 4, rack_y), (rack_x1 - 4, floor_y + 10), (90, 90, 95), 5)
        slot = (rack_x1 - rack_x0) / distractors
        for k in range(distractors):
            target_h = min(H, W) * rng.uniform(0.14, 0.22)
            label, sprite = random_garment(rng, 100.0)
            scale = target_h / sprite.rgba.shape[0]
            small = cv2.resize(sprite.rgba, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cx = int(rack_x0 + slot * (k + 0.5))
            x, y = cx - small.shape[1] // 2, rack_y + 10
            cv2.line(img, (cx, rack_y), (cx, y + 4), (60, 60, 60), 2)
            paste_at(img, small, x, y)
            room.garments.append(PlacedGarment(sprite.outline * scale + [x, y], label, 0, FRONT, 0))
    if rng.random() < 0.35:
        _add_bystander(rng, room, floor_y)
    cv2.GaussianBlur(img, (0, 0), 1.2, dst=img)
    return room


def _add_bystander(rng: np.random.Generator, room: Room, floor_y: int) -> None:
    """A second person at one side of the room (an assistant, a model waiting), dressed in the outfit
    garments; their garments are boxed as instance 0, so wearing clothes alone never means "sold"."""
    H, W = room.image.shape[:2]
    S = H * float(rng.uniform(0.045, 0.07))  # the body is about 10 S tall
    person = make_actor(rng, None, "wear", S)
    centre = W * (rng.uniform(0.06, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 0.94))
    x = int(centre - 4.5 * S)  # the actor canvas is 9 S wide, the body in its middle
    y = int(floor_y + 0.1 * H - 10.2 * S)
    paste_at(room.image, person.rgba, x, y)
    for g in person.garments:
        room.garments.append(PlacedGarment(g.outline + [x, y], g.label, 0, g.viewpoint, g.display))


@dataclass
class Actor:
    """The presenter, drawn once per segment in its own canvas.

    Attributes:
        rgba: (h, w, 4) uint8 presenter (with worn garments).
        garments: worn garments with outlines in actor pixels; the sold one has instance_id > 0.
        held: a garment held on a hanger, drawn as a separate layer, or None.
        held_hook: (x, y) hanger hook in actor pixels (the held layer's pivot).
        hands: (x, y) of the hands holding the hanger, in held-layer pixels (drawn over it).
        hand_radius: in pixels.
        skin: RGB skin colour.
        focus: (x, y) centre of the sold garment (or the torso) in actor pixels.
        focus_height: height in actor pixels of the sold garment (or the torso).
        focus_width: its width in actor pixels.
    """

    rgba: np.ndarray
    garments: list[PlacedGarment]
    held: tuple[GarmentSprite, PlacedGarment] | None
    held_hook: tuple[float, float]
    hands: list[tuple[float, float]]
    hand_radius: float
    skin: tuple[int, int, int]
    focus: tuple[float, float]
    focus_height: float
    focus_width: float


def _place(sprite: GarmentSprite, S: float, ox: float, oy: float) -> tuple[np.ndarray, float, int, int]:
    """Scale a garment to a body of shoulder half-width S; returns resized RGBA, scale and top-left."""
    if sprite.anchor_kind == "shoulder":
        k = S / sprite.anchor_half_width
        ax, ay = ox, oy + 0.15 * S
    else:
        k = 0.82 * S / sprite.anchor_half_width
        ax, ay = ox, oy + 2.0 * S
    rgba = cv2.resize(sprite.rgba, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    x = int(round(ax - sprite.anchor[0] * k))
    y = int(round(ay - sprite.anchor[1] * k))
    return rgba, k, x, y


def make_actor(rng: np.random.Generator, product: Product | None, mode: str, S: float) -> Actor:
    """Draw the presenter.

    Args:
        rng: the stream's generator (skin, hair, outfit).
        product: the sold product, or None between segments.
        mode: ``"wear"`` (the product is worn), ``"hold"`` (held up on a hanger beside the body) or
            ``"front"`` (held on a hanger in front of the body with both hands).
        S: shoulder half-width in pixels (the body is about 10 S tall).
    """
    W, H = int(9.0 * S), int(11.0 * S)
    ox, oy = 4.5 * S, 2.2 * S  # neck base in canvas pixels
    canvas = np.zeros((H, W, 4), np.uint8)
    skin = SKIN[int(rng.integers(len(SKIN)))]
    hair = HAIR[int(rng.integers(len(HAIR)))]
    side = 1 if rng.random() < 0.5 else -1

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(ox + x * S)), int(round(oy + y * S))

    col = (*skin, 255)
    if rng.random() < 0.5:  # long hair behind the shoulders
        cv2.ellipse(canvas, p(0, -0.6), (int(0.75 * S), int(1.5 * S)), 0, 0, 360, (*hair, 255), -1, cv2.LINE_AA)
    for sx in (-0.42, 0.42):  # legs
        cv2.line(canvas, p(sx, 2.3), p(sx * 1.1, 7.6), col, int(0.5 * S), cv2.LINE_AA)
        cv2.ellipse(canvas, p(sx * 1.15, 7.7), (int(0.35 * S), int(0.16 * S)), 0, 0, 360, (30, 30, 30, 255), -1)
    arm_w = int(0.34 * S)
    holding = product is not None and mode in ("hold", "front")
    hook = (side * 2.5, -0.9) if mode == "hold" else (0.0, -0.75)
    for sx in (-1, 1):
        if holding and mode == "hold" and sx == side:
            cv2.line(canvas, p(sx * 0.95, 0.2), p(sx * 1.9, 0.3), col, arm_w, cv2.LINE_AA)
            cv2.line(canvas, p(sx * 1.9, 0.3), p(*hook), col, arm_w, cv2.LINE_AA)
        elif holding and mode == "front":
            cv2.line(canvas, p(sx * 0.95, 0.2), p(sx * 1.3, 0.9), col, arm_w, cv2.LINE_AA)
            cv2.line(canvas, p(sx * 1.3, 0.9), p(sx * 0.9, -0.3), col, arm_w, cv2.LINE_AA)
        else:
            cv2.line(canvas, p(sx * 0.95, 0.2), p(sx * 1.72, 2.9), col, arm_w, cv2.LINE_AA)
    cv2.rectangle(canvas, p(-0.2, -0.55), p(0.2, 0.2), col, -1)
    cv2.ellipse(canvas, p(0, -1.1), (int(0.52 * S), int(0.68 * S)), 0, 0, 360, col, -1, cv2.LINE_AA)
    cv2.ellipse(canvas, p(0, -1.38), (int(0.56 * S), int(0.45 * S)), 0, 180, 360, (*hair, 255), -1, cv2.LINE_AA)
    for ex in (-0.2, 0.2):
        cv2.circle(canvas, p(ex, -1.1), max(1, int(0.06 * S)), (40, 30, 30, 255), -1, cv2.LINE_AA)
    cv2.ellipse(canvas, p(0, -0.78), (int(0.16 * S), int(0.07 * S)), 0, 0, 180, (170, 70, 70, 255), 2, cv2.LINE_AA)

    worn: list[PlacedGarment] = []
    unit_px = 4.5 * S  # garments drawn at about the size they are worn (no upscaling blur)
    layers: list[tuple[GarmentSprite, int, str]] = []  # (sprite, instance, label)
    region = None
    if product is not None and mode == "wear":
        region = region_of(product.category)
    if region in (None, "lower"):
        top = OUTFIT_TOPS[int(rng.integers(len(OUTFIT_TOPS)))]
        layers.append((plain_garment(rng, top, unit_px), 0, top))
    if region in (None, "upper"):
        bottom = OUTFIT_BOTTOMS[int(rng.integers(len(OUTFIT_BOTTOMS)))]
        layers.insert(0, (plain_garment(rng, bottom, unit_px), 0, bottom))
    if product is not None and mode == "wear":
        layers.append((product_sprite(product, FRONT, unit_px), product.instance_id, product.category))
    focus, focus_h, focus_w = (ox, oy + 1.5 * S), 3.5 * S, 2.0 * S
    for sprite, instance, label in layers:
        rgba, k, x, y = _place(sprite, S, ox, oy)
        paste_at(canvas, rgba, x, y)
        outline = sprite.outline * k + [x, y]
        worn.append(PlacedGarment(outline, label, instance, FRONT, 1))
        if instance > 0:
            lo, hi = outline.min(0), outline.max(0)
            focus, focus_h = ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2), float(hi[1] - lo[1])
            focus_w = float(hi[0] - lo[0])
    for sx in (-1, 1):  # hands over the sleeves
        if not holding or (mode == "hold" and sx != side):
            cv2.circle(canvas, p(sx * 1.78, 3.05), int(0.2 * S), col, -1, cv2.LINE_AA)
    held = None
    hands: list[tuple[float, float]] = []
    hook_px = (ox + hook[0] * S, oy + hook[1] * S)
    if product is not None and mode in ("hold", "front"):
        layer, placed, bar = _held_layer(rng, product, S, unit_px)
        hx, hy = layer.anchor
        hands = [(hx, hy)] if mode == "hold" else [(hx - bar, hy + 0.45 * S), (hx + bar, hy + 0.45 * S)]
        held = (layer, placed)
        lo, hi = placed.outline.min(0), placed.outline.max(0)
        focus_h, focus_w = float(hi[1] - lo[1]), float(hi[0] - lo[0])
        focus = ((lo[0] + hi[0]) / 2 + hook_px[0], (lo[1] + hi[1]) / 2 + hook_px[1])
        if mode == "hold":  # frame the body and the garment beside it together
            focus = ((focus[0] + ox) / 2, focus[1])
    return Actor(canvas, worn, held, hook_px, hands, 0.2 * S, skin, focus, focus_h, focus_w)


def _held_layer(rng: np.random.Generator, product: Product, S: float, unit_px: float
                ) -> tuple[GarmentSprite, PlacedGarment, float]:
    """The product on a hanger, as a layer whose anchor is the hanger hook.

    Returns:
        (layer sprite with outline in layer pixels, the garment with its outline relative to the
        hook, half-width of the hanger bar in pixels).
    """
    view = FRONT if rng.random() < 0.85 else BACK
    sprite = product_sprite(product, view, unit_px)
    k = S / sprite.anchor_half_width if sprite.anchor_kind == "shoulder" else 0.82 * S / sprite.anchor_half_width
    rgba = cv2.resize(sprite.rgba, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    outline = sprite.outline * k
    top_y = float(outline[:, 1].min())
    cx = (float(outline[:, 0].min()) + float(outline[:, 0].max())) / 2
    pad = int(0.5 * S)
    layer = np.zeros((rgba.shape[0] + pad, rgba.shape[1], 4), np.uint8)
    layer[pad:] = rgba
    hx, hy = int(cx), int(top_y + pad)
    bar = 0.9 * S
    grey, thick = (70, 70, 75, 255), max(2, int(S / 20))
    cv2.line(layer, (hx - int(bar), hy + 4), (hx, hy - int(0.25 * S)), grey, thick, cv2.LINE_AA)
    cv2.line(layer, (hx + int(bar), hy + 4), (hx, hy - int(0.25 * S)), grey, thick, cv2.LINE_AA)
    cv2.line(layer, (hx, hy - int(0.25 * S)), (hx, hy - int(0.45 * S)), grey, thick, cv2.LINE_AA)
    outline = outline + [0, pad]
    hook = (float(hx), float(hy - int(0.45 * S)))
    placed = PlacedGarment(outline - np.array(hook, np.float32), product.category, product.instance_id, view, 0)
    return GarmentSprite(layer, outline, sprite.anchor_kind, hook, sprite.anchor_half_width * k), placed, bar
