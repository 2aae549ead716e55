"""Model servers under failure and at their edges: v2 conformance with a third-party client, graceful shutdown
flushing the prediction log, no model, restart while MLflow is down (local cache), Redis online store outage."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.support.environment import free_port
from tests.support.serving import (
    KINDS,
    MODEL,
    ServedWorld,
    ServerProcess,
    materialize_online,
    serving_settings,
    start_server,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_v2_conformance_with_tritonclient(
    served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess]
) -> None:
    import tritonclient.http as triton  # type: ignore[import-untyped]

    server = start_server("kserve", serving_settings(served_world.settings, tmp_path))
    running.append(server)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert [item["name"] for item in metadata["inputs"]] == ["customer_id", "amount"]
    customers = np.array([*served_world.customers[:3], 999_999], dtype=np.int64)
    amounts = np.array([10.0, 250.0, 4000.0, 5.0], dtype=np.float64)
    inputs = [triton.InferInput("customer_id", [4], "INT64"), triton.InferInput("amount", [4], "FP64")]
    inputs[0].set_data_from_numpy(customers, binary_data=False)
    inputs[1].set_data_from_numpy(amounts, binary_data=True)  # binary tensor extension, as Triton clients send
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probability", "label", "error")]
    result = client.infer(MODEL, inputs, outputs=outputs, request_id="triton-1")
    probability, label, error = (result.as_numpy(name) for name in ("probability", "label", "error"))
    assert probability is not None and label is not None and error is not None
    assert probability.shape == (4,) and label.dtype == np.int64
    assert all(0.0 <= value <= 1.0 for value in probability[:3]) and probability[3] == -1.0
    assert list(label[:3]) == [int(value >= 0.5) for value in probability[:3]] and label[3] == -1
    texts = [item.decode() if isinstance(item, bytes) else str(item) for item in error]
    assert texts[:3] == ["", "", ""] and texts[3].startswith("unknown entity customer_id=999999")
    response = result.get_response()
    assert (response["id"], response["model_name"], response["model_version"]) == ("triton-1", MODEL, "1")
    only_key = triton.InferInput("customer_id", [1], "INT64")
    only_key.set_data_from_numpy(customers[:1], binary_data=True)
    with pytest.raises(triton.InferenceServerException, match=r"inputs\.amount: required"):
        client.infer(MODEL, [only_key])


def test_grpc_is_off_by_default_and_serves_v2_when_configured(
    served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess]
) -> None:
    """A real gRPC client (KServe's generated v2 stubs) against the server: off unless ``serving.grpc_port``."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as v2
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    grpc_port = free_port()
    server = start_server("kserve", serving_settings(served_world.settings, tmp_path, grpc_port=grpc_port))
    running.append(server)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(v2.ServerLiveRequest(), timeout=10).live
        assert stub.ModelReady(v2.ModelReadyRequest(name=MODEL), timeout=10).ready
        request = v2.ModelInferRequest(model_name=MODEL, id="grpc-1")
        key = request.inputs.add(name="customer_id", datatype="INT64", shape=[2])
        key.contents.int64_contents.extend([served_world.customers[0], 999_999])
        amount = request.inputs.add(name="amount", datatype="FP64", shape=[2])
        amount.contents.fp64_contents.extend([42.0, 5.0])
        response = stub.ModelInfer(request, timeout=30)
    assert (response.id, response.model_name, response.model_version) == ("grpc-1", MODEL, "1")
    outputs = {output.name: output for output in response.outputs}
    probability = list(outputs["probability"].contents.fp64_contents)
    assert 0.0 <= probability[0] <= 1.0 and probability[1] == -1.0
    errors = [item.decode() for item in outputs["error"].contents.bytes_contents]
    assert errors[0] == "" and errors[1].startswith("unknown entity customer_id=999999")

    default = start_server("kserve", serving_settings(served_world.settings, tmp_path / "default"))
    running.append(default)
    listening = {
        connection.laddr.port
        for connection in psutil.Process(default.process.pid).net_connections("tcp")
        if connection.status == psutil.CONN_LISTEN
    }
    assert listening == {default.settings.serving.port}  # HTTP only: no gRPC port of its own


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_flushes_every_prediction_to_the_log(
    kind: str, served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess]
) -> None:
    from mlplatform.predictions.reader import read_prediction_log

    # A long flush interval: records are still queued at SIGTERM, so only a graceful shutdown writes them.
    settings = serving_settings(served_world.settings, tmp_path, log_flush_interval_s=600, log_batch_size=10_000)
    server = start_server(kind, settings)
    running.append(server)
    request_ids = []
    with httpx.Client(timeout=30) as client:
        for index in range(25):
            entities = [{"customer_id": served_world.customers[index], "amount": float(index + 1)}] * 2
            response = server.predict(client, entities, request_id=f"log-{index}")
            assert response.status_code == 200, response.text
            request_ids.append(f"log-{index}")
    assert server.terminate() == 0, server.log()[-3000:]
    logged = read_prediction_log(settings, MODEL)
    assert len(logged) == 50
    assert sorted(set(logged["request_id"])) == sorted(request_ids)
    assert set(logged["model_version"]) == {"1"}
    assert {"customer_id", "txn_amount", "amount"} <= set(logged.columns)


@pytest.mark.parametrize("kind", KINDS)
def test_no_model_is_503_with_the_reason(
    kind: str, served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess]
) -> None:
    settings = serving_settings(served_world.settings, tmp_path)
    server = start_server(kind, settings, model="fraud_unregistered", wait_ready=False)
    running.append(server)
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 503
    with httpx.Client(timeout=30) as client:
        response = server.predict(client, [{"customer_id": 1001, "amount": 1.0}], model="fraud_unregistered")
    assert response.status_code == 503
    assert "no version of 'fraud_unregistered' holds the alias 'champion'" in response.json()["error"]


# Where each server reports readiness with its reason (BentoML's own /readyz carries no body of ours).
STATUS_PATH = {"kserve": "/readyz", "bentoml": "/status"}


@pytest.mark.parametrize("kind", KINDS)
def test_restart_while_mlflow_is_down_serves_the_cached_model(
    served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess], kind: str
) -> None:
    settings = serving_settings(served_world.settings, tmp_path)
    first = start_server(kind, settings)
    running.append(first)
    assert first.terminate() == 0
    # The same server restarted with the registry unreachable (nothing listens on the MLflow port).
    down = settings.model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"tracking_uri": f"http://127.0.0.1:{free_port()}"})}
    )
    second = start_server(kind, down)
    running.append(second)
    ready = httpx.get(second.url + STATUS_PATH[kind], timeout=10).json()
    assert ready == {"ready": True, "model": MODEL, "version": "1", "from_cache": True}
    with httpx.Client(timeout=30) as client:
        response = second.predict(client, [{"customer_id": served_world.customers[0], "amount": 3.0}])
    assert response.status_code == 200 and response.json()["version"] == "1"
    metrics = httpx.get(second.url + "/metrics", timeout=10).text
    assert f'mlplatform_serving_model_from_cache{{model="{MODEL}"}} 1.0' in metrics
    assert "serving fraud_serve version 1 from the local cache" in second.log()


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    redis = shutil.which("redis-server")
    assert redis is not None, "redis-server is needed for the Redis outage test (Debian package redis-server)"
    process = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_for(listening, 20, f"redis-server to listen on {port}", interval=0.2)
    except AssertionError:
        process.kill()
        raise
    return process


@pytest.mark.parametrize("kind", KINDS)
def test_redis_outage_is_503_and_the_server_recovers(
    served_world: ServedWorld, tmp_path: Path, running: list[ServerProcess], kind: str
) -> None:
    port = free_port()
    redis = _start_redis(port, tmp_path)
    try:
        base = served_world.settings.model_copy(
            update={
                "feast": served_world.settings.feast.model_copy(
                    update={"online_store": "redis", "redis_connection_string": f"127.0.0.1:{port}"}
                )
            }
        )
        settings = serving_settings(base, tmp_path)
        materialize_online(settings)
        server = start_server(kind, settings)
        running.append(server)
        entity = [{"customer_id": served_world.customers[0], "amount": 7.0}]
        with httpx.Client(timeout=30) as client:
            assert server.predict(client, entity).status_code == 200
            redis.terminate()
            redis.wait(10)
            response = server.predict(client, entity)
            assert response.status_code == 503, response.text
            # The client's retries against a refused port may outlast the scoring deadline: either 503 says why.
            error = response.json()["error"]
            assert "the online feature store (redis) could not be read" in error or "serving.scoring_timeout_s" in error
            assert str(port) not in error, "where the store is stays in the server's log"
            redis = _start_redis(port, tmp_path)
            materialize_online(settings)
            # Recovered without a restart, once the store's fail-fast window (serving.feature_store_retry_s) ends.
            wait_for(lambda: server.predict(client, entity).status_code == 200, 30, "a 200 after Redis came back")
            assert server.predict(client, entity).json()["predictions"]
    finally:
        redis.terminate()
        redis.wait(10)
