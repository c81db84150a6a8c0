"""The MLflow UI's saved runs view and the links into it: plain data, no mlflow import
(:class:`benchmark.tracking.tracker.Tracker` writes them; the command line prints them).

MLflow 3.17's runs list reads a saved view from an experiment tag and opens its own pages from URL
queries; this module spells both: the tag's JSON envelope (what the UI's *Views* > *Save view*
writes, so its *Views* menu lists the view) and the ``#/experiments/...`` links tlbench prints.
"""

from __future__ import annotations

import time
from typing import Mapping

#: The experiment tag MLflow 3's UI reads to choose its layout: ``custom_model_development`` opens
#: the runs list of model training (not the GenAI traces overview).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: A run's (or logged model's) description (markdown), shown on its page.
TAG_NOTE = "mlflow.note.content"
#: The UI's side bar offers GenAI or model-training pages (kept per browser, GenAI by default);
#: this query selects model training in the links tlbench prints.
UI_WORKSPACE = "workflowType=machine_learning"
#: Where ``tlbench ui`` serves a local (SQLite) store by default (its ``--host`` and ``--port``):
#: the base of the links to a local store's runs, which open once it runs.
LOCAL_UI = "http://127.0.0.1:5000"
#: A logged model's registered versions (JSON ``[{name, version}]``), as the UI reads them.
TAG_MODEL_VERSIONS = "mlflow.modelVersions"


#: The runs-list view that answers "which mode wins at which size, across seeds": cell runs only,
#: best MASE first, grouped by target size and mode with the seeds' average, MASE/sMAPE/MAE and the
#: seed as columns. MLflow 3.17 lists a view saved on the experiment in its *Views* menu and opens it
#: from ``#/experiments/<id>/runs?viewStateShareKey=<key>``: the tag ``mlflow.sharedViewState.<key>``
#: holding the envelope its *Save view* writes, ``{name, createdAt, updatedAt, state}`` (``state``:
#: the view's JSON as a string); tlbench saves it on every experiment it makes.
VIEW_KEY = "tlbench-modes"
VIEW_NAME = "tlbench: modes by size (mean over seeds)"
TAG_SHARED_VIEW = "mlflow.sharedViewState."
VIEW_FILTER = "tags.`tlbench.kind` = 'cell'"
VIEW_ORDER = "metrics.`mase`"
VIEW_COLUMNS = {"Metrics": ("mase", "smape", "mae"), "Tags": ("seed",)}
VIEW_GROUP_BY = ("target_size", "mode")
#: The runs list's name column and its width in pixels: wide enough for a whole run name such as
#: ``lstm·finetune·4800·s2`` plus a group's arrow (MLflow's default cuts it).
VIEW_NAME_COLUMN = ("attributes.`Run Name`", 300)


def runs_view_state(created_at_ms: int | None = None) -> str:
    """The saved view as the MLflow UI stores it: the envelope (JSON) around the view's state
    (JSON in a string). ``created_at_ms``: when it was saved (default now)."""
    import json

    columns = [f"{kind.lower()}.`{name}`" for kind, names in VIEW_COLUMNS.items() for name in names]
    name_column, width = VIEW_NAME_COLUMN
    state = json.dumps({
        "searchFilter": VIEW_FILTER, "orderByKey": VIEW_ORDER, "orderByAsc": True,
        "selectedColumns": [*columns, "attributes.`Dataset`"],
        "columnOrder": [name_column], "columnWidths": {name_column: width},
        "groupBy": {"aggregateFunction": "average",
                    "groupByKeys": [{"mode": "tag", "groupByData": key} for key in VIEW_GROUP_BY]}})
    created = int(time.time() * 1000) if created_at_ms is None else int(created_at_ms)
    return json.dumps({"name": VIEW_NAME, "createdAt": created, "updatedAt": created, "state": state})


def same_tag(stored: str | None, wanted: str) -> bool:
    """Equal tags; a saved-view envelope is equal when its name and state are (not its dates)."""
    import json

    if stored == wanted or stored is None:
        return stored == wanted
    try:
        old, new = json.loads(stored), json.loads(wanted)
    except ValueError:
        return False
    keys = ("name", "state")
    return (isinstance(old, dict) and isinstance(new, dict) and "createdAt" in new
            and all(old.get(k) == new.get(k) for k in keys))


def lineage_note(tags: Mapping[str, str]) -> str:
    """A logged model's description (markdown) listing its lineage tags, one per line."""
    return "**Lineage**\n\n" + "\n".join(f"- {key}: `{value}`" for key, value in sorted(tags.items()))


def experiment_tags() -> dict[str, str]:
    """The tags of every tlbench experiment: model-training kind, and the saved runs view."""
    return {TAG_EXPERIMENT_KIND: EXPERIMENT_KIND, TAG_SHARED_VIEW + VIEW_KEY: runs_view_state()}


def runs_view_filter(target_size: int | None = None) -> str:
    """The search filter of the cell runs (of one target size)."""
    size = f" and tags.target_size = '{int(target_size)}'" if target_size is not None else ""
    return VIEW_FILTER + size


def runs_view_url(base_url: str, experiment_id: str, target_size: int | None = None) -> str:
    """The experiment's runs list on an MLflow UI at ``base_url`` in the model-training workspace:
    the saved view (grouped by size and mode), or with ``target_size`` the cell runs of that size,
    best MASE first (the URL then carries the filter and sort, which a saved view cannot take)."""
    from urllib.parse import urlencode

    if target_size is None:
        query = urlencode({"viewStateShareKey": VIEW_KEY, "workflowType": "machine_learning"})
    else:
        query = urlencode({"searchFilter": runs_view_filter(target_size), "orderByKey": VIEW_ORDER,
                           "orderByAsc": "true", "workflowType": "machine_learning"})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
