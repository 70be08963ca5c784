"""Gallery views: the crops of each view, their averaged vector, and the option at gallery build."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from consumers_media import export_tiny_models, make_shop_images

from consumers.settings import ModelSettings
from consumers.settings.checks import SettingsError
from consumers.stage.gallery_builder import build_gallery, find_shop_images
from consumers.stage.model_loading import load_models
from engines.gallery_views import embed_views, parse_views, view_crops


class LeftRightEmbedder:
    """Embeds a crop as (mean red of its left half, mean red of its right half, 1), unit length."""

    dim = 3

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for c in crops:
            half = c.shape[1] // 2
            rows.append([c[:, :half, 0].mean(), c[:, half:, 0].mean(), 1.0])
        out = np.asarray(rows, np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _left_red_image() -> np.ndarray:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100, 0] = 200  # red on the left half
    return image


def test_parse_views_keeps_order_drops_repeats_and_names_the_known_views() -> None:
    assert parse_views("box") == ("box",)
    assert parse_views(" box, flip ,box,wide") == ("box", "flip", "wide")
    with pytest.raises(ValueError, match="box, flip, tight, wide"):
        parse_views("box,side")
    with pytest.raises(ValueError, match="unknown"):
        parse_views(" , ")


def test_view_crops_mirror_tighten_and_widen_the_box() -> None:
    image = _left_red_image()
    box = (40.0, 20.0, 160.0, 80.0)  # 120 x 60
    crops = dict(zip(("box", "flip", "tight", "wide"), view_crops(image, box, ("box", "flip", "tight", "wide")),
                     strict=True))
    assert crops["box"].shape == (66, 132, 3)
    assert np.array_equal(crops["flip"], crops["box"][:, ::-1])
    assert crops["tight"].shape[1] < 120 < crops["box"].shape[1] < crops["wide"].shape[1] <= 200
    assert crops["wide"].shape[0] == 84
    whole = view_crops(image, None, ("box", "tight", "wide"))  # no box: the whole image for every view
    assert all(c.shape == image.shape for c in whole)


def test_embed_views_averages_each_images_views_into_one_unit_vector() -> None:
    image = _left_red_image()
    box = (0.0, 0.0, 200.0, 100.0)
    plain = embed_views(LeftRightEmbedder(), [view_crops(image, box, ("box",))])
    both = embed_views(LeftRightEmbedder(), [view_crops(image, box, ("box", "flip"))] * 2)
    assert plain.shape == (1, 3) and both.shape == (2, 3)
    assert plain[0, 0] > plain[0, 1]  # the left half is the red one
    assert both[0, 0] == pytest.approx(both[0, 1], abs=1e-6)  # with its mirror, left and right weigh the same
    assert np.allclose(np.linalg.norm(both, axis=1), 1.0)
    assert embed_views(LeftRightEmbedder(), []).shape == (0, 0)


def test_an_unknown_view_is_refused_at_start_up() -> None:
    assert ModelSettings(gallery_views="box, flip").gallery_view_names == ("box", "flip")
    with pytest.raises(SettingsError, match="models.gallery_views"):
        ModelSettings(gallery_views="box,side")


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    packages = export_tiny_models(tmp_path_factory.mktemp("views_models"))
    return load_models(ModelSettings(str(packages["detector"]), str(packages["embedder"])), 0.05, 0.6)


def test_gallery_build_with_views_keeps_one_entry_per_image(tmp_path: Path, engines: tuple[Any, Any]) -> None:
    detector, embedder = engines
    images = find_shop_images(make_shop_images(tmp_path / "image", {"A": "red", "B": "blue"}))
    plain = build_gallery(images, detector, embedder, progress=False)
    viewed = build_gallery(images, detector, embedder, progress=False, views=("box", "flip", "wide"))
    assert viewed.ids == plain.ids and viewed.metadata == plain.metadata
    assert viewed.vectors.shape == plain.vectors.shape
    assert np.allclose(np.linalg.norm(viewed.vectors, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(viewed.vectors, plain.vectors, atol=1e-4)  # the other views moved the vectors
