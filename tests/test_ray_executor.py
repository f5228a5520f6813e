"""The Ray executor against a local Ray instance started by the test (``ray.init(num_cpus=2)``)."""
import statistics
from pathlib import Path

import pytest

from resume_helpers import regularized
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.run import Budget, RayExecutor, Runner, create_executor
from tinyevo.spaces import create_space
from tinyevo.store import Store

ray = pytest.importorskip("ray")
TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
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
            return Runner(space, regularized(space, 4), TabularEstimator(), store,
                          Budget(evaluations=10), executor=executor, batch_size=2,
                          progress=False).run()

    on_ray = search(executor, tmp_path / "ray.sqlite")
    assert on_ray == search(None, tmp_path / "serial.sqlite")
    assert len(on_ray) == 10 and all(t.status == "ok" for t in on_ray)
