"""``livetag gallery build``: shop images -> product crops -> embeddings -> a saved gallery index."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, required=True, help="folder of shop images: <item_id>/<n>.jpg")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="Tianchi image annotations <item_id>/<n>.json; their product box is the crop")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the gallery into")
    parser.add_argument("--catalog", default=None, help="catalog id stored with every image (for per-stream search)")
    parser.add_argument("--titles", type=Path, default=None, metavar="DIR",
                        help="item titles for text cues: DIR/<item_id>.txt (Tianchi image_text/)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per model call (default 16)")
    add_setting_options(parser, "models")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stage.builder import quiet_library_logs

    quiet_library_logs()
    from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
    from consumers.stage.model_loading import load_models

    images = find_shop_images(args.images, args.annotations)
    detector, embedder = load_models(settings.models)
    from consumers.text.transcripts import read_titles

    titles = read_titles(args.titles) if args.titles is not None else None
    build = build_gallery(images, detector, embedder, catalog=args.catalog, batch_size=max(1, args.batch_size),
                          titles=titles, views=settings.models.gallery_view_names)
    gallery = to_index(build)
    gallery.save(args.out)
    print(f"gallery: {len(build.ids)} images of {len(build.items)} items -> {args.out}"
          + (f" ({len(build.skipped)} unreadable images skipped)" if build.skipped else ""))
    return 0
