"""The Ray executor against a local Ray instance started by the test (``ray.init(num_cpus=2)``)."""
import os
import statistics
from pathlib import Path

import pytest

from resume_helpers import executor_contract, regularized
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.run import Budget, RayExecutor, Runner, create_executor
from tinyevo.spaces import create_space
from tinyevo.store import Store

ray = pytest.importorskip("ray")
TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")


@pytest.fixture(scope="module")
def local_ray():
    tests = str(Path(__file__).resolve().parent)  # the workers unpickle test estimators (resume_helpers)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_a_search_on_ray_equals_the_serial_search(local_ray, tmp_path):
    executor = create_executor("ray")  # joins the Ray the test started
    assert isinstance(executor, RayExecutor) and executor.parallelism == 2
    finished = []
    means = executor.map(statistics.fmean, [[1, 2], [3], [4, 6]],
                         lambda index, result: finished.append((index, result)))
    assert means == [1.5, 3.0, 5.0] and sorted(finished) == [(0, 1.5), (1, 3.0), (2, 5.0)]

    def search(executor, path):
        space = create_space("nb201")
        with Store(path) as store:
            return Runner(space, regularized(space, 4), TabularEstimator(path=str(TABLE)), store,
                          Budget(evaluations=10), executor=executor, batch_size=2,
                          progress=False).run()

    on_ray = search(executor, tmp_path / "ray.sqlite")
    assert on_ray == search(None, tmp_path / "serial.sqlite")
    assert len(on_ray) == 10 and all(t.status == "ok" for t in on_ray)


def test_a_ray_task_whose_worker_dies_or_hangs_fails_its_trial_and_the_search_goes_on(local_ray, tmp_path):
    """Ray does not retry the task (the candidate would kill the next worker too); a task over the
    limit is cancelled with its worker. Ray does not say which signal killed a worker: its error
    (WorkerCrashedError) is recorded. The limit counts from when the task begins, so the start of
    a fresh worker (PyTorch imports) does not count against it."""
    from resume_helpers import Doomed

    def search(executor, path, fates, limit="auto"):
        space = create_space("nb201")
        with Store(path) as store:
            trials = Runner(space, regularized(space, 4), Doomed(fates=fates), store, Budget(evaluations=8),
                            executor=executor, batch_size=2, progress=False, eval_timeout=limit).run()
            return trials, {r.trial.id: r.error for r in store.records()}, store.running()

    executor = create_executor("ray")
    trials, errors, running = search(executor, tmp_path / "ray.sqlite", {"2": "abort", "3": "sigkill",
                                                                         "5": "hang"}, limit=3)
    polite, _, _ = search(None, tmp_path / "serial.sqlite", {"2": "fail", "3": "fail", "5": "fail"})
    assert trials == polite and running == []
    assert "Ray worker died" in errors[2] and "WorkerCrashedError" in errors[3]
    assert errors[5].startswith("timed out") and "3 s limit" in errors[5]
    assert all(errors[i] is None for i in errors if i not in (2, 3, 5))


def test_the_ray_executor_keeps_the_executor_contract(local_ray):
    with create_executor("ray") as executor:
        executor_contract(executor)
