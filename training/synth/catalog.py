"""The synthetic product catalog: designs, colourways, hard negatives and the open-set split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from training.categories import CATEGORIES, english

# "solid": plain fabric, the most common real product; the render still shades it (folds, light).
PATTERNS: tuple[str, ...] = ("stripes", "checks", "dots", "print", "text", "logo", "gradient", "noise", "trim",
                             "solid")
_PATTERN_WEIGHTS = np.array([1.2, 1.0, 1.0, 1.2, 0.8, 0.8, 0.8, 1.0, 0.5, 1.6])

# Named fashion colours (RGB); a product's main colour name makes "same category, same colour" findable.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 40),
    "crimson": (140, 20, 45),
    "orange": (235, 120, 30),
    "mustard": (215, 170, 40),
    "yellow": (245, 220, 70),
    "olive": (110, 120, 45),
    "green": (40, 150, 70),
    "mint": (150, 225, 185),
    "teal": (20, 130, 130),
    "sky": (120, 185, 235),
    "blue": (40, 90, 200),
    "navy": (25, 35, 90),
    "purple": (110, 50, 150),
    "lilac": (190, 160, 220),
    "pink": (245, 160, 190),
    "rose": (215, 80, 120),
    "brown": (110, 65, 35),
    "camel": (190, 140, 85),
    "beige": (225, 205, 170),
    "cream": (245, 240, 220),
    "white": (245, 245, 245),
    "grey": (140, 140, 145),
    "charcoal": (60, 62, 68),
    "black": (25, 25, 28),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


@dataclass(frozen=True)
class Shape:
    """Small per-design changes of a category silhouette (all factors near 1)."""

    body: float
    length: float
    neck: float
    flare: float
    sleeve: float


@dataclass(frozen=True)
class Product:
    """One catalog product: a design in one colourway.

    Attributes:
        item_id: ``"i000123"``.
        instance_id: > 0, unique in the catalog; links video boxes to shop images.
        category: Chinese category name.
        split: ``"train"`` or ``"test"``.
        design_id: products sharing it are colour variants of one design.
        colour_name: name of the main colour (key of ``COLOURS``).
        colours: three RGB colours (main, second, accent).
        pattern: one of ``PATTERNS``.
        pattern_seed: seeds the pattern geometry (shared by colour variants).
        shape: silhouette variation.
    """

    item_id: str
    instance_id: int
    category: str
    split: str
    design_id: int
    colour_name: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    pattern: str
    pattern_seed: int
    shape: Shape

    def to_json(self) -> dict[str, object]:
        """The catalog.json entry."""
        out = asdict(self)
        out["category_en"] = english(self.category)
        out["colours"] = [list(c) for c in self.colours]
        return out

    @classmethod
    def from_json(cls, data: dict) -> Product:
        """Inverse of :meth:`to_json`."""
        c = data["colours"]
        return cls(
            item_id=str(data["item_id"]),
            instance_id=int(data["instance_id"]),
            category=str(data["category"]),
            split=str(data["split"]),
            design_id=int(data["design_id"]),
            colour_name=str(data["colour_name"]),
            colours=(tuple(c[0]), tuple(c[1]), tuple(c[2])),  # type: ignore[arg-type]
            pattern=str(data["pattern"]),
            pattern_seed=int(data["pattern_seed"]),
            shape=Shape(**data["shape"]),
        )


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    v = np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(v[0]), int(v[1]), int(v[2]))


def _far_colour(rng: np.random.Generator, avoid: list[str]) -> str:
    """A colour name whose RGB is far from every colour in ``avoid``."""
    avoid_rgb = np.array([COLOURS[a] for a in avoid], float).reshape(-1, 3)
    for _ in range(50):
        name = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        if avoid_rgb.size == 0 or np.min(np.linalg.norm(avoid_rgb - np.array(COLOURS[name]), axis=1)) > 90:
            return name
    return COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]


def _colourway(rng: np.random.Generator, main: str) -> tuple[str, tuple]:
    second = _far_colour(rng, [main])
    accent = _far_colour(rng, [main, second])
    return main, (_jitter(rng, COLOURS[main], 12), _jitter(rng, COLOURS[second], 12), _jitter(rng, COLOURS[accent], 12))


def _shape(rng: np.random.Generator) -> Shape:
    f = rng.uniform(0.88, 1.12, 5)
    return Shape(*(round(float(x), 3) for x in f))


def make_catalog(num_products: int, seed: int, test_fraction: float) -> list[Product]:
    """Build the catalog.

    Designs are drawn first; a design gets 1 colourway, or 2-3 (colour-variant hard negatives); with
    some probability the next design reuses the category and main colour of the previous one (same
    category, same colour, different look). Splits are assigned per design group so both splits hold
    hard negatives, and the test share of products is as close to ``test_fraction`` as groups allow.

    Args:
        num_products: N >= 1.
        seed: catalog seed.
        test_fraction: share of products held out in ``test`` (0 <= f <= 1).

    Returns:
        N products with item ids ``i000000``.. and instance ids 1..N.
    """
    rng = np.random.default_rng([seed, 0])
    groups: list[list[dict]] = []
    count = 0
    design_id = 0
    while count < num_products:
        group: list[dict] = []
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        main = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        same_colour_designs = 2 if rng.random() < 0.2 else 1
        for _ in range(same_colour_designs):
            pattern = PATTERNS[int(rng.choice(len(PATTERNS), p=_PATTERN_WEIGHTS / _PATTERN_WEIGHTS.sum()))]
            pattern_seed = int(rng.integers(2**31))
            shape = _shape(rng)
            variants = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
            used: list[str] = []
            for v in range(variants):
                name = main if v == 0 else _far_colour(rng, used)
                used.append(name)
                colour_name, colours = _colourway(rng, name)
                group.append(
                    dict(category=category, design_id=design_id, colour_name=colour_name, colours=colours,
                         pattern=pattern, pattern_seed=pattern_seed, shape=shape)
                )
            design_id += 1
        group = group[: num_products - count]
        count += len(group)
        groups.append(group)
    order = rng.permutation(len(groups))
    want_test = int(round(test_fraction * num_products))
    test_groups: set[int] = set()
    n_test = 0
    for gi in order:
        if n_test >= want_test:
            break
        if n_test + len(groups[gi]) <= want_test or n_test == 0:
            test_groups.add(int(gi))
            n_test += len(groups[gi])
    products: list[Product] = []
    for gi, group in enumerate(groups):
        for entry in group:
            index = len(products)
            products.append(
                Product(item_id=f"i{index:06d}", instance_id=index + 1,
                        split="test" if gi in test_groups else "train", **entry)
            )
    return products
