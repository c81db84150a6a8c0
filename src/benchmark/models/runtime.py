"""Process setup for training: the one seeding function and TensorFlow's thread pools.

:func:`seed_everything` seeds Python, NumPy and TensorFlow and sets TF op determinism (once per
cell, in whatever process runs it); :func:`configure_threads` sizes TF's thread pools, which is
possible only before TF runs its first op (the engines call it when a worker starts).
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, and set TF op determinism. The one seeding function.

    ``deterministic`` (``TrainingSpec.deterministic``) turns TF op determinism on (bit-reproducible
    runs, the default) or off (TF's faster non-deterministic kernels: what a bare Keras script
    gets; docs/performance.md measures the difference). It is a process-wide TF setting, so it is
    set again on every call (e.g. once per cell in the same process).
    """
    keras.utils.set_random_seed(int(seed))
    try:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            from tensorflow.python.framework import config as tf_config  # no public switch-off

            tf_config.disable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - never fatal; determinism is best effort past this
        log.warning("could not set TF op determinism to %s (%s); runs may not be bit-reproducible",
                    deterministic, exc)


def configure_threads(intra: int, inter: int) -> None:
    """Set TF's intra-/inter-op thread pools; possible only before TF runs its first op.

    On CPU, one single-threaded job per core is fastest (docs: STACK_NOTES). Called too late, TF
    keeps its pools and this logs a warning instead of failing.
    """
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads() == intra
            and threading.get_inter_op_parallelism_threads() == inter):
        return
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as exc:
        log.warning("TF threads already initialised (%s); keeping intra=%d inter=%d. Call "
                    "configure_threads before the first TF op to change them.", exc,
                    threading.get_intra_op_parallelism_threads(),
                    threading.get_inter_op_parallelism_threads())
