"""Accuracy of the shipped (or given) model packages on a real Tianchi-layout folder.

Prints, for ``--data DIR`` (e.g. ``../shared/realdev/tianchi-demo-25``, evaluation only):

- the pipeline end to end (``livetag eval tianchi`` defaults, ``fps:4``): per-stream top-1 (k/n), R@5
  and the median time to the first correct match, twice in one run: with the visual votes alone
  (``--no-text``), and with the set's item titles (``image_text/``) and transcripts (``video_text/``)
  as text cues, and the two compared video by video (``compare_real.paired_change``: videos gained
  and lost by the text, sign test);
- the embedder alone: crops of the annotated sold-item boxes (+10 %) against crops of the annotated
  shop-image boxes (the whole image where a shop image has no box), item-level R@1 / R@5, and the
  per-stream top-1 those crops give (mean per-item similarity over a video's crops: the ceiling with a
  perfect detector);
- the detector alone on the annotated frames: share of sold-item boxes matched (IoU >= 0.5) by any
  detection, and by the detection with the highest sold-item probability; and, when the embedder
  gives a garment probability per crop, by the detection with the highest objectness x sold x garment
  (then x motion, x the size-and-place prior, x its person-mask term: the pipeline's weighting);
- the same any-box recall when boxes of lower objectness are kept too (0.3 down to 0.01): how many
  sold items the detector finds but scores under ``pipeline.detection_threshold``;
- what the detector's box geometry costs the embedder, apart from choosing the box: for each annotated
  sold-item box that a detection matches, the crop of the annotated box and the crop of that detection
  against the same gallery (R@1 each, and the per-stream top-1 each gives over those frames).

Nothing is tuned here: the packages run with their default settings. ``--json FILE`` writes the figures,
with every video's answer; ``benchmarks/compare_real.py`` compares two such files stream by stream.

Usage::

    python benchmarks/real_accuracy.py --data ../shared/realdev/tianchi-demo-25 [--detector DIR --embedder DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from consumers.settings import ModelSettings, Settings  # noqa: E402
from consumers.settings.options import add_setting_options, load_settings  # noqa: E402
from consumers.stage.model_loading import load_models  # noqa: E402
from consumers.stage.motion_cue import MotionCue  # noqa: E402
from consumers.stage.presentation_prior import frame_presentation  # noqa: E402
from engines.gallery_views import embed_views, view_crops  # noqa: E402
from engines.person_segmenter import PersonSegmenter  # noqa: E402
from engines.preprocess import crop, iou_matrix  # noqa: E402
from stream.clock import SystemClock  # noqa: E402
from training.tianchi import TianchiDataset, read_frames  # noqa: E402

IOU = 0.5
CROP_EXPAND = 0.1
#: Objectness thresholds of the any-box recall curve (the default ``pipeline.detection_threshold`` first).
OBJECTNESS_THRESHOLDS = (0.3, 0.2, 0.1, 0.05, 0.01)


def annotated_crops(data: TianchiDataset, views: tuple[str, ...] = ("box",)) -> tuple[
        list[np.ndarray], list[str], list[str], list[list[np.ndarray]], list[str]]:
    """Query crops of the sold item in the annotated frames, and the shop-image crops.

    Args:
        data: The Tianchi-layout set.
        views: Views of each shop image (``models.gallery_views``); ``box`` is the box + 10 %.

    Returns:
        ``(queries, query_items, query_videos, gallery, gallery_items)``; crops are (h, w, 3) uint8 RGB,
        ``gallery`` holds the view crops of each shop image.
    """
    items = data.instance_to_item()
    gallery, gallery_items = shop_crops(data, views)
    queries, query_items, query_videos = [], [], []
    for video in data.videos():
        frames = read_frames(video.path, [f.frame_index for f in video.frames])
        for annotated in video.frames:
            if annotated.frame_index not in frames:
                continue
            for ann in annotated.annotations:
                if ann.instance_id > 0 and ann.instance_id in items:
                    queries.append(crop(frames[annotated.frame_index], ann.box, CROP_EXPAND))
                    query_items.append(items[ann.instance_id])
                    query_videos.append(video.video_id)
    return queries, query_items, query_videos, gallery, gallery_items


def shop_crops(data: TianchiDataset, views: tuple[str, ...] = ("box",)) -> tuple[list[list[np.ndarray]], list[str]]:
    """The view crops of each shop image (its annotated box, else the whole image) and its item id."""
    from consumers.stage.gallery_builder import read_rgb

    gallery, gallery_items = [], []
    for shop in data.shop_images():
        rgb = read_rgb(shop.path)
        boxes = [a.box for a in shop.annotations if a.instance_id > 0]
        gallery.append(view_crops(rgb, boxes[0] if boxes else None, views))
        gallery_items.append(shop.item_id)
    return gallery, gallery_items


def item_similarities(queries: np.ndarray, gallery: np.ndarray, gallery_items: list[str]) -> tuple[list[str], np.ndarray]:
    """Each item's score for each query: the similarity of its best shop image.

    Args:
        queries: [Q, D] unit vectors.
        gallery: [G, D] unit vectors.
        gallery_items: G item ids.

    Returns:
        ``(names, per_item)``: the I item ids, sorted, and [Q, I] similarities.
    """
    names = sorted(set(gallery_items))
    owner = np.asarray(gallery_items)
    sims = queries @ gallery.T
    return names, np.stack([sims[:, owner == name].max(axis=1) for name in names], axis=1)


def item_recall(queries: np.ndarray, query_items: list[str], gallery: np.ndarray,
                gallery_items: list[str]) -> dict[str, float]:
    """Item-level R@1 / R@5: each item scores its best shop image.

    Args:
        queries: [Q, D] unit vectors.
        query_items: Q item ids.
        gallery: [G, D] unit vectors.
        gallery_items: G item ids.
    """
    names, per_item = item_similarities(queries, gallery, gallery_items)
    order = np.asarray(names)[np.argsort(-per_item, axis=1)]
    truth = np.asarray(query_items)
    return {"R@1": float(np.mean(order[:, 0] == truth)),
            "R@5": float(np.mean([t in row[:5] for t, row in zip(truth, order, strict=True)])),
            "queries": int(len(truth))}


def stream_top1_with_annotated_boxes(queries: np.ndarray, query_items: list[str], query_videos: list[str],
                                     gallery: np.ndarray, gallery_items: list[str]) -> dict[str, int]:
    """Per-stream top-1 with a perfect detector: each video's item is the one whose best shop image is
    most similar on average over the video's annotated sold-item crops.

    Args:
        queries: [Q, D] unit vectors of the annotated sold-item crops.
        query_items, query_videos: Q item ids and the video of each crop.
        gallery: [G, D] unit vectors; gallery_items: G item ids.
    """
    names, per_item = item_similarities(queries, gallery, gallery_items)
    videos = np.asarray(query_videos)
    correct = 0
    for video in sorted(set(query_videos)):
        rows = np.flatnonzero(videos == video)
        truth = Counter(query_items[r] for r in rows).most_common(1)[0][0]  # the video's sold item
        correct += int(names[int(np.argmax(per_item[rows].mean(axis=0)))] == truth)
    return {"correct": correct, "videos": len(set(query_videos))}


def embedder_figures(embedder: Any, data: TianchiDataset, views: tuple[str, ...] = ("box",)) -> dict[str, Any]:
    """The embedder alone on the annotated crops (each shop image's vector averaged over ``views``),
    and the per-stream top-1 it gives with those crops (a perfect detector's ceiling)."""
    queries, query_items, query_videos, gallery, gallery_items = annotated_crops(data, views)
    q = np.concatenate([np.asarray(embedder.embed(queries[i:i + 32])) for i in range(0, len(queries), 32)])
    g = np.concatenate([embed_views(embedder, gallery[i:i + 32]) for i in range(0, len(gallery), 32)])
    figures: dict[str, Any] = dict(item_recall(q, query_items, g, gallery_items))
    figures["stream_top1_annotated_boxes"] = stream_top1_with_annotated_boxes(q, query_items, query_videos, g,
                                                                              gallery_items)
    return figures


def detector_figures(detector: Any, data: TianchiDataset, embedder: Any = None, person: Any = None) -> dict[str, float]:
    """Sold-item box recall on the annotated frames: by any detection, by the top-``sold`` detection,
    by the top objectness x sold x motion detection (:mod:`consumers.stage.motion_cue`, each frame
    against the previous annotated one, about 2 s earlier) and, with an embedder that has a
    ``garment`` output, by the top objectness x sold x garment detection, without and with motion,
    and with motion and the size-and-place prior (:mod:`consumers.stage.presentation_prior`), and
    with a person segmenter (``person``) the prior's person term too: the pipeline's default
    weighting of a detection."""
    garment_prior = bool(getattr(embedder, "has_garment", False))
    total = any_hit = top_hit = prior_hit = motion_hit = prior_motion_hit = placed_hit = person_hit = 0
    for video in data.videos():
        frames = read_frames(video.path, [f.frame_index for f in video.frames])
        annotated = [f for f in video.frames if f.frame_index in frames]
        results = detector.detect([frames[f.frame_index] for f in annotated])
        motion = MotionCue(window_s=1.0, clock=SystemClock())  # a "second" per annotated frame: the previous is the reference
        for position, (frame, dets) in enumerate(zip(annotated, results, strict=True)):
            moving = motion.factors(video.video_id, float(position), frames[frame.frame_index],
                                    np.asarray(dets.boxes, dtype=np.float32).reshape(-1, 4))
            sold = np.asarray([a.box for a in frame.annotations if a.instance_id > 0], dtype=np.float32)
            if len(sold) == 0:
                continue
            total += len(sold)
            if len(dets) == 0:
                continue
            overlaps = iou_matrix(sold.reshape(-1, 4), np.asarray(dets.boxes, dtype=np.float32))  # [S, N]
            any_hit += int(np.sum(overlaps.max(axis=1) >= IOU))
            top_hit += int(np.sum(overlaps[:, int(np.argmax(dets.sold))] >= IOU))
            motion_hit += int(np.sum(overlaps[:, int(np.argmax(dets.scores * dets.sold * moving))] >= IOU))
            if garment_prior:
                image = frames[frame.frame_index]
                _, garment = embedder.embed_scored([crop(image, box, CROP_EXPAND) for box in dets.boxes])
                ranked = int(np.argmax(dets.scores * dets.sold * garment))
                prior_hit += int(np.sum(overlaps[:, ranked] >= IOU))
                weighted = dets.scores * dets.sold * garment * moving
                prior_motion_hit += int(np.sum(overlaps[:, int(np.argmax(weighted))] >= IOU))
                ranked = int(np.argmax(weighted * frame_presentation(image, dets.boxes)))
                placed_hit += int(np.sum(overlaps[:, ranked] >= IOU))
                if person is not None:
                    ranked = int(np.argmax(weighted * frame_presentation(image, dets.boxes, person.coverage)))
                    person_hit += int(np.sum(overlaps[:, ranked] >= IOU))
    share = 1.0 / total if total else 0.0
    figures = {"sold_boxes": total, "any_box_recall": any_hit * share, "top_sold_box_recall": top_hit * share,
               "top_box_recall_with_motion": motion_hit * share}
    if garment_prior:
        figures["top_box_recall_with_garment_prior"] = prior_hit * share
        figures["top_box_recall_with_garment_prior_and_motion"] = prior_motion_hit * share
        figures["top_box_recall_with_garment_motion_and_presentation"] = placed_hit * share
        if person is not None:
            figures["top_box_recall_with_garment_motion_presentation_and_person"] = person_hit * share
    return figures


def objectness_recall_figures(models: ModelSettings, data: TianchiDataset,
                               thresholds: tuple[float, ...] = OBJECTNESS_THRESHOLDS) -> dict[str, float]:
    """Any-box recall of the annotated sold-item boxes (IoU >= 0.5) when the detector keeps boxes of
    objectness down to each threshold. One run at the lowest threshold: greedy NMS never lets a weaker
    box remove a stronger one, so keeping the boxes at or above a threshold gives that threshold's run.

    Returns:
        ``{"0.3": recall, ...}`` keyed by the threshold as printed.
    """
    from engines import load_detector

    detector = load_detector(Path(models.detector_dir), backend=models.backend, score_threshold=min(thresholds))
    items = data.instance_to_item()
    best: list[float] = []  # per sold box: the highest objectness among the detections that match it
    for video in data.videos():
        frames = read_frames(video.path, [f.frame_index for f in video.frames])
        shown = [f for f in video.frames if f.frame_index in frames]
        for frame, dets in zip(shown, detector.detect([frames[f.frame_index] for f in shown]), strict=True):
            for ann in frame.annotations:
                if ann.instance_id <= 0 or ann.instance_id not in items:
                    continue
                if len(dets) == 0:
                    best.append(0.0)
                    continue
                overlaps = iou_matrix(np.asarray([ann.box], dtype=np.float32), np.asarray(dets.boxes, dtype=np.float32))[0]
                matched = np.asarray(dets.scores)[overlaps >= IOU]
                best.append(float(matched.max()) if matched.size else 0.0)
    scores = np.asarray(best)
    return {f"{t:g}": float(np.mean(scores >= t)) if scores.size else 0.0 for t in thresholds}


def box_geometry_figures(detector: Any, embedder: Any, data: TianchiDataset) -> dict[str, Any]:
    """The embedder on the detector's own boxes. For each annotated sold-item box that some detection
    matches (IoU >= 0.5), the crop of the annotated box and the crop of its best-overlapping detection
    go against the same gallery: R@1 of each, and the per-stream top-1 each gives over those frames.
    The gap is what the boxes' placement costs once the right box is chosen."""
    items = data.instance_to_item()
    annotated, detected, query_items, query_videos = [], [], [], []
    for video in data.videos():
        frames = read_frames(video.path, [f.frame_index for f in video.frames])
        shown = [f for f in video.frames if f.frame_index in frames]
        for frame, dets in zip(shown, detector.detect([frames[f.frame_index] for f in shown]), strict=True):
            image = frames[frame.frame_index]
            for ann in frame.annotations:
                if ann.instance_id <= 0 or ann.instance_id not in items or len(dets) == 0:
                    continue
                boxes = np.asarray(dets.boxes, dtype=np.float32)
                overlaps = iou_matrix(np.asarray([ann.box], dtype=np.float32), boxes)[0]
                if overlaps.max() < IOU:
                    continue
                annotated.append(crop(image, ann.box, CROP_EXPAND))
                detected.append(crop(image, boxes[int(np.argmax(overlaps))], CROP_EXPAND))
                query_items.append(items[ann.instance_id])
                query_videos.append(video.video_id)
    gallery, gallery_items = shop_crops(data)
    g = np.concatenate([embed_views(embedder, gallery[i:i + 32]) for i in range(0, len(gallery), 32)])
    figures: dict[str, Any] = {"matched_boxes": len(annotated)}
    for name, crops in (("annotated", annotated), ("detected", detected)):
        q = np.concatenate([np.asarray(embedder.embed(crops[i:i + 32])) for i in range(0, len(crops), 32)])
        figures[name] = {"R@1": item_recall(q, query_items, g, gallery_items)["R@1"],
                         "streams": stream_top1_with_annotated_boxes(q, query_items, query_videos, g, gallery_items)}
    return figures


def pipeline_figures(root: Path, models: Settings, pipeline_args: list[str] | None = None) -> dict[str, Any]:
    """``livetag eval tianchi`` with its default settings (the environment is not read), the models of
    ``models.models`` and the pipeline options ``pipeline_args``."""
    from training.commands.eval_tianchi import SETTINGS_DEFAULTS
    from training.evaluation.runner import run_tianchi_eval

    parser = argparse.ArgumentParser()
    add_setting_options(parser, "batch", "pipeline", "replay", defaults=SETTINGS_DEFAULTS)
    settings = load_settings(parser.parse_args(pipeline_args or []), {}, SETTINGS_DEFAULTS)
    report, _ = run_tianchi_eval(root, settings.with_overrides(models=models.models), progress=False)
    scored = report["scored_videos"]
    undecided = sum(1 for row in report["per_video"] if not row.get("decided"))
    answers = {row["video_id"]: {"predicted": row["predicted"], "truth": row["truth"], "correct": bool(row["correct"]),
                                 "rank": row.get("rank")}
               for row in report["per_video"] if "correct" in row}
    correct = sum(answer["correct"] for answer in answers.values())
    return {"top1": report["top1_accuracy"], "correct": correct, "videos": scored, "undecided": undecided,
            "top1_interval_95": wilson_interval(correct, scored),
            "R@5": report["recall_at"]["5"],
            "first_correct_median_s": report["time_to_first_correct_s"]["median"], "answers": answers}


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (how far ``successes / trials`` may be from the rate
    that produced it: with 25 streams, 10/25 is anywhere from 0.23 to 0.59)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / (1 + z * z / trials)
    return (round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder in the Tianchi layout")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the embedder and detector figures")
    parser.add_argument("--pipeline-args", default="", help="pipeline options for the end-to-end run, e.g. '--votes-per-frame 1'")
    add_setting_options(parser, "models")
    args = parser.parse_args(argv)
    choice = load_settings(args, {})
    data = TianchiDataset(args.data)
    detector, embedder = load_models(choice.models)
    started = time.perf_counter()
    figures: dict[str, Any] = {"data": str(args.data), "detector": detector.spec.version,
                               "embedder": embedder.spec.version}
    figures["gallery_views"] = choice.models.gallery_views
    figures["embedder_crops"] = embedder_figures(embedder, data, choice.models.gallery_view_names)
    person = PersonSegmenter(choice.models.person_dir)
    figures["detector_boxes"] = detector_figures(detector, data, embedder, person)
    figures["box_geometry"] = box_geometry_figures(detector, embedder, data)
    figures["any_box_recall_by_objectness"] = objectness_recall_figures(choice.models, data)
    if not args.skip_pipeline:
        # Side by side: the visual votes alone, then with the set's titles and transcripts (if any).
        figures["pipeline_no_text"] = pipeline_figures(args.data, choice, [*args.pipeline_args.split(), "--no-text"])
        figures["pipeline"] = pipeline_figures(args.data, choice, args.pipeline_args.split())
    figures["seconds"] = round(time.perf_counter() - started, 1)
    e, d = figures["embedder_crops"], figures["detector_boxes"]
    print(f"models: detector {figures['detector']}, embedder {figures['embedder']}, "
          f"gallery views {figures['gallery_views']}")
    print(f"embedder alone: annotated-crop R@1 {e['R@1']:.3f}, R@5 {e['R@5']:.3f} ({e['queries']} queries)")
    oracle = e["stream_top1_annotated_boxes"]
    print(f"embedder with the annotated boxes (a perfect detector): per-stream top-1 "
          f"{oracle['correct'] / oracle['videos']:.2f} ({oracle['correct']}/{oracle['videos']})")
    print(f"detector alone: sold box recall any {d['any_box_recall']:.3f}, top-sold {d['top_sold_box_recall']:.3f} "
          f"({d['sold_boxes']} boxes)")
    print(f"detector + motion cue: top box recall {d['top_box_recall_with_motion']:.3f}")
    if "top_box_recall_with_garment_prior" in d:
        print(f"detector + embedder garment prior: top box recall {d['top_box_recall_with_garment_prior']:.3f}, "
              f"with the motion cue too {d['top_box_recall_with_garment_prior_and_motion']:.3f}, "
              f"and the size-and-place prior {d['top_box_recall_with_garment_motion_and_presentation']:.3f}"
              + (f", and the person mask {d['top_box_recall_with_garment_motion_presentation_and_person']:.3f}"
                 if "top_box_recall_with_garment_motion_presentation_and_person" in d else ""))
    curve = ", ".join(f"{t} {r:.3f}" for t, r in figures["any_box_recall_by_objectness"].items())
    print(f"detector alone, any-box recall by objectness threshold: {curve}")
    b = figures["box_geometry"]
    ann, det = b["annotated"], b["detected"]
    print(f"box geometry ({b['matched_boxes']} sold boxes a detection matches): crop R@1 annotated box "
          f"{ann['R@1']:.3f} / matched detection {det['R@1']:.3f}; per-stream top-1 over those frames "
          f"{ann['streams']['correct']}/{ann['streams']['videos']} / {det['streams']['correct']}/{det['streams']['videos']}")
    for key, label in (("pipeline_no_text", "pipeline, no text"), ("pipeline", "pipeline + text")):
        if key in figures:
            p = figures[key]
            low, high = p["top1_interval_95"]
            print(f"{label}: per-stream top-1 {p['top1']} ({p['correct']}/{p['videos']}; 95 % interval {low:.2f}-{high:.2f}), "
                  f"R@5 {p['R@5']}, "
                  f"no match event in {p['undecided']} (answered from frame votes), "
                  f"first correct {p['first_correct_median_s']} s (median)")
    if "pipeline" in figures and "pipeline_no_text" in figures:  # what the text changed, video by video
        from compare_real import paired_change

        text = figures["text_effect"] = paired_change(figures["pipeline_no_text"], figures["pipeline"])
        print(f"text cues, paired: gained {len(text['gained'])} {text['gained']}, lost {len(text['lost'])} "
              f"{text['lost']}, sign test p = {text['p']:.3f}; true item ranked higher in {len(text['rank_up'])}, "
              f"lower in {len(text['rank_down'])}, p = {text['rank_p']:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
