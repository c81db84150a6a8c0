"""The tracker's models: Keras models logged as MLflow logged models, registered, aliased, loaded back.

:class:`ModelRegistry` is the part of :class:`benchmark.tracking.tracker.Tracker` that deals in
models: logging a run's Keras model (its output on the run page), registering it as a version of
a named model with a moving alias (``current``), finding and resolving versions, and loading a
registered one with Keras safe mode (no Python code from a file runs).
"""

from __future__ import annotations

import json
from typing import Mapping

from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from benchmark.spec.errors import TlbenchError
from benchmark.tracking.tags import looks_secret
from benchmark.tracking.views import TAG_MODEL_VERSIONS, TAG_NOTE, lineage_note

PIP_REQUIREMENTS = ["tensorflow>=2.21,<2.22", "keras>=3"]


class ModelRegistry:
    """Models on a tracking store: mixed into :class:`benchmark.tracking.tracker.Tracker`, whose
    ``client`` (an ``MlflowClient``), ``settings``, ``experiment_id`` and ``_clean`` it uses."""

    def log_keras_model(self, run_id: str, model, x_example, name: str = "model",
                        tags: Mapping[str, str] | None = None) -> str:
        """Log a Keras 3 model as an MLflow 3 *logged model* of the run's experiment, its output
        (the run page's "Logged models"); returns its URI ``models:/<model id>``.

        ``mlflow.keras.log_model(name=..., model_id=...)`` fills a logged model created here with
        the client, so no fluent active run is involved (cells run in threads and decide their
        run's final status themselves); the run links to it as an output. ``signature`` rather
        than ``input_example`` (the latter crashes in 3.17) and explicit ``pip_requirements``
        (inferring them costs about 12 s per model). ``tags`` go on the logged model (lineage:
        the pretrained body's registry version), and, as a list, into its description, which
        is what the logged model's page shows.
        """
        import mlflow.keras  # TensorFlow: ~5 s to import; only a run that logs a model needs it

        signature = infer_signature(x_example, model.predict(x_example, verbose=0))
        clean = {k: self._clean(v, 5000) for k, v in (tags or {}).items() if not looks_secret(k)}
        if clean:  # the logged model's page shows its description, not its tags
            clean[TAG_NOTE] = lineage_note(clean)
        logged = self.client.create_logged_model(self.experiment_id, name=name, source_run_id=run_id,
                                                 tags=clean, model_type="keras")
        mlflow.keras.log_model(model, name=name, model_id=logged.model_id, signature=signature,
                               pip_requirements=PIP_REQUIREMENTS)
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return f"models:/{logged.model_id}"

    def register_model(self, name: str, run_id: str, artifact_path: str, tags: Mapping[str, str],
                       alias: str = "current") -> str:
        """Register a model of ``run_id`` as a new version of ``name``, point ``alias`` at it, and
        return the version number (as a string). ``artifact_path``: the ``models:/<id>`` URI of a
        logged model (:meth:`log_keras_model`), the name of one the run logged, or a folder in the
        run's artifacts.

        MLflow reserves the alias ``latest`` (``models:/NAME/latest`` is built in and always means
        the newest version), so tlbench's moving alias is ``current``.
        """
        try:
            self.client.create_registered_model(name, description="tlbench pretrained bodies; "
                                                "versions are tagged with their pretrain_key")
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                raise
        if not artifact_path.startswith("models:/"):  # a logged model of the run by name, if it has one
            outputs = self.client.get_run(run_id).outputs
            for output in (outputs.model_outputs if outputs else []):
                if self.client.get_logged_model(output.model_id).name == artifact_path:
                    artifact_path = f"models:/{output.model_id}"
                    break
        model_id = artifact_path.removeprefix("models:/") if artifact_path.startswith("models:/") else None
        source = artifact_path if model_id else f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"
        version = self.client.create_model_version(name, source=source, run_id=run_id, model_id=model_id,
                                                   tags={k: str(v) for k, v in tags.items()})
        self.client.set_registered_model_alias(name, alias, version.version)
        if model_id:
            self._link_model_version(model_id, name, str(version.version))
        return str(version.version)

    def _link_model_version(self, model_id: str, name: str, version: str) -> None:
        """Make sure the logged model's ``mlflow.modelVersions`` tag lists ``{name, version}`` (its
        page then shows the registered version, not "Not registered"): MLflow 3.17's stores add it
        themselves, a store that does not (or an older one) gets it here."""
        existing = self.client.get_logged_model(model_id).tags.get(TAG_MODEL_VERSIONS)
        versions = json.loads(existing) if existing else []
        if not any(v.get("name") == name and str(v.get("version")) == version for v in versions):
            versions.append({"name": name, "version": version})
            self.client.set_logged_model_tags(model_id, {TAG_MODEL_VERSIONS: json.dumps(versions)})

    def find_model_version(self, name: str, tag: str, value: str) -> str | None:
        """The newest version of ``name`` whose tag ``tag`` equals ``value`` (None if none)."""
        versions = self.client.search_model_versions(f"name = '{name}' and tags.{tag} = '{value}'")
        return str(max(int(v.version) for v in versions)) if versions else None

    def resolve_model_version(self, name: str, version_or_alias: str) -> tuple[str, str]:
        """A pinned version number, ``latest``, or an alias (``current``, ``@champion``) ->
        (version, run id)."""
        ref = version_or_alias.lstrip("@")
        try:
            if ref.lower() == "latest":
                ref = str(max(int(v.version) for v in self.client.search_model_versions(f"name = '{name}'")))
            mv = (self.client.get_model_version(name, ref) if ref.isdigit()
                  else self.client.get_model_version_by_alias(name, ref))
        except MlflowException as exc:
            raise TlbenchError(f"pretrained model {name!r} has no version or alias {version_or_alias!r} "
                               f"in the registry at {self.settings.tracking_uri}: {exc.message}") from None
        return str(mv.version), mv.run_id

    def load_registered_keras(self, name: str, version: str):
        import mlflow.keras  # TensorFlow: ~5 s to import; only loading a pretrained body needs it

        import benchmark.models  # noqa: F401 - Keras: registers tlbench's custom layers (Rescale) to load

        mlflow.set_tracking_uri(self.settings.tracking_uri)
        # safe_mode is Keras' default; said explicitly because a registry is shared: a model with a
        # Lambda layer (Python bytecode in the file) is refused, never executed.
        return mlflow.keras.load_model(f"models:/{name}/{version}", load_model_kwargs={"safe_mode": True})
