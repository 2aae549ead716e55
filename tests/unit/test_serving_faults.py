"""Model servers under faults and strangers, in-process: the bearer-token gate answers before any body is read,
scoring runs off the event loop within a deadline, and a failed online store is left alone for a short window
and then tried again.  The online store is a fake reader that can be made to hang (the real Redis blackholed
under load is tests/faults); the Predictor, both servers' apps and the thread pool are real."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from mlplatform.config import FeastSettings, Settings
from mlplatform.features.store import redis_connection_string
from mlplatform.serving.access import BearerGate, ServingTokenError, read_token
from mlplatform.serving.errors import FeatureStoreUnavailableError, ScoringTimeoutError
from mlplatform.serving.loading import AliasTarget, LoadedModel
from mlplatform.serving.offload import StoreHealth
from mlplatform.serving.predictor import Predictor
from tests.support.fakes.online_features import TableFeatureReader
from tests.unit.test_serving_tasks import KEY, STORED, LocalLoader, fitted, make_spec, save, served

TOKEN = "s3rving-token-of-32-characters!!"


@pytest.fixture()
def table() -> dict[int, dict[str, float]]:
    """The online store's rows: entity 100 is known."""
    return {100: {"f1": 0.4, "f2": -1.2}}


def _with_serving(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"serving": settings.serving.model_copy(update=changes)})


def _count(predictor: Predictor, outcome: str) -> float:
    value = predictor.metrics.registry.get_sample_value(
        "mlplatform_serving_requests_total", {"model": predictor.name, "outcome": outcome}
    )
    return float(value or 0.0)


# ---- the bearer token ----------------------------------------------------------------------------------------------


def test_a_token_file_must_hold_a_real_token(tmp_path: Path) -> None:
    assert read_token(None) is None
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    assert read_token(token_file) == TOKEN.encode()
    token_file.write_text("short\n")
    with pytest.raises(ServingTokenError, match="holds 5 characters; a token needs at least 16"):
        read_token(token_file)
    with pytest.raises(ServingTokenError, match="cannot be read: FileNotFoundError"):
        read_token(tmp_path / "missing")


def test_the_gate_refuses_before_reading_the_body() -> None:
    """Neither the app behind the gate nor the request body is touched for a request without the token."""
    refused: list[int] = []

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("the app behind the gate must not run")

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    gate = BearerGate(app, token=lambda: TOKEN.encode(), on_refused=lambda: refused.append(1))
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [(b"authorization", b"Bearer nope")]}
    asyncio.run(gate(scope, receive, send))
    assert sent[0]["status"] == 401 and (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert b"bearer token is required" in sent[1]["body"] and refused == [1]


@pytest.mark.parametrize("server", ["bentoml", "kserve"])
def test_both_servers_require_the_token_on_predictions_only(
    server: str, settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    from fastapi import FastAPI

    from mlplatform.serving.adapters import bentoml as bento
    from mlplatform.serving.adapters.kserve import install_platform_routes, v1_route

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    guarded = _with_serving(settings, auth_token_file=token_file)
    predictor, _ = served(guarded, "binary", table, ("1", save(fitted("binary", LogisticRegression), tmp_path / "v1")))
    try:
        if server == "bentoml":
            bento._Current.predictor = predictor
            app: Any = bento.predict_route(bento.create_app())
            path, field = "/predict", "entities"
        else:
            inner = FastAPI()
            install_platform_routes(inner, predictor)
            app = v1_route(BearerGate(inner, lambda: predictor.token, predictor.count_unauthorized), predictor)
            path, field = f"/v1/models/{predictor.name}:predict", "instances"
        client = TestClient(app)
        body = {field: [{KEY: 100, "size": 2.0}]}
        assert client.post(path, json=body).status_code == 401
        assert client.post(path, json=body, headers={"authorization": "Bearer " + "x" * 32}).status_code == 401
        assert client.post(path, json=body, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/metrics").status_code == 200  # Prometheus carries no token
        assert _count(predictor, "unauthorized") == 2.0
    finally:
        bento._Current.predictor = None
        predictor.close()


# ---- scoring off the event loop --------------------------------------------------------------------------------------


class HangingReader(TableFeatureReader):
    """An online store that hangs while ``hang`` is set, as a blackholed Redis does, and counts its reads."""

    def __init__(self, rows: dict[int, dict[str, float]]) -> None:
        super().__init__(KEY, rows, STORED)
        self.hang = threading.Event()
        self.released = threading.Event()
        self.reads = 0

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        self.reads += 1
        if self.hang.is_set():
            self.released.wait(10)
        return super().read(rows)


def _hanging(settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path) -> tuple[Predictor, HangingReader]:
    """A served binary model whose online store can hang; deadline 0.3 s, fail-fast window 0.5 s."""
    quick = _with_serving(settings, scoring_timeout_s=0.3, feature_store_retry_s=0.5)
    reader = HangingReader(table)
    return _served_over(quick, reader, tmp_path), reader


def _served_over(settings: Settings, reader: TableFeatureReader, tmp_path: Path) -> Predictor:
    """A started Predictor of a binary model whose features ``reader`` reads (no prediction log)."""
    spec = make_spec("binary")
    loader = LocalLoader(settings, spec, reader)
    loader.versions["1"] = save(fitted("binary", LogisticRegression), tmp_path / "v1")
    loader.alias_version = "1"
    predictor = Predictor(settings, spec.name, spec=spec, loader=loader, prediction_log=False)
    predictor.start(poll=False)
    return predictor


def test_a_hanging_store_costs_one_deadline_then_fails_fast_and_recovers(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    predictor, reader = _hanging(settings, table, tmp_path)
    entity = [{KEY: 100, "size": 2.0}]

    async def scenario() -> None:
        assert (await predictor.predict_off_loop(entity)).predictions  # healthy

        reader.hang.set()
        ticks = 0

        async def heartbeat() -> None:  # what /livez needs: the loop keeps turning while the store hangs
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(heartbeat())
        began = time.monotonic()
        with pytest.raises(ScoringTimeoutError, match=r"longer than 0.3s \(serving.scoring_timeout_s\)"):
            await predictor.predict_off_loop(entity)
        assert 0.25 < time.monotonic() - began < 1.0
        assert ticks >= 10
        beating.cancel()

        reads = reader.reads
        began = time.monotonic()
        with pytest.raises(FeatureStoreUnavailableError, match="failed moments ago"):
            await predictor.predict_off_loop(entity)
        assert time.monotonic() - began < 0.05 and reader.reads == reads  # the store is not even asked

        reader.hang.clear()
        reader.released.set()
        await asyncio.sleep(0.6)  # the fail-fast window passes: the next request tries the store again
        assert (await predictor.predict_off_loop(entity)).predictions

    try:
        asyncio.run(scenario())
        assert _count(predictor, "unavailable") == 2.0
    finally:
        predictor.close()


class BoundedReader(TableFeatureReader):
    """A reader whose reads are bounded (``loop_safe``) or not, noting the thread each read runs on."""

    def __init__(self, rows: dict[int, dict[str, float]], loop_safe: bool) -> None:
        super().__init__(KEY, rows, STORED)
        self.loop_safe = loop_safe
        self.threads: list[str] = []

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        self.threads.append(threading.current_thread().name)
        return super().read(rows)


@pytest.mark.parametrize("loop_safe", [True, False])
def test_only_a_store_whose_reads_are_bounded_is_read_on_the_event_loop(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path, loop_safe: bool
) -> None:
    """A bounded read costs less than the hand-off to a thread and back; one that could hang (above) stays in the
    scoring threads (which reads are bounded: tests/integration/test_features.py)."""
    reader = BoundedReader(table, loop_safe)
    predictor = _served_over(settings, reader, tmp_path)
    try:
        result = asyncio.run(predictor.predict_off_loop([{KEY: 100, "size": 2.0}]))
        assert len(result.predictions) == 1
        expected = [threading.main_thread().name] if loop_safe else ["scoring_0"]
        assert reader.threads == expected
    finally:
        predictor.close()


class AwaitingReader(BoundedReader):
    """A reader that awaits its store on the event loop (``reads_async``), as the reader of a single Redis server
    does, for ``wait_s``; counts the reads waiting at once; ``failure``, when set, is what its reads raise."""

    reads_async = True

    def __init__(self, rows: dict[int, dict[str, float]], wait_s: float = 0.05) -> None:
        super().__init__(rows, loop_safe=True)
        self.wait_s = wait_s
        self.waiting = self.most_waiting = 0
        self.failure: Exception | None = None

    async def read_async(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        if self.failure is not None:
            raise self.failure
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        await asyncio.sleep(self.wait_s)
        self.waiting -= 1
        return TableFeatureReader.read(self, rows)


def test_a_reader_that_awaits_its_store_leaves_the_loop_to_other_requests_and_fails_like_the_others(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    """Four requests wait for the store at once instead of in turn; the wait counts in the read's stage time; a
    failed read is the store's 503 and opens its fail-fast window, as a blocking read's failure does."""
    reader = AwaitingReader(table)
    predictor = _served_over(settings, reader, tmp_path)

    async def together(count: int) -> list[Any]:
        requests = [predictor.predict_off_loop([{KEY: 100, "size": 2.0}]) for _ in range(count)]
        return list(await asyncio.gather(*requests))

    try:
        results = asyncio.run(together(4))
        assert reader.most_waiting == 4 and reader.threads == []  # awaited together; never read() in a thread
        assert [len(result.predictions) for result in results] == [1] * 4
        assert all(result.timings_s["feature_fetch"] >= reader.wait_s for result in results)
        assert _count(predictor, "ok") == 4
        reader.failure = ConnectionError("Redis closed the connection")
        with pytest.raises(FeatureStoreUnavailableError, match="could not be read; retry later"):
            asyncio.run(together(1))
        reader.failure = None
        with pytest.raises(FeatureStoreUnavailableError, match="failed moments ago"):
            asyncio.run(together(1))
        assert _count(predictor, "unavailable") == 2
    finally:
        predictor.close()


@pytest.mark.parametrize("candidate_bounded", [True, False])
def test_a_rollout_is_scored_on_the_loop_only_when_both_arms_reads_are_bounded(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path, candidate_bounded: bool
) -> None:
    """A split reads the candidate's features in the same call: one unbounded reader keeps the request in the
    scoring threads."""
    from dataclasses import replace

    from mlplatform.registry.traffic import TrafficPlan
    from tests.unit.test_serving_rollout import RolloutLoader

    # Readers that could await the store: a rollout's requests keep ``predict``'s path all the same.
    champion_reader = AwaitingReader(table)
    candidate_reader = AwaitingReader(table) if candidate_bounded else BoundedReader(table, loop_safe=False)

    class TwoReaders(RolloutLoader):
        def load(self, target: AliasTarget, *, cache: bool = True) -> LoadedModel:
            loaded = super().load(target, cache=cache)
            return replace(loaded, reader=candidate_reader if target.version == "2" else champion_reader)

    spec = make_spec("binary")
    loader = TwoReaders(settings, spec, champion_reader)
    model = fitted("binary", LogisticRegression)
    loader.versions.update({"1": save(model, tmp_path / "v1"), "2": save(model, tmp_path / "v2")})
    loader.alias_version = "1"
    loader.plan = TrafficPlan(1, "2", "split", 1.0)
    predictor = Predictor(settings, spec.name, spec=spec, loader=loader, prediction_log=False)
    predictor.start(poll=False)
    predictor.refresh()
    try:
        result = asyncio.run(predictor.predict_off_loop([{KEY: 100, "size": 2.0}]))
        assert [item.version for item in result.predictions] == ["2"]
        where = threading.main_thread().name if candidate_bounded else "scoring_0"
        assert candidate_reader.threads == [where]  # read(), not read_async
    finally:
        predictor.close()


def test_the_kserve_server_runs_on_uvloop() -> None:
    """KServe starts its servers inside ``asyncio.run``, where uvicorn's own choice of loop never applies."""
    import uvloop

    from mlplatform.serving.adapters.kserve import event_loop_factory

    loop = event_loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_a_slow_model_does_not_close_the_store() -> None:
    """Only a deadline passed inside a store read opens the fail-fast window; the window is the setting's."""
    now = [100.0]
    health = StoreHealth(2.0, clock=lambda: now[0])
    health.check()
    health.failed()
    with pytest.raises(FeatureStoreUnavailableError):
        health.check()
    now[0] += 2.01
    health.check()


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("127.0.0.1:6379", "127.0.0.1:6379,socket_timeout=1.5,socket_connect_timeout=1.5"),
        ("redis:6379,db=2,socket_timeout=5", "redis:6379,db=2,socket_timeout=5,socket_connect_timeout=1.5"),
    ],
)
def test_redis_calls_time_out_unless_the_connection_string_says_otherwise(configured: str, expected: str) -> None:
    feast = FeastSettings(redis_connection_string=configured, redis_timeout_s=1.5)
    assert redis_connection_string(feast) == expected
