"""The person segmenter (engines.person_segmenter): the shipped package, its provenance, its masks
on photos that scikit-image bundles, and its refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage import data as samples

from engines import ModelPackageError
from engines.person_segmenter import PersonSegmenter

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "person"


@pytest.fixture(scope="module")
def segmenter() -> PersonSegmenter:
    return PersonSegmenter(SHIPPED)


def test_the_shipped_package_records_where_its_weights_came_from() -> None:
    spec = json.loads((SHIPPED / "spec.json").read_text())
    source = spec["initial_weights"]
    assert (source["package"], source["version"], source["licence"]) == ("mediapipe", "0.10.14", "Apache-2.0")
    assert source["path_in_wheel"].endswith("selfie_segmentation.tflite")
    assert hashlib.sha256((SHIPPED / spec["file"]).read_bytes()).hexdigest() == spec["sha256"]
    assert "Apache License" in (SHIPPED / "LICENSE").read_text()


def test_the_mask_has_the_network_resolution_and_is_a_probability(segmenter: PersonSegmenter) -> None:
    probs = segmenter.probabilities(samples.astronaut())
    assert probs.shape == (256, 256) and probs.dtype == np.float32
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    assert segmenter.label == "selfie-segmentation@mediapipe-0.10.14"


def test_the_astronaut_is_a_person_and_the_flag_behind_her_is_not(segmenter: PersonSegmenter) -> None:
    """skimage's astronaut (512 x 512): her face and shoulders are on the person, the flag in the
    top-right corner is background."""
    boxes = np.array([[150, 50, 300, 200],    # face
                      [380, 0, 512, 120]],    # the flag, top right
                     np.float32)
    face, flag = segmenter.coverage(samples.astronaut(), boxes)
    assert face > 0.7
    assert flag < 0.1


def test_a_photo_without_a_person_has_next_to_no_mask(segmenter: PersonSegmenter) -> None:
    image = samples.rocket()  # a rocket on its launch pad
    whole = np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)
    assert segmenter.coverage(image, whole)[0] < 0.02


def test_coverage_of_no_boxes_and_of_boxes_outside_the_frame(segmenter: PersonSegmenter) -> None:
    image = samples.astronaut()
    assert segmenter.coverage(image, np.zeros((0, 4), np.float32)).shape == (0,)
    outside = np.array([[600, 600, 700, 700], [100, 100, 100, 300]], np.float32)  # off the frame; no width
    assert segmenter.coverage(image, outside).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="RGB"):
        segmenter.probabilities(image[:, :, 0])


def test_a_package_with_a_changed_file_or_the_wrong_role_is_refused(tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(SHIPPED, changed)
    with (changed / "model.tflite").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelPackageError, match="SHA-256"):
        PersonSegmenter(changed)
    wrong = tmp_path / "wrong"
    shutil.copytree(SHIPPED, wrong)
    spec = json.loads((wrong / "spec.json").read_text())
    (wrong / "spec.json").write_text(json.dumps({**spec, "role": "detector"}))
    with pytest.raises(ModelPackageError, match="role"):
        PersonSegmenter(wrong)
    with pytest.raises(ModelPackageError, match="spec"):
        PersonSegmenter(tmp_path / "missing")


def test_loading_keeps_the_runtime_banner_off_stderr_and_passes_the_rest(capfd: pytest.CaptureFixture[str]) -> None:
    """Commands print one-line errors on stderr: the runtime's start-up banner must not get there,
    while anything else written to stderr meanwhile still does."""
    import os

    from engines.person_segmenter import DELEGATE_BANNER, _banner_filtered

    with _banner_filtered():
        os.write(2, DELEGATE_BANNER + b"\nanother thread's warning\n")
    PersonSegmenter(SHIPPED).probabilities(samples.rocket())
    err = capfd.readouterr().err
    assert "XNNPACK" not in err
    assert "another thread's warning" in err
