"""Model runtimes behind one Protocol per role, pre/post-processing, batching, the gallery index.

``load_detector`` / ``load_embedder`` build an engine from a model package on a chosen backend;
``backends_available`` lists the installed ones. Nothing here imports torch or tensorrt.
"""

from engines.base import BackendError, Detector, DetectorEngine, Embedder, EmbedderEngine
from engines.loading import backends_available, load_detector, load_embedder
from engines.package import ModelPackage, ModelPackageError, ModelSpec

__all__ = [
    "BackendError",
    "Detector",
    "DetectorEngine",
    "Embedder",
    "EmbedderEngine",
    "ModelPackage",
    "ModelPackageError",
    "ModelSpec",
    "backends_available",
    "load_detector",
    "load_embedder",
]
