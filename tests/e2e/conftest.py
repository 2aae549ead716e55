"""One embedded stack for the end-to-end tests: real MLflow, Airflow 3, the platform API, Prometheus and
Alertmanager on free ports in a temporary state directory, with the fraud demo's model prepared and served.

The bring-your-own-model guide (which serves a second model beside the fraud one) and the closed loop (which
retrains the fraud model through Airflow) both run on it: one stack start, one first champion, one stop, instead
of one each.  Package scope: the stack stops when the last end-to-end test has run, before any other suite.

The loop runs first: it must begin with no drift alert firing for the fraud model, and the guide's drift check on
that model (on traffic of the latest entities, which the check may well call drift) could leave one firing.  After
the loop, the same check finds the retrain's cooldown and starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from mlplatform.config import Settings, get_settings
from mlplatform.demo.fraud_data import MODEL as FRAUD_MODEL
from mlplatform.demo.fraud_data import generate
from mlplatform.deploy.base import Deployment
from mlplatform.loop import driver
from mlplatform.stack.embedded import EmbeddedStack
from tests.support.environment import REPO_ROOT, free_port
from tests.support.tools import require_tool

LOOP_OPTIONS = driver.LoopOptions(
    model=FRAUD_MODEL,
    drift_days=20,
    requests=300,
    rate=100.0,
    timeouts=driver.LoopTimeouts(log=30, alert=60, webhook=60, retrain=420, swap=60),
)
# A small world (400 customers, 40 days): the loop takes about two minutes on two cores.
FRAUD_DATA = partial(generate, customers=400, days=40, seed=7)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The closed loop before the guide (see the module docstring); every other test keeps its place."""
    loop = [item for item in items if item.path.name == "test_loop.py"]
    guide = [item for item in items if item.path.name == "test_bring_your_own_model.py"]
    if not loop or not guide:
        return
    first = min(items.index(item) for item in (*loop, *guide))
    rest = [item for item in items if item not in loop and item not in guide]
    items[:] = [*rest[:first], *loop, *guide, *rest[first:]]


@dataclass(frozen=True)
class E2eWorld:
    settings: Settings
    fraud: Deployment


@pytest.fixture(scope="package")
def e2e_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eWorld]:
    """The stack up with Prometheus scraping every second, and the fraud model's first champion served."""
    require_tool("prometheus", "prometheus")
    require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    settings = get_settings(
        state_dir=tmp_path_factory.mktemp("e2e") / "state",
        bundled_models_dir=REPO_ROOT / "pipelines" / "models",
        feast={"repo_path": REPO_ROOT / "feature_repo", "project": "mlp_e2e"},
        airflow={"dags_folder": REPO_ROOT / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        api={"port": free_port()},
        serving={"port": free_port(), "poll_interval_s": 2.0},
        prometheus={"port": free_port(), "alertmanager_port": free_port(), "scrape_interval_s": 1},
    )
    try:
        fraud = driver.prepare(settings, LOOP_OPTIONS, FRAUD_DATA, say=print)
        yield E2eWorld(settings=settings, fraud=fraud)
    finally:
        EmbeddedStack(settings).down()  # every model server first, then the stack; also after a failure
