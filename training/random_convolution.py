"""Random-convolution augmentation: new colours and local textures, the same shapes.

A detector trained on synthetic renders can learn the renders' colours and surface textures as the
cue for "garment" and "sold item", and those cues do not exist in camera footage. Random
convolutions (Xu et al., "Robust and Generalizable Visual Representation Learning via Random
Convolutions", ICLR 2021) pass each training image through a convolution with freshly drawn random
weights: a 1 x 1 kernel mixes the colour channels at random, larger kernels also change local
texture, while edges and shapes stay where they were, so boxes keep their place. Blending the
result with the original image (a random share of each) keeps part of the real appearance in every
sample. Deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Kernel sides drawn from (the paper's multi-scale set).
KERNEL_SIZES: tuple[int, ...] = (1, 3, 5, 7)


def random_kernel(size: int, rng: np.random.Generator) -> np.ndarray:
    """Weights of a random 3 -> 3 channel convolution: (3 out, 3 in, size, size) float32 drawn from
    N(0, 1 / (3 * size**2)), the variance that keeps the output's scale near the input's."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel side must be odd and >= 1, got {size}")
    sigma = 1.0 / np.sqrt(3.0 * size * size)
    return rng.normal(0.0, sigma, size=(3, 3, size, size)).astype(np.float32)


def random_convolution(image: np.ndarray, rng: np.random.Generator,
                       kernel_sizes: Sequence[int] = KERNEL_SIZES) -> np.ndarray:
    """Convolve ``image`` with a random kernel and blend the result with the original.

    Each output channel is standardised and then given the mean and spread of the image's own
    channel, so brightness and contrast stay in the range of the input while hue and texture change;
    the result is ``a * image + (1 - a) * randomised`` with ``a`` drawn from U(0, 1).

    Args:
        image: (H, W, 3) uint8 RGB.
        rng: Random source (kernel side, weights, blend share, in that order).
        kernel_sizes: Odd kernel sides to draw from.

    Returns:
        (H, W, 3) uint8, a new array with the geometry of ``image``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    size = int(kernel_sizes[int(rng.integers(len(kernel_sizes)))])
    kernel = random_kernel(size, rng)
    blend = float(rng.uniform(0.0, 1.0))
    pixels = image.astype(np.float32) / 255.0
    reference = pixels.reshape(-1, 3)  # the image's own channel statistics, given to the result
    centred = pixels - reference.mean(axis=0)
    mixed = np.zeros_like(centred)
    for out_channel in range(3):
        for in_channel in range(3):
            mixed[..., out_channel] += cv2.filter2D(centred[..., in_channel], -1, kernel[out_channel, in_channel],
                                                    borderType=cv2.BORDER_REFLECT)
    flat = mixed.reshape(-1, 3)
    standardised = (mixed - flat.mean(axis=0)) / np.maximum(flat.std(axis=0), 1e-6)
    randomised = standardised * np.maximum(reference.std(axis=0), 0.05) + reference.mean(axis=0)
    out = blend * pixels + (1.0 - blend) * randomised
    return np.ascontiguousarray(np.clip(out * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8))
