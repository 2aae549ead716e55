"""``serving.route.PredictRoute``: the prediction route does, in one layer, what the middlewares it replaces did.

In-process over a real Predictor (a local model and a table online store); the real servers are exercised by the
integration suites.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mlplatform.config import Settings
from mlplatform.serving.predictor import Predictor
from mlplatform.serving.route import PredictRoute
from tests.unit.test_serving_tasks import KEY, fitted, save, served

TOKEN = "r0ute-token-of-32-characters!!!!"
PATH = "/predict"


@pytest.fixture()
def predictor(settings: Settings, tmp_path: Path) -> Iterator[Predictor]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    guarded = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"auth_token_file": token_file})}
    )
    table = {100: {"f1": 0.4, "f2": -1.2}}
    model = save(fitted("binary", LogisticRegression), tmp_path / "v1")
    served_predictor, _ = served(guarded, "binary", table, ("1", model))
    yield served_predictor
    served_predictor.close()


def _route(predictor: Predictor | None) -> TestClient:
    """The route in front of an app answering every other request with 418, so a pass-through shows."""

    async def teapot(_: Any) -> PlainTextResponse:
        return PlainTextResponse("inner", status_code=418)

    inner = Starlette(routes=[Route("/{path:path}", teapot, methods=["GET", "POST"])])
    return TestClient(PredictRoute(inner, PATH, lambda: predictor, "entities", lambda: 0.0))


def _errors(predictor: Predictor, status: int) -> float:
    value = predictor.metrics.registry.get_sample_value(
        "mlplatform_serving_error_responses_total", {"model": predictor.name, "code": str(status)}
    )
    return float(value or 0.0)


def test_a_prediction_is_answered_with_the_accepted_request_id(predictor: Predictor) -> None:
    client = _route(predictor)
    answer = client.post(
        PATH,
        json={"entities": [{KEY: 100, "size": 2.0}]},
        headers={"authorization": f"Bearer {TOKEN}", "x-request-id": "abc-1"},
    )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "abc-1" and answer.json()["request_id"] == "abc-1"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["predictions"][0][KEY] == 100
    # An id unfit for a header or a log line is replaced, not echoed.
    forged = client.post(
        PATH,
        json={"entities": [{KEY: 100, "size": 2.0}]},
        headers={"authorization": f"Bearer {TOKEN}", "x-request-id": "a b\nforged"},
    )
    assert forged.status_code == 200 and len(forged.headers["x-request-id"]) == 32


def test_refusals_are_counted_logged_and_carry_the_challenge(
    predictor: Predictor, caplog: pytest.LogCaptureFixture
) -> None:
    client = _route(predictor)
    with caplog.at_level(logging.WARNING, logger="mlplatform.access"):
        unauthorized = client.post(PATH, json={"entities": [{KEY: 100, "size": 2.0}]})
        invalid = client.post(PATH, json={"entities": "not a list"}, headers={"authorization": f"Bearer {TOKEN}"})
    assert unauthorized.status_code == 401 and unauthorized.headers["www-authenticate"] == "Bearer"
    assert "bearer token is required" in unauthorized.json()["error"]
    assert invalid.status_code == 422 and "entities" in invalid.json()["error"]
    assert _errors(predictor, 401) == 1.0 and _errors(predictor, 422) == 1.0
    statuses = [record.__dict__.get("status") for record in caplog.records]
    assert statuses == [401, 422]  # every refusal writes an access line (successes only when sampled)


def test_other_requests_pass_through_untouched(predictor: Predictor) -> None:
    client = _route(predictor)
    assert client.post("/other", json={}).status_code == 418
    wrong_method = client.get(PATH)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert "Method Not Allowed" in wrong_method.json()["error"]
    assert _errors(predictor, 418) == 0.0 and _errors(predictor, 405) == 1.0  # the inner stack counts its own


def test_before_the_server_built_its_predictor_a_prediction_gets_a_503() -> None:
    answer = _route(None).post(PATH, json={"entities": [{KEY: 100}]})
    assert answer.status_code == 503 and "starting" in answer.json()["error"]


def test_an_unexpected_failure_is_counted_as_the_500_the_server_answers(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor, "predict_stream", broken)
    with pytest.raises(RuntimeError, match="a bug"):  # the route leaves the answer to the server's handler
        _route(predictor).post(PATH, json={"entities": []}, headers={"authorization": f"Bearer {TOKEN}"})
    assert _errors(predictor, 500) == 1.0


def test_bentoml_answers_predictions_in_front_of_its_whole_app(predictor: Predictor) -> None:
    """The ASGI app BentoML's worker serves (``to_asgi``) is the route around BentoML's own app: a prediction is
    answered without its middlewares (no lifespan: the service instance is not created here), and any other path
    still reaches BentoML."""
    from mlplatform.serving.adapters import bentoml as bento

    app = cast(Any, bento.ModelService).to_asgi(is_main=True)  # the decorators made it a bentoml.Service
    assert isinstance(app, PredictRoute)
    bento._Current.predictor = predictor
    try:
        client = TestClient(app)
        body = {"entities": [{KEY: 100, "size": 2.0}]}
        answer = client.post(PATH, json=body, headers={"authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.json()["predictions"][0][KEY] == 100
        assert client.post(PATH, json=body).status_code == 401
        assert client.get("/no-such-path").status_code == 404
    finally:
        bento._Current.predictor = None
