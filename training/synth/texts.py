"""Synthetic text of a live shop: item titles, the seller's speech, on-screen product banners.

Deterministic per data set seed (own random streams: the pictures do not change with them).

* **Titles** (Tianchi ``image_text/<item>.txt``): a made-up brand in brackets, season and style
  words, the colour, the pattern, the garment word and a model number, in Chinese, e.g.
  ``【语棠】2020新款 韩版显瘦 藏青色条纹短裤女 8302114``.
* **Transcripts** (``video_text/<video>.jsonl``, ``{text, start, end}``): per shown product a few
  utterances with its garment word, colour or pattern and its link number, mixed with filler
  ("宝宝们", "喜欢的扣1") and noise: another garment named as a pairing ("搭配一条牛仔裤"), or the
  previous product named again after it left the screen.
* **Banners** (drawn only with ``--text-banners``): a Latin-script bar ``NO.<model> <GARMENT>`` while
  the product is shown (the repository's fonts have no Chinese glyphs), for OCR to read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.synth.catalog import Product

COLOUR_WORDS: dict[str, str] = {
    "red": "红色", "crimson": "酒红色", "orange": "橙色", "mustard": "姜黄色", "yellow": "黄色", "olive": "橄榄绿",
    "green": "绿色", "mint": "薄荷绿", "teal": "墨绿色", "sky": "天蓝色", "blue": "蓝色", "navy": "藏青色",
    "purple": "紫色", "lilac": "浅紫色", "pink": "粉色", "rose": "玫红色", "brown": "棕色", "camel": "驼色",
    "beige": "米色", "cream": "奶白色", "white": "白色", "grey": "灰色", "charcoal": "深灰色", "black": "黑色",
}
PATTERN_WORDS: dict[str, str] = {
    "stripes": "条纹", "checks": "格子", "dots": "波点", "print": "印花", "text": "字母", "logo": "logo",
    "gradient": "渐变", "noise": "肌理", "trim": "撞色", "solid": "纯色",
}
#: The words a seller or a title uses for each category (the first is also the banner's English word).
GARMENT_WORDS: dict[str, tuple[str, ...]] = {
    "短袖上衣": ("T-SHIRT", "T恤", "短袖上衣"), "长袖上衣": ("SWEATER", "卫衣", "长袖上衣"),
    "短袖衬衫": ("SHIRT", "短袖衬衫"), "长袖衬衫": ("SHIRT", "长袖衬衫", "衬衫"), "背心上衣": ("VEST", "背心"),
    "吊带上衣": ("CAMISOLE", "吊带"), "无袖上衣": ("TOP", "无袖上衣"), "短外套": ("JACKET", "短外套", "夹克"),
    "短马甲": ("WAISTCOAT", "短马甲"), "长袖连衣裙": ("DRESS", "长袖连衣裙"), "短袖连衣裙": ("DRESS", "短袖连衣裙"),
    "无袖连衣裙": ("DRESS", "无袖连衣裙", "吊带裙"), "长马甲": ("WAISTCOAT", "长马甲"), "长外套": ("COAT", "大衣", "长外套"),
    "连体衣": ("JUMPSUIT", "连体衣"), "古风": ("HANFU", "汉服"), "短裙": ("SKIRT", "短裙"), "中等半身裙": ("SKIRT", "半身裙"),
    "长半身裙": ("SKIRT", "长半身裙"), "短裤": ("SHORTS", "短裤"), "中裤": ("PANTS", "七分裤", "中裤"),
    "长裤": ("JEANS", "牛仔裤", "长裤", "阔腿裤"), "背带裤": ("OVERALLS", "背带裤"),
}
_BRAND_CHARS = "语棠艾米诺可依然素雅蔓汐若初沐熙柒悦檬夏之恋"
_STYLE = ("修身", "显瘦", "宽松", "百搭", "韩版", "复古", "法式", "高腰", "休闲", "气质", "ins风")
_SEASON = ("2020新款", "2019新款", "春季新品", "夏季", "秋冬款")
_FILLER = ("宝宝们", "来看一下啊", "喜欢的扣1", "这个质量真的很好", "姐妹们", "价格很划算", "我身高一六五穿的是M码",
           "库存不多了", "点点关注", "面料很舒服")


def model_number(product: Product) -> str:
    """The product's seven-digit model number (a pure function of its design and colour)."""
    return f"{(product.design_id * 7919 + product.instance_id * 104729) % 9_000_000 + 1_000_000}"


def product_title(product: Product, seed: int) -> str:
    """The catalog title of ``product`` (Chinese, see the module docstring)."""
    rng = np.random.default_rng([seed, 11, product.instance_id])
    brand = "".join(rng.choice(list(_BRAND_CHARS), 2))
    words = GARMENT_WORDS[product.category]
    garment = str(words[1 + int(rng.integers(len(words) - 1))])
    style = "".join(rng.choice(_STYLE, 2, replace=False))
    return (f"【{brand}】{rng.choice(_SEASON)} {style} {COLOUR_WORDS[product.colour_name]}"
            f"{PATTERN_WORDS[product.pattern]}{garment}女 {model_number(product)}")


def banner_text(product: Product) -> str:
    """The on-screen banner of ``product`` (Latin script for the repository's fonts)."""
    return f"NO.{model_number(product)} {GARMENT_WORDS[product.category][0]}"


def stream_transcript(
    video_index: int, segments: Sequence[dict], products: Sequence[Product], catalog: Sequence[Product], seed: int
) -> list[dict]:
    """The seller's speech over one stream.

    Args:
        video_index: The stream's index (seeds its random stream).
        segments: ``segments.json`` entries of the stream (``item_id``, ``start_s``, ``end_s``).
        products: The stream's products (to look the segments' items up).
        catalog: Every product (for the noise: garments named that are not shown).
        seed: The data set seed.

    Returns:
        ``{"text", "start", "end"}`` dicts in time order.
    """
    rng = np.random.default_rng([seed, 12, video_index])
    by_item = {p.item_id: p for p in products}
    out: list[dict] = []
    previous: Product | None = None
    for segment in segments:
        product = by_item[segment["item_id"]]
        start, end = float(segment["start_s"]), float(segment["end_s"])
        span = max(end - start, 0.5)
        words = GARMENT_WORDS[product.category][1:]
        link = int(rng.integers(1, 60))
        lines = [
            f"{rng.choice(_FILLER)}，这个{rng.choice(words)}",
            f"{COLOUR_WORDS[product.colour_name]}的，{PATTERN_WORDS[product.pattern]}的，{rng.choice(_STYLE)}",
            f"{rng.choice(_FILLER)}，在{link}号链接",
        ]
        if rng.random() < 0.5:  # a pairing garment that is not the product
            other = catalog[int(rng.integers(len(catalog)))]
            lines.insert(2, f"可以搭配一条{GARMENT_WORDS[other.category][1]}")
        if previous is not None and rng.random() < 0.3:  # the last product, named once more
            lines.insert(0, f"刚才那个{GARMENT_WORDS[previous.category][1]}也还有")
        step = span / len(lines)
        for k, line in enumerate(lines):
            t0 = start + k * step
            out.append({"text": line, "start": round(t0, 3), "end": round(min(end, t0 + step), 3)})
        previous = product
    return out
