"""``Settings``: the numbers read from the environment, their round trip to a worker's
environment, and a clear error for a value that is not a number."""

from __future__ import annotations

import pytest

from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings


def test_numbers_from_the_environment_survive_the_trip_to_a_worker(tmp_path):
    env = {"TLBENCH_DATA_DIR": str(tmp_path), "TLBENCH_BASELINE_FIT_SECONDS": "12.5",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    settings = Settings.from_env(env)
    assert settings.baseline_fit_seconds == 12.5
    assert (settings.mlflow_max_retries, settings.mlflow_timeout) == (3, 30)
    again = Settings.from_env(settings.to_env())
    assert (again.baseline_fit_seconds, again.mlflow_max_retries, again.mlflow_timeout) == (12.5, 3, 30)


@pytest.mark.parametrize("variable, value, message", [
    ("TLBENCH_BASELINE_FIT_SECONDS", "a minute",
     "TLBENCH_BASELINE_FIT_SECONDS='a minute' must be a number of seconds, e.g. 60"),
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2.5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES='2.5' must be a whole number"),
])
def test_a_setting_that_is_not_a_number_is_named_with_what_it_should_be(tmp_path, variable, value, message):
    with pytest.raises(TlbenchError, match=message.replace(".", r"\.")):
        Settings.from_env({"TLBENCH_DATA_DIR": str(tmp_path), variable: value})
