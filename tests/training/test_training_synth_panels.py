"""The live-commerce UI panels: glyph text, boards, avatars, and where a stream places them."""

from __future__ import annotations

import numpy as np

from training.synth.overlays import draw_overlay, make_overlay
from training.synth.ui_panels import avatar, glyph_line, info_panel, make_panels


def test_glyph_line_draws_strokes_in_every_cell() -> None:
    line = glyph_line(np.random.default_rng(0), chars=6, size=24, colour=(255, 255, 255))
    assert line.shape == (24, 144, 4) and line.dtype == np.uint8
    for c in range(6):
        cell = line[:, c * 24 : (c + 1) * 24, 3]
        assert 0 < np.count_nonzero(cell) < cell.size  # strokes, not a filled block


def test_info_panel_is_deterministic_rounded_and_text_dense() -> None:
    a = info_panel(np.random.default_rng(3), 120, 200)
    b = info_panel(np.random.default_rng(3), 120, 200)
    c = info_panel(np.random.default_rng(4), 120, 200)
    assert a.shape == (200, 120, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[100, 60, 3] > 0  # opaque inside
    # rows of glyphs make the board busy: many colour changes along its rows
    rgb = a[40:190, 5:115, :3].astype(int)
    assert np.count_nonzero(np.abs(np.diff(rgb, axis=1)).sum(-1) > 60) > 200


def test_avatar_is_round() -> None:
    img = avatar(np.random.default_rng(1), 48)
    assert img.shape == (48, 48, 4)
    assert img[0, 0, 3] == 0 and img[24, 24, 3] == 255


def test_panels_hug_the_frame_edges_and_streams_differ() -> None:
    width, height = 540, 960
    seen_left = seen_right = False
    layouts = []
    for seed in range(40):
        placed = make_panels(np.random.default_rng(seed), width, height)
        layouts.append(len(placed))
        for rgba, x, y in placed:
            h, w = rgba.shape[:2]
            if rgba[h // 2, w // 2, 3] == 0 or h == w:  # avatars (square) go anywhere
                continue
            left, right = x <= 0.05 * width, x + w >= 0.95 * width
            assert left or right, (seed, x, w)
            seen_left |= left
            seen_right |= right
            assert y >= 0 and y + h <= height * 1.07
    assert seen_left and seen_right
    assert 0 in layouts and max(layouts) >= 3  # some streams have none, some several


def test_overlay_draws_the_panels_into_the_frame() -> None:
    rng = np.random.default_rng(11)
    overlay = make_overlay(rng, 540, 960)
    assert overlay.panels, "seed 11 should draw at least one panel"
    frame = np.full((960, 540, 3), 128, np.uint8)
    draw_overlay(frame, overlay, 0.0)
    rgba, x, y = overlay.panels[0]
    h, w = rgba.shape[:2]
    region = frame[max(y, 0) : y + h, max(x, 0) : x + w]
    assert np.count_nonzero(np.abs(region.astype(int) - 128).sum(-1) > 30) > 0.3 * region.shape[0] * region.shape[1]


def test_some_rooms_have_a_bystander_whose_clothes_are_not_sold() -> None:
    from training.synth.scenes import make_room

    with_bystander = 0
    for seed in range(12):
        room = make_room(np.random.default_rng(seed), 540, 960, distractors=2)
        extra = room.garments[2:]  # the rack's two garments come first
        if not extra:
            continue
        with_bystander += 1
        h, w = room.image.shape[:2]
        for garment in extra:
            assert garment.instance_id == 0
            lo, hi = garment.outline.min(0), garment.outline.max(0)
            assert hi[0] > 0 and lo[0] < w and hi[1] > 0 and lo[1] < h  # on the room's picture
    assert 1 <= with_bystander <= 10  # about a third of rooms
