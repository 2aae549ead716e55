"""Both model servers as real processes against real MLflow and Feast (sqlite): formats, errors, v2, hot swap."""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
from tests.support.serving import (
    KINDS,
    MODEL,
    ServedWorld,
    ServerProcess,
    serving_settings,
    start_server,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=KINDS)
def server(
    request: pytest.FixtureRequest, served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    settings = serving_settings(served_world.settings, tmp_path_factory.mktemp(request.param))
    process = start_server(request.param, settings)
    yield process
    process.terminate()


def test_predicts_with_model_version_and_request_id(server: ServerProcess, served_world: ServedWorld) -> None:
    customers = served_world.customers[:3]
    entities = [{"customer_id": customer, "amount": 42.0} for customer in customers]
    with httpx.Client(timeout=30) as client:
        response = server.predict(client, entities, request_id="req-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["request_id"]) == (MODEL, served_world.versions[0], "req-1")
    assert [item["customer_id"] for item in body["predictions"]] == customers
    for item in body["predictions"]:
        assert 0.0 <= item["probability"] <= 1.0 and item["label"] == int(item["probability"] >= 0.5)
    assert body["errors"] == []


def test_request_id_is_generated_when_absent(server: ServerProcess, served_world: ServedWorld) -> None:
    with httpx.Client(timeout=30) as client:
        body = server.predict(client, [{"customer_id": served_world.customers[0], "amount": 1.0}]).json()
    assert len(body["request_id"]) == 32


def test_unknown_entity_is_a_per_row_error(server: ServerProcess, served_world: ServedWorld) -> None:
    entities = [{"customer_id": served_world.customers[0], "amount": 5.0}, {"customer_id": 999_999, "amount": 5.0}]
    with httpx.Client(timeout=30) as client:
        response = server.predict(client, entities)
    assert response.status_code == 200
    body = response.json()
    assert [item["customer_id"] for item in body["predictions"]] == [served_world.customers[0]]
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["customer_id"] == 999_999
    assert "unknown entity customer_id=999999" in body["errors"][0]["error"]


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ([{"customer_id": "x", "amount": 1.0}], "[0].customer_id: must be an integer"),
        ([{"customer_id": 1001}], "[0].amount: required"),
        ([{"amount": 3.0}], "[0].customer_id: required"),
        ([{"customer_id": 1001, "amount": "lots"}], "[0].amount: must be a number"),
        ([], "must contain at least one entity"),
        ("nope", "must be a list"),
    ],
)
def test_malformed_requests_are_422_naming_the_field(server: ServerProcess, entities: object, message: str) -> None:
    with httpx.Client(timeout=30) as client:
        response = server.predict(client, entities)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert f"{server.entities_field}" in response.json()["error"]


@pytest.mark.parametrize(
    ("raw", "message"), [(b"{oops", "body: not valid JSON"), (b"[]", "body: must be a JSON object")]
)
def test_malformed_bodies_are_422_with_the_reason(server: ServerProcess, raw: bytes, message: str) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.post(
            server.url + server.predict_path(), content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]


def test_oversized_batch_is_413(server: ServerProcess) -> None:
    too_many = [{"customer_id": 1001, "amount": 1.0}] * (server.settings.serving.max_batch_size + 1)
    with httpx.Client(timeout=30) as client:
        response = server.predict(client, too_many)
    assert response.status_code == 413 and "serving.max_batch_size" in response.json()["error"]


def test_metrics_come_from_the_platform_registry(server: ServerProcess, served_world: ServedWorld) -> None:
    with httpx.Client(timeout=30) as client:  # one scored and one invalid request, so both have samples
        assert server.predict(client, [{"customer_id": served_world.customers[0], "amount": 1.0}]).status_code == 200
        assert server.predict(client, "nope").status_code == 422
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert f'mlplatform_serving_model_info{{model="{MODEL}",version="1"}} 1.0' in text
    assert 'mlplatform_serving_stage_seconds_bucket{le="0.0005"' in text
    assert 'stage="feature_fetch"' in text and 'outcome="invalid"' in text
    assert f'mlplatform_serving_model_from_cache{{model="{MODEL}"}} 0.0' in text
    assert "kserve" not in text.lower() and "bentoml" not in text.lower()


def _ok_requests(server: ServerProcess) -> float:
    prefix = f'mlplatform_serving_requests_total{{model="{MODEL}",outcome="ok"}} '
    text = httpx.get(server.url + "/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_requests_are_counted_in_metrics_not_logged_line_by_line(
    server: ServerProcess, served_world: ServedWorld
) -> None:
    """Every request shows in the metrics; none writes a log line (stock servers write one to three each)."""
    before, log_before = _ok_requests(server), len(server.log().splitlines())
    with httpx.Client(timeout=30) as client:
        for index in range(100):
            entity = {"customer_id": served_world.customers[index % 50], "amount": 20.0 + index}
            assert server.predict(client, [entity]).status_code == 200
    assert _ok_requests(server) - before == 100
    new_lines = server.log().splitlines()[log_before:]
    assert len(new_lines) < 10, "\n".join(new_lines[:20])


def _json_records(server: ServerProcess) -> list[dict[str, object]]:
    """The server's log lines that are JSON objects (all of them, bar BentoML's supervisor: see docs/security.md)."""
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_log_lines_carry_the_request_id_model_and_version_and_no_credential(
    server: ServerProcess, served_world: ServedWorld
) -> None:
    """One id for the answer, its header, the prediction log and the log line; refusals log, successes do not;
    a credential a client sends never reaches the log."""
    from mlplatform.predictions.reader import read_prediction_log

    token = "mlp_" + secrets.token_urlsafe(32)
    secret_headers = {"authorization": f"Bearer {token}", "cookie": f"mlp_session={secrets.token_urlsafe(24)}"}
    entity = {"customer_id": served_world.customers[0], "amount": 3.0}
    url = server.url + server.predict_path()
    field = server.entities_field
    with httpx.Client(timeout=30) as client:
        ok = client.post(url, json={field: [entity], "request_id": "body-id-1"}, headers=secret_headers)
        from_header = client.post(url, json={field: [entity]}, headers={"x-request-id": "header-id-1"})
        too_long = client.post(url, json={field: [entity]}, headers={"x-request-id": "h" * 65})
        refused = client.post(url, json={field: "nope"}, headers={**secret_headers, "x-request-id": "refused-1"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == ok.json()["request_id"] == "body-id-1"
    assert from_header.headers["x-request-id"] == from_header.json()["request_id"] == "header-id-1"
    generated = too_long.headers["x-request-id"]
    assert too_long.status_code == 200 and too_long.json()["request_id"] == generated and len(generated) == 32
    assert refused.status_code == 422 and refused.headers["x-request-id"] == "refused-1"

    def refusal_logged() -> bool:
        return any(record.get("request_id") == "refused-1" for record in _json_records(server))

    wait_for(refusal_logged, 10, "the refusal's log line")
    wait_for(
        lambda: (
            {"body-id-1", "header-id-1", generated} <= set(read_prediction_log(server.settings, MODEL)["request_id"])
        ),
        10,
        "the prediction log's records of the three answers",
    )
    records = _json_records(server)
    (line,) = [record for record in records if record.get("request_id") == "refused-1"]
    assert (line["model"], line["version"], line["status"], line["level"]) == (
        MODEL,
        served_world.versions[0],
        422,
        "WARNING",
    )
    assert "must be a list" in str(line["error"])
    assert not [record for record in records if record.get("request_id") in ("body-id-1", "header-id-1", generated)]
    assert all(record.get("model") == MODEL for record in records if record["logger"] != "circus")
    log = server.log()
    assert token not in log and secret_headers["cookie"].split("=", 1)[1] not in log
    stray = [line for line in log.splitlines() if not line.startswith("{")]
    # BentoML's supervisor (not the worker that answers) announces the server in BentoML's own format.
    assert all("[cli] Starting production HTTP BentoServer" in line for line in stray), stray[:5]
    assert len(stray) <= (1 if server.kind == "bentoml" else 0)


def test_hot_swap_under_load_has_no_failures(server: ServerProcess, served_world: ServedWorld) -> None:
    """Move the alias while a client sends requests: every answer is a 200, and the version changes in time."""
    registry = ModelRegistry(served_world.settings)
    first, second = served_world.versions
    seen: list[tuple[float, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = server.predict(client, [{"customer_id": served_world.customers[1], "amount": 10.0}])
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                else:
                    seen.append((time.monotonic(), response.json()["version"]))
                time.sleep(0.01)  # paces the client (about 100 requests/s), not a wait

    def answered_since(count: int) -> bool:
        return len(seen) >= count + 10

    def serving(version: str) -> bool:
        return bool(seen) and seen[-1][1] == version

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        for target in (second, first):  # swap to v2, then back (a rollback is the same mechanism)
            before = len(seen)  # the current version answers for a while before the move
            wait_for(functools.partial(answered_since, before), 30, "ten answers before the swap", interval=0.1)
            moved_at = time.monotonic()
            registry.move_alias(MODEL, CHAMPION, target, actor="pytest", reason="swap test")
            wait_for(functools.partial(serving, target), 30, f"answers from version {target}", interval=0.1)
            switched = next((at for at, version in seen if at > moved_at and version == target), None)
            assert switched is not None, f"still serving {seen[-1][1] if seen else None} 30 s after moving to {target}"
            # Poll interval (1 s) plus download and load of the new version on a busy 2-core machine.
            assert switched - moved_at < 15, f"swap to {target} took {switched - moved_at:.1f} s"
    finally:
        stop.set()
        thread.join(30)
        registry.move_alias(MODEL, CHAMPION, first, actor="pytest", reason="swap test cleanup")
    assert failures == []
    assert len(seen) > 20
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert f'mlplatform_serving_model_swaps_total{{model="{MODEL}"}} 2.0' in metrics


def test_model_cache_is_written(server: ServerProcess) -> None:
    cache = Path(server.settings.serving_dir) / "models" / MODEL
    assert (cache / "current.json").is_file()
    assert [path.name for path in cache.iterdir() if path.is_dir()] == ["v1"]
