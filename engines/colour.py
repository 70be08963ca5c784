"""YUV -> RGB colour matrices of camera streams (no torch: the CPU path uses them too).

A stream says which matrix and range its samples use (FFmpeg's ``colorspace`` and ``color_range``
of a frame); one that says nothing is read as BT.601 limited range, as swscale reads it.
"""

from __future__ import annotations

import numpy as np

#: (Kr, Kb) luma weights of the two matrices a camera stream carries.
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
#: FFmpeg's colour-space code for BT.709 (``AVCOL_SPC_BT709``); other codes are read as BT.601.
AVCOL_SPC_BT709 = 1
#: FFmpeg's colour-range code for full range (``AVCOL_RANGE_JPEG``); other codes are limited range.
AVCOL_RANGE_JPEG = 2


def matrix_of(colorspace: int) -> str:
    """The matrix name for FFmpeg's ``colorspace`` code of a frame (unspecified: BT.601, as swscale)."""
    return "bt709" if colorspace == AVCOL_SPC_BT709 else "bt601"


def yuv_to_rgb_affine(matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """The conversion as one affine map of a pixel's ``(Y, U, V)`` samples, for ``cv2.transform``.

    Args:
        matrix: ``bt601`` or ``bt709``.
        full_range: Samples span 0-255 (JPEG range) rather than 16-235 / 16-240.

    Returns:
        (3, 4) float32: rows R, G, B; columns the weights of Y, U, V and the offset.
    """
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {', '.join(MATRICES)}, got {matrix!r}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    luma, chroma = (1.0, 1.0) if full_range else (255.0 / 219.0, 255.0 / 224.0)
    weights = np.array([[luma, 0.0, 2.0 * (1.0 - kr) * chroma],
                        [luma, -2.0 * kb * (1.0 - kb) / kg * chroma, -2.0 * kr * (1.0 - kr) / kg * chroma],
                        [luma, 2.0 * (1.0 - kb) * chroma, 0.0]])
    black = 0.0 if full_range else 16.0
    offset = -weights[:, 0] * black - (weights[:, 1] + weights[:, 2]) * 128.0
    return np.concatenate([weights, offset[:, None]], axis=1).astype(np.float32)
