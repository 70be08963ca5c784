"""Gallery builder: image discovery, annotated vs detected crops, bad images, save/load, lookups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from consumers_media import export_tiny_models, make_shop_images

from consumers.settings import ModelSettings
from consumers.stage.gallery_builder import (
    EmptyGalleryError,
    ShopImageError,
    build_gallery,
    find_shop_images,
    gallery_refs,
    load_gallery,
    to_index,
)
from consumers.stage.model_loading import load_models


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    packages = export_tiny_models(tmp_path_factory.mktemp("gallery_models"))
    return load_models(ModelSettings(str(packages["detector"]), str(packages["embedder"])), 0.05, 0.6)


def _annotate(root: Path, item_id: str, name: str, anns: list[dict[str, Any]]) -> None:
    path = root / item_id / f"{Path(name).stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"item_id": item_id, "img_name": name, "annotations": anns}))


def test_find_shop_images_uses_the_product_annotation(tmp_path: Path) -> None:
    images = make_shop_images(tmp_path / "image", {"A": "red", "B": "blue"})
    anns = tmp_path / "image_annotation"
    _annotate(anns, "A", "0.jpg", [
        {"box": [0, 0, 10, 10], "label": "top", "instance_id": 0},        # not the product
        {"box": [12, 14, 84, 114], "label": "dress", "instance_id": 7},   # the product
        {"box": [1, 1, 3, 3], "label": "dress", "instance_id": 7},        # smaller box of it
    ])
    found = {s.image_id: s for s in find_shop_images(images, anns)}
    assert sorted(found) == ["A/0.jpg", "A/1.jpg", "B/0.jpg", "B/1.jpg"]
    assert found["A/0.jpg"].box == (12.0, 14.0, 84.0, 114.0) and found["A/0.jpg"].label == "dress"
    assert found["A/1.jpg"].box is None  # no annotation file: the detector will crop it


def test_find_shop_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ShopImageError, match="not found"):
        find_shop_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShopImageError, match="no images"):
        find_shop_images(tmp_path / "empty")
    make_shop_images(tmp_path / "img", {"A": "red"}, per_item=1)
    with pytest.raises(ShopImageError, match="annotation folder"):
        find_shop_images(tmp_path / "img", tmp_path / "no_annotations")


@pytest.mark.parametrize("text", ["{oops", "[1, 2]", '{"annotations": [{"box": ["a", 0, 1, 1]}]}',
                                  '{"annotations": 7}'])
def test_a_bad_annotation_file_is_logged_and_the_image_kept_unannotated(
        tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    images = make_shop_images(tmp_path / "img", {"A": "red"}, per_item=2)
    anns = tmp_path / "image_annotation"
    _annotate(anns, "A", "1.jpg", [{"box": [12, 14, 84, 114], "label": "dress", "instance_id": 7}])
    (anns / "A" / "0.json").write_text(text)
    with caplog.at_level("WARNING", logger="consumers.stage.gallery_builder"):
        found = {s.image_id: s for s in find_shop_images(images, anns)}
    assert sorted(found) == ["A/0.jpg", "A/1.jpg"]  # nothing lost
    assert found["A/0.jpg"].box is None and found["A/0.jpg"].item_id == "A"  # the detector will crop it
    assert found["A/1.jpg"].box == (12.0, 14.0, 84.0, 114.0)
    assert any("0.json" in r.getMessage() and "ignoring annotation" in r.getMessage() for r in caplog.records)


def test_build_save_load_roundtrip(tmp_path: Path, engines: tuple[Any, Any]) -> None:
    detector, embedder = engines
    images = make_shop_images(tmp_path / "image", {"A": "red", "B": "blue"})
    anns = tmp_path / "image_annotation"
    _annotate(anns, "A", "0.jpg", [{"box": [12, 14, 84, 114], "label": "dress", "instance_id": 7}])
    (images / "B" / "broken.jpg").write_bytes(b"not a jpeg")
    build = build_gallery(find_shop_images(images, anns), detector, embedder, catalog="shop-1", progress=False)
    assert len(build.ids) == 4 and build.items == {"A", "B"}
    assert [Path(p).name for p, _ in build.skipped] == ["broken.jpg"]  # listed, not silently lost
    assert build.vectors.shape == (4, embedder.dim)
    assert np.allclose(np.linalg.norm(build.vectors, axis=1), 1.0, atol=1e-4)
    meta = dict(zip(build.ids, build.metadata, strict=True))
    assert meta["A/0.jpg"]["box"] == [12.0, 14.0, 84.0, 114.0]
    assert meta["A/0.jpg"]["category"] == detector.spec.classes.index("dress")
    assert all(m["catalog"] == "shop-1" for m in build.metadata)

    to_index(build).save(tmp_path / "gallery")
    loaded = load_gallery(tmp_path / "gallery")
    assert sorted(loaded.image_ids()) == sorted(build.ids)
    assert gallery_refs(loaded)["A/0.jpg"] == ("A", "0.jpg")
    hits = loaded.search(build.vectors[:1], k=1)
    assert hits[0][0].image_id == build.ids[0] and hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    # the loaded index knows each catalog's items and each item's categories from the metadata
    assert loaded.catalog_items("shop-1") == {"A", "B"}
    assert loaded.catalog_items("other") is None
    assert loaded.item_categories("A") == {detector.spec.classes.index("dress")} | {
        m["category"] for m in build.metadata if m["item_id"] == "A" and m["category"] is not None
    }


def test_nothing_embeddable_is_an_empty_gallery(tmp_path: Path, engines: tuple[Any, Any]) -> None:
    (tmp_path / "image" / "A").mkdir(parents=True)
    (tmp_path / "image" / "A" / "0.jpg").write_bytes(b"garbage")
    with pytest.raises(EmptyGalleryError, match="no shop image"):
        build_gallery(find_shop_images(tmp_path / "image"), *engines, progress=False)


def test_load_gallery_errors(tmp_path: Path) -> None:
    with pytest.raises(EmptyGalleryError, match="not found"):
        load_gallery(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyGalleryError, match="livetag gallery build"):
        load_gallery(tmp_path / "empty")
