"""Network definitions: the detector (``detector``) and the embedder (``embedder``).

These modules import torch only; the torch inference backend rebuilds them from a package's
``spec.json`` (``torch.factory``) and loads ``weights.pt``.
"""
