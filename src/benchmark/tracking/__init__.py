"""The tracking layer: MLflow, and nothing else imports it.

Owns the ``Tracker`` (``tracker``: runs, params, metrics, artifacts, datasets, links, heartbeats
and crash recovery) and its models (``models``: logged Keras models, the registry, aliases); the
plain data runs carry (``tags``: tag names, flattened params without secrets, host and device);
and the MLflow UI's saved views and links (``views``, plain data). Only ``tracker`` and
``models`` import mlflow.

May import: spec, data, models, results.
"""
