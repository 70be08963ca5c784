"""Synthetic live-shop data in the Tianchi layout (``livetag data synth``).

The generator builds a catalog of products over the 23 Tianchi garment categories, renders 4-8 shop
images per product and a set of short live-stream videos in which a presenter wears or holds the
products in turn, and writes everything in the layout of ``docs/design.md``.

How a product looks:
    A product is a *design* (category silhouette with small shape variations, a pattern kind with its
    geometry: stripes, checks, dots, prints, text, logo, gradient, noise texture or trimmed solid) in
    one *colourway*. Hard negatives are built in: some designs come in 2-3 colourways (same geometry,
    other colours), and some categories get several designs with the same main colour. A product's
    texture and silhouette are a pure function of its catalog entry, so the shop images and the
    streams show exactly the same garment.

Shop images (``image/<item_id>/<n>.jpg``):
    Clean studio backgrounds (white, grey, pastel, soft gradient), front and back views, scale,
    rotation and perspective changes; a few are worn by a presenter on a plain background
    (``display`` 1). ``viewpoint`` is 0 front, 1 back; ``display`` is 1 when the garment is worn.

Streams (``video/<video_id>.mp4``):
    Portrait 540x960 (two streams in three, in each split) and landscape 1280x720. A room background
    (wall, floor, window, shelves, plant, a clothes rack with small distractor garments), a presenter
    who wears the sold item, holds it up on a hanger beside the body, or holds it in front with both
    hands; the sold item is 20-60 % of the frame height (median about 42 %). Smooth motion
    (translation, scale, rotation, perspective), camera shake, lighting drift and colour cast, bursts
    of defocus or horizontal motion blur, sensor noise, a passing occluder and live-stream overlays
    (title banner, scrolling comments, floating stickers, a sale tag, a picture-in-picture). The
    presenter's own plain clothes and the rack garments are annotated with ``instance_id`` 0 (a plain
    garment hidden behind a held one, IoU >= 0.5 with the sold box, is left out). Products are shown
    in segments separated by short presenter-only gaps; ``segments.json`` gives ``start_frame``
    (inclusive) and ``end_frame`` (exclusive) per segment. Every k-th frame (default 5) is annotated
    with all visible garment boxes (a box needs 35 % of its area inside the frame).
    H.264 (libx264, preset fast, tune zerolatency as live encoders use, yuv420p), a fixed GOP of
    1-2 s with scene-cut keyframes disabled, 20/24/25/30 fps.

Speed: about 400 CPU-seconds for 300 products and 60 streams of 8 s (12k frames, 1.8k shop
images), i.e. about 3.5 minutes with ``--workers 2`` on two idle cores; x264 takes about two thirds.

Layout: ``OUT/catalog.json`` and ``OUT/{train,test}/...`` (``docs/design.md``); ``--flat`` writes a
single split straight into ``OUT`` (the shipped ``samples/demo``).

Determinism: every product and stream draws from its own ``numpy.random.Generator`` seeded from
``(seed, kind, index)``, so the number of workers never changes the output.
"""
