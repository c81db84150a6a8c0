"""The models layer: the Keras model zoo, and how a model is trained and pretrained.

Owns the architectures, heads, custom layers and transfer modes (all in registries), compiling
(optimisers, losses), seeding and threads (``runtime``), the training loop (``training``), the
regimes and how a trained model forecasts (``regimes``) and pretraining on the source
with its saved artefact (``pretrain``). Importing this package registers every architecture, head,
transfer mode and custom layer (the latter is needed to load saved models); nothing is built,
configured or trained at import. Keras and TensorFlow are imported here, never by the layers below.

May import: spec, data.
"""

from benchmark.models import linear as _linear  # noqa: F401  registers nlinear and dlinear
from benchmark.models.architectures import (
    ARCHITECTURES,
    Architecture,
    body_layer_names,
    build_model,
    head_layer_names,
    param_counts,
)
from benchmark.models.heads import HEADS, Head
from benchmark.models.layers import Rescale
from benchmark.models.transfer import (
    TRANSFER_MODES,
    Phase,
    TransferMode,
    apply_freezing,
    frozen_layer_names,
    load_pretrained_weights,
    prepare_for_mode,
)

__all__ = [
    "ARCHITECTURES", "Architecture", "HEADS", "Head", "Phase", "Rescale", "TRANSFER_MODES",
    "TransferMode", "apply_freezing", "body_layer_names", "build_model", "frozen_layer_names",
    "head_layer_names", "load_pretrained_weights", "param_counts", "prepare_for_mode",
]
