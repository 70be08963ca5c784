"""OCR: the cadence and the bounded background queue (a scripted reader), and rapidocr reading a
banner the synthetic generator drew into a real encoded stream."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from consumers.settings.text import TextSettings
from consumers.text.ocr import OcrScheduler, RapidOcrReader
from consumers.text.text_prior import TextPriors
from engines.categories import CATEGORIES
from stream.clock import FakeClock

FRAME = np.zeros((8, 8, 3), np.uint8)


def _priors(titles: dict[str, str] | None = None) -> TextPriors:
    return TextPriors(TextSettings(), CATEGORIES, titles or {}, None, FakeClock())


def test_inline_ocr_reads_one_frame_per_interval_per_stream() -> None:
    read: list[float] = []

    def reader(image: np.ndarray) -> list[str]:
        read.append(float(image[0, 0, 0]))
        return ["SHORTS"]

    priors = _priors()
    ocr = OcrScheduler(TextSettings(ocr_mode="inline", ocr_interval_s=5.0), reader, priors)
    taken = [ocr.offer("s1", float(t), np.full((4, 4, 3), t, np.uint8)) for t in range(12)]
    assert [t for t, ok in enumerate(taken) if ok] == [0, 5, 10]
    assert ocr.offer("s2", 3.0, FRAME)  # every stream has its own cadence
    assert ocr.stats["read"] == 4 and read == [0.0, 5.0, 10.0, 0.0]
    priors.seen("s1", 10.0)
    assert priors.has_text("s1")


def test_ocr_converts_a_picture_only_when_it_takes_it() -> None:
    """The stage offers each frame's picture (YUV planes); only a frame taken for OCR is made RGB."""
    from engines.picture import PlanarPicture

    read: list[tuple[int, ...]] = []

    def reader(image: np.ndarray) -> list[str]:
        read.append(image.shape)
        return []

    pictures = [PlanarPicture(av.VideoFrame(64, 48, "yuv420p")) for _ in range(3)]
    ocr = OcrScheduler(TextSettings(ocr_mode="inline", ocr_interval_s=5.0), reader, _priors())
    assert [ocr.offer("s1", t, p) for t, p in zip((0.0, 1.0, 5.0), pictures, strict=True)] == [True, False, True]
    assert read == [(48, 64, 3)] * 2
    assert [p._rgb is not None for p in pictures] == [True, False, True]


def test_background_ocr_drops_the_oldest_frame_when_behind_and_survives_a_failing_read() -> None:
    gate, busy = threading.Event(), threading.Event()
    calls: list[str] = []

    def reader(image: np.ndarray) -> list[str]:
        calls.append("read")
        busy.set()
        gate.wait(10)
        if len(calls) == 1:
            raise RuntimeError("model failed")
        return []

    settings = TextSettings(ocr_mode="background", ocr_interval_s=1.0, ocr_queue=2)
    ocr = OcrScheduler(settings, reader, _priors())
    try:
        ocr.offer("s1", 0.0, FRAME)
        assert busy.wait(10)
        for t in range(1, 6):  # the worker holds the first frame; the queue of 2 keeps the newest
            ocr.offer("s1", float(t), FRAME)
        gate.set()
        assert ocr.drain(10)
        assert ocr.stats["dropped"] == 3 and ocr.stats["failed"] == 1 and ocr.stats["read"] == 2
    finally:
        ocr.close()


@pytest.fixture(scope="module")
def banner_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    from training.synth.generate import SynthConfig, generate

    out = tmp_path_factory.mktemp("banners")
    generate(SynthConfig(out=out, products=4, streams=1, seed=3, test_fraction=0.0, seconds=2.0, fps=20, segments=1,
                         workers=1, flat=True, text_banners=True, progress=False))
    titles = {p.stem: p.read_text(encoding="utf-8").strip() for p in (out / "image_text").glob("*.txt")}
    return out, titles


def test_rapidocr_reads_the_generated_banner_and_it_names_the_shown_item(banner_stream: tuple[Path, dict[str, str]]) -> None:
    import json

    out, titles = banner_stream
    shown = json.loads((out / "segments.json").read_text(encoding="utf-8"))["v000000"][0]["item_id"]
    with av.open(str(out / "video" / "v000000.mp4")) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 20).to_ndarray(format="rgb24")
    lines = RapidOcrReader()(frame)
    model = titles[shown].split()[-1]
    assert any(model in line for line in lines), lines
    priors = _priors(titles)
    ocr = OcrScheduler(TextSettings(ocr_mode="inline"), RapidOcrReader(), priors)
    assert ocr.offer("v000000", 1.0, frame)
    priors.seen("v000000", 1.0)
    factors = {item: priors.item_factor("v000000", item) for item in titles}
    assert max(factors, key=lambda item: factors[item]) == shown and factors[shown] > 1.0
