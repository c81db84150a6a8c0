"""The leaderboard's schema: every column of a result row and of a failure row, declared once in
:data:`COLUMNS` / :data:`FAILURE_COLUMNS`, and the row validation every write goes through.

:data:`SCHEMA`, the row validation, the read casts of :mod:`benchmark.results.reader` and
:func:`schema_markdown` (for the docs) all derive from the declarations. Lower is better for
every metric (:data:`benchmark.forecasters.metrics.METRIC_NAMES`). No I/O here: the store is
:class:`benchmark.results.leaderboard.Leaderboard`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmark.forecasters.metrics import METRIC_NAMES as METRICS
from benchmark.forecasters.metrics import Z_METRIC_NAMES
from benchmark.spec.axes import VARIANT_DEFAULTS
from benchmark.spec.errors import TlbenchError


class Column(NamedTuple):
    """One leaderboard column: ``(name, type, nullable, description)``."""

    name: str
    type: pa.DataType
    nullable: bool
    description: str


TIMESTAMP = pa.timestamp("us", tz="UTC")
# Filled in by `append` when a row leaves them out (and on read for files written before them).
DEFAULTS: dict[str, Any] = dict(VARIANT_DEFAULTS)
#: ``model``: a cell; ``baseline``: a baseline on a cell's test segment; ``source``: a pretrained
#: body (or a baseline) scored on its source's own protocol (M4), kept out of the target verdicts.
KINDS = ("model", "baseline", "source")
PARTITION_COLUMNS = ("run_date", "grid")

_METRIC_DESCRIPTIONS = {
    "mse": "mean squared error on the test segment, original scale",
    "rmse": "root mean squared error",
    "mae": "mean absolute error",
    "mape": "mean absolute percentage error, 0-100 (NaN when the target has zeros)",
    "smape": "symmetric MAPE, M4 convention, 0-200",
    "mase": "mean absolute scaled error (in-sample seasonal naive scale); the default ranking metric",
    "mse_z": "MSE on the protocol's z-scored scale (ett_standard: the papers' number); NaN otherwise",
    "mae_z": "MAE on the protocol's z-scored scale (ett_standard: the papers' number); NaN otherwise",
}

COLUMNS: tuple[Column, ...] = (
    Column("grid_id", pa.string(), False, "hash of the grid spec"),
    Column("grid", pa.string(), False, "grid name (partition column)"),
    Column("run_id", pa.string(), False, "id of the grid run that produced the row"),
    Column("run_date", pa.string(), False, "date of the grid run, YYYY-MM-DD (partition column)"),
    Column("cell_key", pa.string(), False, "identity of the cell (hash of its spec); unique per row"),
    Column("kind", pa.string(), False, "'model', 'baseline' or 'source' (a body on its source's protocol)"),
    Column("target", pa.string(), False, "target label, e.g. 'ett/ETTh1:OT'"),
    Column("target_dataset", pa.string(), False, "source/dataset of the target, e.g. 'ett/ETTh1'"),
    Column("target_column", pa.string(), True, "column of the target inside its dataset"),
    Column("target_size", pa.int64(), False, "number of target history points used for training"),
    Column("architecture", pa.string(), False, "architecture name; 'baseline' for baseline rows"),
    Column("mode", pa.string(), False, "transfer mode ('scratch', ...); the baseline name for baselines"),
    Column("seed", pa.int64(), False, "random seed of the cell"),
    Column("lookback", pa.int64(), False, "input window length"),
    Column("horizon", pa.int64(), False, "forecast horizon"),
    *(Column(m, pa.float64(), False, _METRIC_DESCRIPTIONS[m]) for m in METRICS),
    Column("train_seconds", pa.float64(), False, "wall-clock training time (0 for baselines)"),
    Column("epochs", pa.int64(), False, "epochs actually trained (0 for baselines)"),
    Column("trainable_params", pa.int64(), False, "trainable parameters"),
    Column("frozen_params", pa.int64(), False, "frozen (non-trainable) parameters"),
    Column("mlflow_run_id", pa.string(), True, "MLflow run of the cell"),
    Column("model_uri", pa.string(), True, "URI of the logged model"),
    Column("pretrained_key", pa.string(), True, "key of the pretrained source model, if any"),
    Column("pretrained_version", pa.string(), True, "registry version of the pretrained model"),
    Column("regime", pa.string(), False, f"recurrent state regime (default {DEFAULTS['regime']!r})"),
    Column("normalisation", pa.string(), False, "input normalisation (benchmark.data.normalisation)"),
    Column("forecast", pa.string(), False, "how the horizon is forecast: direct or recursive"),
    Column("pretrain_seed", pa.int64(), True, "seed of the pretrained body the cell started from"),
    Column("owa", pa.float64(), True, "M4 overall weighted average vs Naive2 (source rows only)"),
    Column("features", pa.string(), False, f"input features (default {DEFAULTS['features']!r})"),
    Column("worker_host", pa.string(), False, "host that ran the cell"),
    Column("device", pa.string(), False, "device that ran the cell, e.g. 'cpu', 'gpu:0'"),
    Column("package_version", pa.string(), False, "tlbench version"),
    Column("git_commit", pa.string(), True, "git commit of the code, when known"),
    Column("data_fingerprint", pa.string(), False, "fingerprint of the target data"),
    Column("started_at", TIMESTAMP, False, "when the cell started (UTC)"),
    Column("finished_at", TIMESTAMP, False, "when the cell finished (UTC); the latest wins on duplicates"),
    Column("protocol", pa.string(), False, "evaluation protocol (benchmark.data.protocols; docs/protocols.md)"),
    *(Column(m, pa.float64(), True, _METRIC_DESCRIPTIONS[m]) for m in Z_METRIC_NAMES),
)


FAILURE_COLUMNS: tuple[Column, ...] = (
    Column("grid_id", pa.string(), False, "hash of the grid spec"),
    Column("grid", pa.string(), False, "grid name (partition column)"),
    Column("run_id", pa.string(), False, "id of the grid run"),
    Column("run_date", pa.string(), False, "date of the grid run, YYYY-MM-DD (partition column)"),
    Column("cell_key", pa.string(), False, "identity of the cell"),
    Column("target", pa.string(), False, "target label"),
    Column("target_size", pa.int64(), False, "number of target history points"),
    Column("architecture", pa.string(), False, "architecture name"),
    Column("mode", pa.string(), False, "transfer mode"),
    Column("seed", pa.int64(), False, "random seed"),
    Column("error", pa.string(), False, "what went wrong (exception type and message)"),
    Column("failed_at", TIMESTAMP, False, "when the cell failed (UTC)"),
)


def _schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable,
                               metadata={"description": c.description}) for c in columns])


SCHEMA: pa.Schema = _schema(COLUMNS)
FAILURE_SCHEMA: pa.Schema = _schema(FAILURE_COLUMNS)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def schema_markdown(columns: Sequence[Column] = COLUMNS) -> str:
    """The columns as a Markdown table, for the docs."""
    lines = ["| column | type | nullable | description |", "|---|---|---|---|"]
    for c in columns:
        default = f" (default {DEFAULTS[c.name]!r})" if c.name in DEFAULTS and columns is COLUMNS else ""
        lines.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description}{default} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# validation


class LeaderboardSchemaError(TlbenchError):
    """Rows that do not match the leaderboard schema; ``problems`` lists every one."""

    def __init__(self, problems: list[str], what: str):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{what}: {len(self.problems)} problem(s), nothing was written:\n{lines}\n"
            "Fix the rows to match benchmark.results.schema.COLUMNS (names, types, nullability).")


def validate_rows(rows: Sequence[dict], columns: Sequence[Column] = COLUMNS) -> list[dict]:
    """Check every row against ``columns``; return copies with defaults filled and timestamps in UTC.

    Raises :class:`LeaderboardSchemaError` listing every problem of every row (missing required
    columns, unknown columns, wrong types, nulls in required columns, bad values), each prefixed
    with the row's position and ``cell_key``.
    """
    if isinstance(rows, dict):
        raise TlbenchError("append() takes a list of row dicts, got one dict: wrap it in a list")
    by_name = {c.name: c for c in columns}
    defaults = DEFAULTS if columns is COLUMNS else {}
    problems: list[str] = []
    clean_rows: list[dict] = []
    for index, row in enumerate(rows):
        where = f"row {index} (cell_key {row.get('cell_key', '<missing>')!r})" if isinstance(row, dict) \
            else f"row {index}"
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a dict, got {type(row).__name__}")
            continue
        clean = {**{k: v for k, v in defaults.items() if k not in row}, **row}
        unknown = sorted(set(clean) - set(by_name))
        if unknown:
            problems.append(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}")
        missing = [c.name for c in columns if c.name not in clean and not c.nullable]
        if missing:
            problems.append(f"{where}: missing required column(s) {', '.join(map(repr, missing))}")
        for column in columns:
            if column.name not in clean:
                clean[column.name] = None
                continue
            value, problem = _check_value(column, clean[column.name])
            clean[column.name] = value
            if problem:
                problems.append(f"{where}: column {column.name!r} {problem}")
        problems.extend(f"{where}: {p}" for p in _check_semantics(clean, by_name))
        clean_rows.append(clean)
    if problems:
        raise LeaderboardSchemaError(problems, f"{len(rows)} leaderboard row(s) rejected")
    return clean_rows


def _is_null(value: Any) -> bool:
    # pandas 3 uses NaN for a missing str; to_dict() rows carry it, so NaN counts as null outside floats
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _check_value(column: Column, value: Any) -> tuple[Any, str | None]:
    """``(normalised value, problem or None)`` for one cell."""
    kind = column.type
    if pa.types.is_floating(kind):
        if value is None or value is pd.NA:
            return value, None if column.nullable else "is null but required (use float('nan') for an undefined metric)"
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return value, f"must be float64, got {type(value).__name__} {value!r}"
        return float(value), None
    if _is_null(value):
        return None, None if column.nullable else "is null but required"
    if pa.types.is_string(kind):
        if not isinstance(value, str):
            return value, f"must be str, got {type(value).__name__} {value!r}"
        return str(value), None
    if pa.types.is_integer(kind):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)  # a nullable int column read back by pandas comes as float (NaN = null)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            return value, f"must be int64, got {type(value).__name__} {value!r}"
        if not -2**63 <= int(value) < 2**63:
            return value, f"is out of the int64 range: {value!r}"
        return int(value), None
    if pa.types.is_timestamp(kind):
        if not isinstance(value, dt.datetime):
            return value, (f"must be a timezone-aware datetime, got {type(value).__name__} {value!r} "
                           "(use datetime.now(timezone.utc))")
        if value.tzinfo is None or value.utcoffset() is None:
            return value, f"must be timezone-aware, got naive {value!r} (use datetime.now(timezone.utc))"
        return pd.Timestamp(value).tz_convert("UTC"), None
    raise AssertionError(f"no check for column type {kind}")  # a new type in COLUMNS needs one here


def _check_semantics(row: dict, by_name: dict[str, Column]) -> list[str]:
    problems = []
    run_date = row.get("run_date")
    if isinstance(run_date, str):
        try:
            if not _DATE.match(run_date):
                raise ValueError
            dt.date.fromisoformat(run_date)
        except ValueError:
            problems.append(f"column 'run_date' must be a date YYYY-MM-DD, got {run_date!r}")
    for name in ("grid", "cell_key"):
        if isinstance(row.get(name), str) and not row[name].strip():
            problems.append(f"column {name!r} must not be empty")
    if "kind" in by_name:
        kind, architecture = row.get("kind"), row.get("architecture")
        if isinstance(kind, str) and kind not in KINDS:
            problems.append(f"column 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        elif (isinstance(kind, str) and isinstance(architecture, str) and kind != "source"
              and (kind == "baseline") != (architecture == "baseline")):
            problems.append(f"kind {kind!r} with architecture {architecture!r}: baseline rows, and only "
                            "they, have architecture 'baseline' (and the baseline name as mode)")
    return problems
