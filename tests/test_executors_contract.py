"""Every local executor keeps the executor contract (``resume_helpers.executor_contract``); the Ray
executor keeps it in ``test_ray_executor``."""
import pytest

from resume_helpers import executor_contract
from tinyevo.run import EXECUTORS, create_executor

LOCAL = {"serial": {}, "process": {"workers": 2}}


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_an_executor_runs_every_job_once_in_order_and_a_failing_job_is_a_failed_result(name):
    with create_executor(name, **LOCAL[name]) as executor:
        executor_contract(executor)


def test_every_registered_executor_is_under_the_contract():
    assert set(EXECUTORS) == set(LOCAL) | {"ray"}
