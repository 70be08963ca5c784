"""GalleryIndex: exact and approximate search, catalog restriction, live add/remove, save/load."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import engines.gallery_search as gallery_search
from engines.gallery import EmptyGalleryError, GalleryIndex, GalleryInputError

DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _catalogue(rng: np.random.Generator, items: int, per_item: int) -> tuple[list[str], list[str], np.ndarray]:
    """Images clustered around one centre per item: (image ids, item ids, (items*per_item, DIM))."""
    centres = _unit(rng.normal(size=(items, DIM)))
    vectors = np.repeat(centres, per_item, axis=0) + 0.15 * rng.normal(size=(items * per_item, DIM))
    item_ids = [f"i{i:04d}" for i in range(items) for _ in range(per_item)]
    image_ids = [f"{item}/{n}.jpg" for n, item in enumerate(item_ids)]
    return image_ids, item_ids, _unit(vectors)


def _brute(vectors: np.ndarray, items: list[str], query: np.ndarray, k: int, catalog: set[str] | None) -> list[int]:
    scores = vectors @ _unit(query[None])[0]
    rows = [r for r in np.argsort(-scores, kind="stable") if catalog is None or items[r] in catalog]
    return rows[:k]


def _filled(rng: np.random.Generator, **opts: object) -> tuple[GalleryIndex, list[str], list[str], np.ndarray]:
    image_ids, item_ids, vectors = _catalogue(rng, items=60, per_item=5)
    gallery = GalleryIndex(DIM, **opts)  # type: ignore[arg-type]
    boxes = [[i, i, i + 10, i + 20] for i in range(len(image_ids))]
    gallery.add(image_ids, item_ids, vectors, item_boxes=boxes, metadata=[{"n": i} for i in range(len(image_ids))])
    return gallery, image_ids, item_ids, vectors


def test_search_finds_the_nearest_images_with_their_evidence(rng: np.random.Generator) -> None:
    gallery, image_ids, item_ids, vectors = _filled(rng)
    hits = gallery.search(vectors[[7, 100]] * 3.0, k=4)  # queries are normalised on the way in
    assert [len(h) for h in hits] == [4, 4]
    first = hits[0][0]
    assert first.image_id == image_ids[7] and first.item_id == item_ids[7] and first.score == pytest.approx(1.0, abs=1e-5)
    assert first.item_box == (7.0, 7.0, 17.0, 27.0) and first.metadata == {"n": 7}
    for query, row_hits in zip(vectors[[7, 100]], hits, strict=True):
        scores = [h.score for h in row_hits]
        assert scores == sorted(scores, reverse=True)
        assert [h.image_id for h in row_hits] == [image_ids[r] for r in _brute(vectors, item_ids, query, 4, None)]


@pytest.mark.parametrize("exact_below", [0, 4096], ids=["faiss-selector", "exact-subset"])
def test_search_is_restricted_to_the_catalog(rng: np.random.Generator, exact_below: int) -> None:
    gallery, image_ids, item_ids, vectors = _filled(rng, exact_below=exact_below)
    catalog = {f"i{i:04d}" for i in range(0, 60, 7)} | {"not-in-gallery"}
    queries = _unit(rng.normal(size=(6, DIM)))
    for query, row_hits in zip(queries, gallery.search(queries, k=10, catalog=catalog), strict=True):
        assert len(row_hits) == 10 and all(h.item_id in catalog for h in row_hits)
        assert [h.image_id for h in row_hits] == [image_ids[r] for r in _brute(vectors, item_ids, query, 10, catalog)]
    assert gallery.search(queries[:2], k=3, catalog={"unknown"}) == [[], []]
    small = gallery.search(queries[:1], k=50, catalog={"i0003"})[0]
    assert len(small) == 5 and {h.item_id for h in small} == {"i0003"}


def test_add_replace_and_remove_at_run_time(rng: np.random.Generator) -> None:
    gallery, image_ids, item_ids, vectors = _filled(rng)
    gallery.search(vectors[:1])  # builds the FAISS index, so later changes are applied in place
    assert gallery.remove_images([image_ids[0], "never-added"]) == 1
    assert image_ids[0] not in {h.image_id for h in gallery.search(vectors[:1], k=5)[0]}
    assert gallery.remove_items(["i0001"]) == 5 and "i0001" not in gallery.item_ids()
    assert len(gallery) == 300 - 6
    assert all(h.item_id != "i0001" for h in gallery.search(vectors[5:10], k=20)[0])
    # replacing an image id moves it to its new vector
    gallery.add([image_ids[20]], ["i0999"], vectors[250:251])
    top = gallery.search(vectors[250:251], k=2)[0]
    assert {h.image_id for h in top} == {image_ids[20], image_ids[250]} and len(gallery) == 294
    gallery.add(["new.jpg"], ["i1000"], rng.normal(size=(1, DIM)))
    assert "i1000" in gallery.item_ids() and len(gallery) == 295


def test_save_and_load_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    gallery, image_ids, _, vectors = _filled(rng)
    gallery.remove_images(image_ids[:3])
    before = gallery.search(vectors[10:15], k=5, catalog={"i0002", "i0040"})
    folder = gallery.save(tmp_path / "gallery")
    assert {p.name for p in folder.iterdir()} == {"index.faiss", "vectors.npz", "gallery.json"}
    loaded = GalleryIndex.load(folder)
    assert len(loaded) == len(gallery) and loaded.item_ids() == gallery.item_ids()
    assert loaded.search(vectors[10:15], k=5, catalog={"i0002", "i0040"}) == before
    assert loaded.search(vectors[10:11], k=1)[0][0].metadata == {"n": 10}
    loaded.add(["after-load.jpg"], ["i5000"], vectors[10:11])  # ids keep counting after a load
    assert {h.image_id for h in loaded.search(vectors[10:11], k=2)[0]} == {image_ids[10], "after-load.jpg"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "vectors.npz").write_bytes((f / "vectors.npz").read_bytes()[:2000]), "unreadable"),
        (lambda f: (f / "vectors.npz").write_bytes(b"not a zip"), "unreadable"),
        (lambda f: (f / "gallery.json").write_text("{", encoding="utf-8"), "unreadable"),
        (lambda f: (f / "gallery.json").write_text('{"format_version": 1}', encoding="utf-8"), "unreadable"),
    ],
)
def test_a_damaged_gallery_folder_is_a_clear_error(rng: np.random.Generator, tmp_path: Path, damage: object,
                                                    message: str) -> None:
    gallery, *_ = _filled(rng)
    folder = gallery.save(tmp_path / "gallery")
    damage(folder)  # type: ignore[operator]
    with pytest.raises(GalleryInputError, match=message):
        GalleryIndex.load(folder)


def test_a_corrupt_index_file_is_rebuilt_from_the_vectors(rng: np.random.Generator, tmp_path: Path) -> None:
    gallery, _, _, vectors = _filled(rng)
    before = gallery.search(vectors[:3], k=3)
    folder = gallery.save(tmp_path / "gallery")
    (folder / "index.faiss").write_bytes(b"garbage" * 10)
    assert GalleryIndex.load(folder).search(vectors[:3], k=3) == before


def test_empty_and_missing_galleries(tmp_path: Path) -> None:
    gallery = GalleryIndex(DIM)
    with pytest.raises(EmptyGalleryError, match="gallery is empty"):
        gallery.search(np.ones((1, DIM), np.float32))
    with pytest.raises(EmptyGalleryError, match="no saved gallery"):
        GalleryIndex.load(tmp_path / "missing")
    gallery.add(["a"], ["x"], np.ones((1, DIM)))
    gallery.remove_items(["x"])
    with pytest.raises(EmptyGalleryError):
        gallery.search(np.ones((1, DIM), np.float32))


def test_bad_input_is_refused_and_nothing_is_lost(rng: np.random.Generator) -> None:
    gallery, _, _, vectors = _filled(rng)
    with pytest.raises(GalleryInputError, match=r"must be \(N, 32\)"):
        gallery.add(["x"], ["y"], np.ones((1, 8)))
    with pytest.raises(GalleryInputError, match="NaN"):
        gallery.add(["x"], ["y"], np.full((1, DIM), np.nan))
    with pytest.raises(GalleryInputError, match="all-zero row"):
        gallery.add(["x"], ["y"], np.zeros((1, DIM)))
    with pytest.raises(GalleryInputError, match="same image id twice"):
        gallery.add(["x", "x"], ["y", "y"], np.ones((2, DIM)))
    with pytest.raises(GalleryInputError, match="as many item ids"):
        gallery.add(["x", "z"], ["y"], np.ones((2, DIM)))
    with pytest.raises(GalleryInputError, match="query vectors"):
        gallery.search(np.ones((2, 5)))
    with pytest.raises(GalleryInputError, match="index kind"):
        GalleryIndex(DIM, index="lsh")
    assert len(gallery) == 300


def test_torch_matmul_backend_matches_faiss(rng: np.random.Generator) -> None:
    faiss_gallery, image_ids, item_ids, vectors = _filled(rng)
    torch_gallery = GalleryIndex(DIM, backend="torch", device="cpu", exact_below=0)
    torch_gallery.add(image_ids, item_ids, vectors)
    queries = _unit(rng.normal(size=(5, DIM)))
    for catalog in (None, {"i0001", "i0030", "i0059"}):
        got = torch_gallery.search(queries, k=6, catalog=catalog)
        want = faiss_gallery.search(queries, k=6, catalog=catalog)
        assert [[h.image_id for h in row] for row in got] == [[h.image_id for h in row] for row in want]
        np.testing.assert_allclose([[h.score for h in row] for row in got], [[h.score for h in row] for row in want], atol=1e-5)
    torch_gallery.remove_items(["i0030"])
    assert all(h.item_id != "i0030" for h in torch_gallery.search(vectors[150:151], k=10)[0])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_the_right_item_and_support_removal(rng: np.random.Generator, kind: str, tmp_path: Path) -> None:
    gallery, image_ids, item_ids, vectors = _filled(rng, index=kind, nprobe=8, exact_below=0)
    queries = vectors[::10] + 0.05 * rng.normal(size=(30, DIM))
    hits = gallery.search(queries, k=1)
    agree = np.mean([row[0].item_id == item_ids[i * 10] for i, row in enumerate(hits)])
    assert agree >= 0.9
    restricted = gallery.search(queries, k=3, catalog={"i0002"})
    assert all(h.item_id == "i0002" for row in restricted for h in row)
    gallery.remove_items(["i0000"])
    assert all(h.item_id != "i0000" for h in gallery.search(vectors[:1], k=10)[0])
    loaded = GalleryIndex.load(gallery.save(tmp_path / kind), exact_below=0, nprobe=8)
    assert [h.image_id for h in loaded.search(vectors[50:51], k=3)[0]] == [h.image_id for h in gallery.search(vectors[50:51], k=3)[0]]


def test_auto_index_switches_to_ivf_when_large(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gallery_search, "AUTO_APPROXIMATE_FROM", 200)
    gallery = GalleryIndex(DIM, index="auto", exact_below=0, nprobe=64)
    image_ids, item_ids, vectors = _catalogue(rng, items=60, per_item=5)
    gallery.add(image_ids[:100], item_ids[:100], vectors[:100])
    gallery.search(vectors[:1])
    assert gallery.index_kind == "flat"
    gallery.add(image_ids[100:], item_ids[100:], vectors[100:])
    assert gallery.search(vectors[250:251], k=1)[0][0].image_id == image_ids[250]
    assert gallery.index_kind == "ivf"


def test_concurrent_updates_and_searches(rng: np.random.Generator) -> None:
    gallery, _, _, vectors = _filled(rng)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for n in range(40):
                gallery.add([f"w{worker}-{n}"], [f"item-w{worker}"], vectors[n : n + 1])
                if n % 2:
                    gallery.remove_images([f"w{worker}-{n - 1}"])
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            for n in range(80):
                for row in gallery.search(vectors[n % 50 : n % 50 + 2], k=5, catalog={"item-w0", "item-w1", "i0001"}):
                    assert all(h.item_id in {"item-w0", "item-w1", "i0001"} for h in row)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(gallery) == 300 + 2 * 20


def test_a_change_builds_a_new_snapshot_and_leaves_the_one_in_use_alone(rng: np.random.Generator) -> None:
    """Searches hold the snapshot they started with: a change never alters it (no stall, no torn state)."""
    gallery, images, items, vectors = _filled(rng)
    before = gallery.snapshot
    index_before = before.faiss.index if before.faiss is not None else None
    total = len(before)
    new = _unit(rng.normal(size=(1, vectors.shape[1])).astype(np.float32))
    gallery.add(["new/0"], ["item-new"], new)
    gallery.remove_images([images[0]])
    assert len(before) == total and before.image_ids[0] == images[0], "the old snapshot is unchanged"
    assert index_before is not None and index_before.ntotal == total, "its index too"
    after = gallery.snapshot
    assert after is not before and len(after) == total and "new/0" in after.image_ids.tolist()
    assert gallery.search(new[0], k=1)[0][0].image_id == "new/0"


def test_the_index_keeps_catalogs_categories_and_titles_in_step_with_its_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    gallery = GalleryIndex(8)
    vectors = rng.normal(size=(4, 8)).astype(np.float32)
    gallery.add(["a/0", "a/1", "b/0", "c/0"], ["a", "a", "b", "c"], vectors, metadata=[
        {"catalog": "shop-1", "category": 3, "title": "红色连衣裙"}, {"catalog": "shop-1", "category": 5},
        {"catalog": "shop-1", "category": True}, {"catalog": "shop-2", "title": ""},
    ])
    assert gallery.catalog_items("shop-1") == {"a", "b"} and gallery.catalog_items("shop-2") == {"c"}
    assert gallery.catalog_items("nope") is None  # a catalog the gallery does not have
    assert gallery.item_categories("a") == {3, 5} and gallery.item_categories("b") is None  # a bool is no index
    assert gallery.item_titles() == {"a": "红色连衣裙"}

    gallery.remove_images(["a/0"])  # forgets exactly what that image brought
    assert gallery.item_categories("a") == {5} and gallery.item_titles() == {}
    gallery.add(["b/0"], ["b"], vectors[2:3], metadata=[{"catalog": "shop-3"}])  # a replaced image moves
    assert gallery.catalog_items("shop-1") == {"a"} and gallery.catalog_items("shop-3") == {"b"}
    gallery.remove_items(["c"])
    assert gallery.catalog_items("shop-2") is None

    gallery.save(tmp_path / "g")
    loaded = GalleryIndex.load(tmp_path / "g")
    assert loaded.catalog_items("shop-1") == {"a"} and loaded.item_categories("a") == {5}
