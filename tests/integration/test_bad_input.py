"""Malformed and hostile requests replayed against every HTTP boundary, each served for real: both model servers
(BentoML and KServe, as processes; KServe's v1 and v2 routes), the platform API and UI (the real app under uvicorn
over a sqlite platform DB, with the fakes of ``tests/support/api_world.py`` for MLflow, Airflow and the deployer)
and the Alertmanager webhook it serves.

Each case is a row of a table: the request, the status it must get (a specific 4xx) and a text the answer must hold
(the field or the reason).  Every answer must also stay short (never echo a huge input).  After all rows, each
server still answers a good request quickly, and its metrics counted the refusals.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from mlplatform.config import Settings
from mlplatform.retraining.alertmanager import webhook_token
from tests.support.api_world import MODEL as API_MODEL
from tests.support.api_world import World, logged_in, make_world
from tests.support.environment import embedded_settings
from tests.support.serving import MODEL, LimitedServers, ServedWorld, ServerProcess
from tests.support.waiting import serving_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LONGEST_ANSWER = 2000
"""No refusal is longer: the largest inputs below are 10 kB to megabytes, and none may be echoed back."""
GOOD_ANSWER_S = 2.0
"""A good request after the whole table is answered within this (a server stuck on a hostile one would not be)."""
REFUSAL_S = 5.0
"""Each refusal comes within this, on a busy 2-core machine: none may make the server parse or wait for long."""

DEEP = b"[" * 10_000 + b"]" * 10_000
HUGE_INT = b"1" + b"0" * 5000  # 10**5000: beyond Python's 4300-digit conversion limit
NOT_UTF8 = b"\xff\xfe\xfa"


@dataclass(frozen=True)
class Bad:
    """One hostile request and the answer it must get.

    In model-server rows, ``@F`` in the body stands for the entity list's field (``instances`` on KServe v1,
    ``entities`` on BentoML), ``@M`` in path and body for the model's name, and ``@V1`` in the path for the
    server's v1 predict route.
    """

    name: str
    status: int
    says: str
    body: bytes = b""
    path: str = "@V1"
    method: str = "POST"
    content_type: str | None = "application/json"
    chunked: bool = False
    role: str | None = "admin"  # API rows: whose token; None sends none
    headers: dict[str, str] = field(default_factory=dict)


def entities(*rows: str) -> bytes:
    return ('{"@F": [' + ", ".join(rows) + "]}").encode()


GOOD_ROW = '{"customer_id": 1001, "amount": 1.0}'

# Rows both model servers answer the same way on their JSON entity route (KServe v1 ``:predict``, BentoML
# ``/predict``).  ``serving.max_body_kb`` is set to 64 and ``max_batch_size`` to 16 for these servers.
ENTITY_ROUTE = [
    Bad("empty body", 422, "not valid JSON"),
    Bad("not json", 422, "not valid JSON", b"{oops"),
    Bad("not utf-8", 422, "not UTF-8", b'{"@F": "' + NOT_UTF8 + b'"}'),
    Bad("deep nesting", 422, "nested too deeply", DEEP),
    Bad("huge integer", 422, "out of range", entities('{"customer_id": ' + HUGE_INT.decode() + ', "amount": 1}')),
    Bad("float beyond range", 422, "amount: must be a finite number", entities('{"customer_id": 1, "amount": 1e400}')),
    Bad("NaN literal", 422, "amount: must be a finite number", entities('{"customer_id": 1, "amount": NaN}')),
    Bad(
        "Infinity literal", 422, "amount: must be a finite number", entities('{"customer_id": 1, "amount": -Infinity}')
    ),
    Bad("key as string", 422, "customer_id: must be an integer", entities('{"customer_id": "1001", "amount": 1}')),
    Bad("key as float", 422, "customer_id: must be an integer", entities('{"customer_id": 1001.5, "amount": 1}')),
    Bad("key as bool", 422, "customer_id: must be an integer", entities('{"customer_id": true, "amount": 1}')),
    Bad("value as string", 422, "amount: must be a number", entities('{"customer_id": 1001, "amount": "1"}')),
    Bad("entity not object", 422, "[0]: must be an object", entities("[1001, 1.0]")),
    Bad("entities not list", 422, "must be a list", b'{"@F": {"customer_id": 1001, "amount": 1}}'),
    Bad("body not object", 422, "must be a JSON object", b"[" + GOOD_ROW.encode() + b"]"),
    Bad("no entities field", 422, "required", b'{"rows": [' + GOOD_ROW.encode() + b"]}"),
    Bad("key beyond int64", 422, "64 bits", entities(f'{{"customer_id": {2**63}, "amount": 1}}')),
    Bad("key below int64", 422, "64 bits", entities(f'{{"customer_id": {-(2**63) - 1}, "amount": 1}}')),
    Bad(
        "request id too long",
        422,
        "request_id: at most 64",
        b'{"@F": [' + GOOD_ROW.encode() + b'], "request_id": "' + b"r" * 10_000 + b'"}',
    ),
    Bad(
        "request id not string",
        422,
        "request_id: must be a string",
        b'{"@F": [' + GOOD_ROW.encode() + b'], "request_id": 7}',
    ),
    Bad("batch too large", 413, "serving.max_batch_size", entities(*[GOOD_ROW] * 17)),
    Bad("body too large (Content-Length)", 413, "exceed the limit", entities(*[GOOD_ROW] * 3000)),
    Bad("body too large (chunked)", 413, "more than 65536 bytes", entities(*[GOOD_ROW] * 3000), chunked=True),
    Bad(
        "form body",
        422,
        "not valid JSON",
        b"customer_id=1001&amount=1",
        content_type="application/x-www-form-urlencoded",
    ),
    Bad("duplicate key, last empty", 422, "at least one entity", b'{"@F": [' + GOOD_ROW.encode() + b'], "@F": []}'),
    Bad("wrong method", 405, "Method Not Allowed", method="PUT"),
]

V2 = "/v2/models/@M/infer"


def v2_body(*inputs: str, extra: str = "") -> bytes:
    return ('{"inputs": [' + ", ".join(inputs) + "]" + extra + "}").encode()


V2_KEY = '{"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [1001]}'
V2_AMOUNT = '{"name": "amount", "datatype": "FP64", "shape": [1], "data": [1.0]}'

# KServe only: its Open Inference Protocol (v2) routes and the routes stock KServe adds.
KSERVE_ROUTES = [
    Bad("v2 empty body", 422, "body", path=V2),
    Bad("v2 not json", 422, "body", b"{oops", path=V2),
    Bad("v2 not utf-8", 422, "not UTF-8", b'{"inputs": "' + NOT_UTF8 + b'"}', path=V2),
    Bad("v2 deep nesting", 422, "nested too deeply", b'{"inputs": ' + DEEP + b"}", path=V2),
    Bad(
        "v2 huge integer",
        422,
        "out of range",
        v2_body(V2_KEY.replace("[1001]", "[" + HUGE_INT.decode() + "]"), V2_AMOUNT),
        path=V2,
    ),
    Bad("v2 key beyond int64", 422, "customer_id", v2_body(V2_KEY.replace("[1001]", f"[{2**63}]"), V2_AMOUNT), path=V2),
    Bad("v2 float beyond range", 422, "amount", v2_body(V2_KEY, V2_AMOUNT.replace("[1.0]", "[1e400]")), path=V2),
    Bad("v2 NaN literal", 422, "amount", v2_body(V2_KEY, V2_AMOUNT.replace("[1.0]", "[NaN]")), path=V2),
    Bad(
        "v2 wrong datatype",
        422,
        "inputs.customer_id: datatype",
        v2_body(V2_KEY.replace("INT64", "BYTES"), V2_AMOUNT),
        path=V2,
    ),
    Bad("v2 missing input", 422, "inputs.amount: required", v2_body(V2_KEY), path=V2),
    Bad("v2 shape mismatch", 422, "inputs.customer_id", v2_body(V2_KEY.replace("[1]", "[3]"), V2_AMOUNT), path=V2),
    Bad("v2 inputs not list", 422, "inputs", b'{"inputs": "x"}', path=V2),
    Bad(
        "v2 id too long",
        422,
        "at most 64",
        v2_body(V2_KEY, V2_AMOUNT, extra=', "id": "' + "i" * 10_000 + '"'),
        path=V2,
    ),
    Bad(
        "v2 batch too large",
        413,
        "serving.max_batch_size",
        v2_body(
            V2_KEY.replace("[1]", "[17]").replace("[1001]", "[" + ", ".join(["1001"] * 17) + "]"),
            V2_AMOUNT.replace("[1]", "[17]").replace("[1.0]", "[" + ", ".join(["1.0"] * 17) + "]"),
        ),
        path=V2,
    ),
    Bad("v2 body too large (Content-Length)", 413, "limit", b'{"inputs": [' + b" " * 70_000 + b"]}", path=V2),
    Bad("v2 body too large (chunked)", 413, "limit", b'{"inputs": [' + b" " * 70_000 + b"]}", path=V2, chunked=True),
    Bad("v2 unknown model", 404, "not served here", v2_body(V2_KEY, V2_AMOUNT), path="/v2/models/nope/infer"),
    Bad(
        "v2 traversal in model name",
        404,
        "Not Found",
        v2_body(V2_KEY, V2_AMOUNT),
        path="/v2/models/..%2F..%2Fetc%2Fpasswd/infer",
    ),
    Bad(
        "v2 huge model name", 404, "not served here", v2_body(V2_KEY, V2_AMOUNT), path=f"/v2/models/{'m' * 5000}/infer"
    ),
    Bad("v1 unknown model", 404, "not served here", entities(GOOD_ROW), path="/v1/models/nope:predict"),
    Bad("v1 explain", 404, "not served here", entities(GOOD_ROW), path="/v1/models/@M:explain"),
    Bad(
        "v2 versioned infer", 404, "not served here", v2_body(V2_KEY, V2_AMOUNT), path="/v2/models/@M/versions/1/infer"
    ),
    Bad("v2 unload the model", 404, "not served here", path="/v2/repository/models/@M/unload"),
    Bad("v2 load a model", 404, "not served here", path="/v2/repository/models/@M/load"),
]

BENTOML_ROUTES = [
    Bad("traversal", 404, "Not Found", entities(GOOD_ROW), path="/predict/..%2F..%2Fetc%2Fpasswd"),
    Bad("huge path", 404, "Not Found", entities(GOOD_ROW), path="/" + "p" * 5000),
    Bad("metrics by POST", 405, "Method Not Allowed", path="/metrics"),
]


@dataclass
class Sent:
    response: httpx.Response
    seconds: float


def send(client: httpx.Client, base: str, case: Bad, path: str, body: bytes, headers: dict[str, str]) -> Sent:
    """The request as the row says: a plain body (with its Content-Length) or the same bytes chunked."""
    headers = {**headers, **case.headers}
    if case.content_type:
        headers["content-type"] = case.content_type
    content: bytes | Iterator[bytes] = body
    if case.chunked:
        content = iter([body[start : start + 8192] for start in range(0, len(body), 8192)])
    began = time.monotonic()
    response = client.request(case.method, base + path, content=content if body else None, headers=headers)
    return Sent(response, time.monotonic() - began)


def check_answer(case: Bad, sent: Sent) -> str:
    """'' when the answer is the row's, else what is wrong with it."""
    response = sent.response
    problems = []
    if response.status_code != case.status:
        problems.append(f"status {response.status_code}, expected {case.status}")
    if case.says.lower() not in response.text.lower():
        problems.append(f"does not say {case.says!r}")
    if len(response.content) > LONGEST_ANSWER:
        problems.append(f"{len(response.content)} bytes long")
    if sent.seconds > REFUSAL_S:
        problems.append(f"took {sent.seconds:.1f} s")
    return f"{case.name}: {'; '.join(problems)}: {response.text[:300]}" if problems else ""


# --- the model servers --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["kserve", "bentoml"])
def model_server(request: pytest.FixtureRequest, limited_servers: LimitedServers) -> ServerProcess:
    """A server with 64 KiB bodies and 16 entities per request (shared with the schema-fuzz suite)."""
    return limited_servers.get(request.param)


def refusals_counted(server: ServerProcess) -> float:
    """The 4xx answers the server's metrics counted, whichever layer refused (body limit, routing, predictions)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("mlplatform_serving_error_responses_total{") and 'code="4' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_model_servers_answer_every_bad_request_with_a_4xx(
    model_server: ServerProcess, served_world: ServedWorld
) -> None:
    cases = ENTITY_ROUTE + (KSERVE_ROUTES if model_server.kind == "kserve" else BENTOML_ROUTES)
    wrong = []
    with httpx.Client(timeout=30) as client:
        for case in cases:
            path = case.path.replace("@V1", model_server.predict_path()).replace("@M", MODEL)
            body = case.body.replace(b"@F", model_server.entities_field.encode()).replace(b"@M", MODEL.encode())
            counted_before = refusals_counted(model_server)
            wrong.append(check_answer(case, send(client, model_server.url, case, path, body, {})))
            if refusals_counted(model_server) != counted_before + 1:
                wrong.append(f"{case.name}: not counted in mlplatform_serving_error_responses_total")
        failures = [problem for problem in wrong if problem]
        assert not failures, "\n".join(failures)
        good = {"customer_id": served_world.customers[0], "amount": 3.0}
        began = time.monotonic()
        response = model_server.predict(client, [good])
        assert response.status_code == 200 and time.monotonic() - began < GOOD_ANSWER_S, response.text
        if model_server.kind == "kserve":  # v2 still answers too (the model was not unloaded)
            v2 = client.post(
                model_server.url + V2.replace("@M", MODEL),
                content=v2_body(V2_KEY, V2_AMOUNT),
                headers={"content-type": "application/json"},
            )
            assert v2.status_code == 200, v2.text


# --- the platform API, UI and webhook -----------------------------------------------------------------------------


@dataclass
class LiveApi:
    url: str
    world: World
    settings: Settings


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    # Uploads limited to 8 MiB, so the oversized one below stays small enough to send quickly.
    settings = embedded_settings(tmp_path_factory.mktemp("api") / "state", api={"max_upload_mb": 8})
    world = make_world(settings)
    with serving_in_thread(world.client.app) as url:
        yield LiveApi(url, world, settings)


TRAIN = f"/api/v1/models/{API_MODEL}/training-runs"
PROMOTE = f"/api/v1/models/{API_MODEL}/promote"
WEBHOOK = "/api/v1/alerts/alertmanager"
MIB = 1024 * 1024


def reason(text: str) -> bytes:
    return json.dumps({"reason": text}).encode()


API_CASES = [
    Bad("empty body", 422, "body: Field required", path=TRAIN),
    Bad("not json", 422, "JSON decode error", b"{oops", path=TRAIN),
    Bad("not utf-8", 422, "not UTF-8", b'{"reason": "' + NOT_UTF8 + b'"}', path=TRAIN),
    Bad("deep nesting", 422, "nested too deeply", DEEP, path=TRAIN),
    Bad("huge integer", 422, "out of range", b'{"reason": "r", "window_days": ' + HUGE_INT + b"}", path=TRAIN),
    Bad("float beyond range", 422, "body.window_days", b'{"reason": "r", "window_days": 1e400}', path=TRAIN),
    Bad(
        "NaN override", 422, "learning_rate", b'{"reason": "r", "estimator_params": {"learning_rate": NaN}}', path=TRAIN
    ),
    Bad("Infinity", 422, "finite", b'{"reason": "r", "window_days": Infinity}', path=TRAIN),
    Bad(
        "override beyond its bound",
        422,
        "max_iter",
        b'{"reason": "r", "estimator_params": {"max_iter": ' + str(10**12).encode() + b"}}",
        path=TRAIN,
    ),
    Bad(
        "override not listed",
        422,
        "estimator_params",
        b'{"reason": "r", "estimator_params": {"n_jobs": 64}}',
        path=TRAIN,
    ),
    Bad("wrong type", 422, "body.reason", b'{"reason": ["r"]}', path=TRAIN),
    Bad("reason past its limit", 422, "at most 500 characters", reason("r" * 100_000), path=TRAIN),
    Bad("blank reason", 422, "body.reason", reason("\u2003\u3000"), path=TRAIN),
    Bad("duplicate keys", 422, "body.reason", b'{"reason": "r", "reason": ""}', path=TRAIN),
    Bad("unknown field", 422, "body.evil: Extra inputs", b'{"reason": "r", "evil": 1}', path=TRAIN),
    Bad("wrong content type", 422, "body", b'{"reason": "r"}', path=TRAIN, content_type="text/plain"),
    Bad("body too large (Content-Length)", 413, "exceed the limit", reason("r" * (2 * MIB)), path=TRAIN),
    Bad("body too large (chunked)", 413, "exceeds the limit", reason("r" * (2 * MIB)), path=TRAIN, chunked=True),
    Bad("version beyond range", 422, "body.version", b'{"version": 99999999999999999999999}', path=PROMOTE),
    Bad("negative version", 422, "body.version", b'{"version": -1}', path=PROMOTE),
    Bad("viewer trains", 403, "needs the data-scientist role", reason("r"), path=TRAIN, role="viewer"),
    Bad(
        "data scientist promotes",
        403,
        "needs the approver role",
        b'{"version": 1}',
        path=PROMOTE,
        role="data-scientist",
    ),
    Bad(
        "approver creates an admin",
        403,
        "needs the admin role",
        json.dumps({"username": "mallory", "role": "admin", "password": "p" * 20}).encode(),
        path="/api/v1/users",
        role="approver",
    ),
    Bad(
        "approver overrides the gate",
        403,
        "admin",
        b'{"version": 3, "override": true, "reason": "r"}',
        path=PROMOTE,
        role="approver",
    ),
    Bad("unauthenticated with a body", 401, "authentication required", reason("r" * 500_000), path=TRAIN, role=None),
    Bad(
        "bad token",
        401,
        "unknown, expired or revoked",
        reason("r"),
        path=TRAIN,
        role=None,
        headers={"authorization": "Bearer mlp_" + "x" * 40},
    ),
    Bad(
        "username past its limit",
        422,
        "body.username",
        json.dumps({"username": "u" * 100_000, "password": "p"}).encode(),
        path="/api/v1/session",
        role=None,
    ),
    Bad(
        "token name past its limit",
        422,
        "body.name",
        json.dumps({"name": "n" * 10_000}).encode(),
        path="/api/v1/tokens",
    ),
    Bad(
        "token lifetime beyond range",
        422,
        "body.ttl_days",
        b'{"name": "t", "ttl_days": ' + HUGE_INT[:40] + b"}",
        path="/api/v1/tokens",
    ),
    Bad(
        "unknown role", 422, "body.role", json.dumps({"username": "bob", "role": "root"}).encode(), path="/api/v1/users"
    ),
    Bad(
        "canary beyond range",
        422,
        "body.percent",
        b'{"percent": 1e400}',
        path=f"/api/v1/deployments/{API_MODEL}/canary",
        method="PUT",
    ),
    Bad(
        "port beyond range",
        422,
        "body.port",
        f'{{"model": "{API_MODEL}", "port": {2**70}}}'.encode(),
        path="/api/v1/deployments",
    ),
    Bad("token id beyond int64", 422, "path.token_id", path="/api/v1/tokens/" + "9" * 30, method="DELETE"),
    Bad("negative token id", 422, "path.token_id", path="/api/v1/tokens/-1", method="DELETE"),
    Bad("traversal in a name", 404, "Not Found", path="/api/v1/models/..%2F..%2Fetc%2Fpasswd", method="GET"),
    Bad("huge model name", 422, "path.name", path="/api/v1/models/" + "a" * 5000, method="GET"),
    Bad(
        "version beyond range in path",
        422,
        "path.version",
        path=f"/api/v1/models/{API_MODEL}/versions/" + "9" * 40,
        method="GET",
    ),
    Bad(
        "drift check beyond range",
        422,
        "path.check_id",
        path=f"/api/v1/models/{API_MODEL}/drift/" + "9" * 30 + "/report",
        method="GET",
    ),
    Bad("page size beyond range", 422, "query.limit", path="/api/v1/audit?limit=100000", method="GET"),
    Bad("negative page size", 422, "query.limit", path="/api/v1/audit?limit=-5", method="GET"),
    Bad("page cursor beyond int64", 422, "query.before_id", path="/api/v1/audit?before_id=" + "9" * 40, method="GET"),
    Bad("filter past its limit", 422, "query.actor", path="/api/v1/audit?actor=" + "a" * 5000, method="GET"),
    Bad(
        "compare beyond range",
        422,
        "query.b",
        path=f"/api/v1/models/{API_MODEL}/compare?a=1&b=" + "9" * 40,
        method="GET",
    ),
    # The new-model upload (multipart) and its limits.
    Bad(
        "upload without Content-Length",
        411,
        "Content-Length",
        b"--x--\r\n",
        path="/api/v1/models",
        content_type="multipart/form-data; boundary=x",
        chunked=True,
    ),
    Bad(
        "upload past its limit",
        413,
        "max_upload_mb",
        b"--x\r\n" + b"u" * (9 * MIB),
        path="/api/v1/models",
        content_type="multipart/form-data; boundary=x",
    ),
    Bad("upload not multipart", 415, "multipart", b'{"name": "m"}', path="/api/v1/models"),
    Bad(
        "upload without files",
        422,
        "entity_key: Field required",
        b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nnew_model\r\n--x--\r\n',
        path="/api/v1/models",
        content_type="multipart/form-data; boundary=x",
    ),
    # The Alertmanager webhook (its own token, its own 4 MiB limit, 400 for what is not a payload).
    Bad("webhook without token", 401, "webhook token", b"{}", path=WEBHOOK, role=None),
    Bad("webhook with a user token", 401, "webhook token", b"{}", path=WEBHOOK),
    Bad("webhook empty body", 400, "not valid JSON", path=WEBHOOK, role="webhook"),
    Bad("webhook not json", 400, "not valid JSON", b"{oops", path=WEBHOOK, role="webhook"),
    Bad("webhook not utf-8", 400, "not UTF-8", b'{"version": "' + NOT_UTF8 + b'"}', path=WEBHOOK, role="webhook"),
    Bad("webhook deep nesting", 400, "nested too deeply", DEEP, path=WEBHOOK, role="webhook"),
    Bad("webhook huge integer", 400, "out of range", b'{"version": ' + HUGE_INT + b"}", path=WEBHOOK, role="webhook"),
    Bad("webhook NaN", 400, "status", b'{"version": "4", "status": NaN, "alerts": []}', path=WEBHOOK, role="webhook"),
    Bad(
        "webhook wrong types",
        400,
        "alerts",
        b'{"version": "4", "status": "firing", "alerts": "x"}',
        path=WEBHOOK,
        role="webhook",
    ),
    Bad("webhook too large (Content-Length)", 413, "limit", b"x" * (5 * MIB), path=WEBHOOK, role="webhook"),
    Bad(
        "webhook too large (chunked)",
        413,
        "more than 4194304 bytes",
        b"x" * (5 * MIB),
        path=WEBHOOK,
        role="webhook",
        chunked=True,
    ),
    # UI forms.
    Bad(
        "login form without CSRF",
        403,
        "CSRF",
        b"username=admin&password=x",
        path="/login",
        role=None,
        content_type="application/x-www-form-urlencoded",
    ),
    Bad(
        "form by an anonymous caller",
        303,
        "",
        b"reason=r",
        path=f"/models/{API_MODEL}/train",
        role=None,
        content_type="application/x-www-form-urlencoded",
    ),
]


def api_headers(live: LiveApi, case: Bad) -> dict[str, str]:
    if case.role == "webhook":
        return {"authorization": f"Bearer {webhook_token(live.settings)}"}
    return live.world.as_role(case.role) if case.role else {}


def api_refusals(live: LiveApi) -> float:
    """Every 4xx the API's request metrics counted."""
    text = httpx.get(live.url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlplatform_api_requests_total{") and 'status="4' in line
    )


def test_api_answers_every_bad_request_with_a_4xx(live_api: LiveApi) -> None:
    counted_before = api_refusals(live_api)
    wrong = []
    with httpx.Client(timeout=60) as client:
        for case in API_CASES:
            sent = send(client, live_api.url, case, case.path, case.body, api_headers(live_api, case))
            wrong.append(check_answer(case, sent))
    failures = [problem for problem in wrong if problem]
    assert not failures, "\n".join(failures)
    refused = sum(1 for case in API_CASES if 400 <= case.status < 500)
    assert api_refusals(live_api) - counted_before == refused
    began = time.monotonic()
    response = httpx.get(f"{live_api.url}/api/v1/models/{API_MODEL}", headers=live_api.world.as_role("viewer"))
    assert response.status_code == 200 and time.monotonic() - began < GOOD_ANSWER_S, response.text


def test_ui_forms_refuse_a_session_without_its_csrf_token(live_api: LiveApi) -> None:
    """A logged-in browser session posting a form without the CSRF field is a 403, and nothing starts."""
    logged_in(live_api.world, "admin")  # the in-process client's session, sent to the live server below
    cookies = dict(live_api.world.client.cookies)
    runs_before = len(live_api.world.orchestrator.triggered)
    for path, form in ((f"/models/{API_MODEL}/train", "reason=r"), (f"/models/{API_MODEL}/promote", "version=1")):
        response = httpx.post(
            live_api.url + path,
            content=form,
            headers={"content-type": "application/x-www-form-urlencoded"},
            cookies=cookies,
            timeout=10,
        )
        assert response.status_code == 403, (path, response.status_code, response.text[:300])
        assert "CSRF" in response.text
    assert len(live_api.world.orchestrator.triggered) == runs_before


MULTIPART = "multipart/form-data; boundary=x"
# The first bytes of a body that is well-formed so far: a server that reads bodies first waits for the rest.
BODY_STARTS = {
    "application/json": b'{"reason": "',
    MULTIPART: b'--x\r\nContent-Disposition: form-data; name="features"; filename="f.parquet"\r\n\r\nPAR1',
}


def unread_body_answer(
    url: str, path: str, declared: int, headers: dict[str, str], content_type: str = "application/json"
) -> tuple[int, float]:
    """POST declaring a ``declared``-byte body but sending only its first bytes: the status the server answers
    without waiting for the rest, and how long it took (a server that reads the body first never answers)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {declared}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + BODY_STARTS[content_type])
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            return 0, time.monotonic() - began
    return int(answer.split(b" ", 2)[1]), time.monotonic() - began


@pytest.mark.parametrize(
    ("path", "credential", "content_type", "status"),
    [
        (TRAIN, None, "application/json", 401),
        (TRAIN, "Bearer mlp_unknown_token_of_forty_characters_xx", "application/json", 401),
        (WEBHOOK, None, "application/json", 401),
        ("/api/v1/models", None, MULTIPART, 401),
        ("/new-model", None, MULTIPART, 303),  # the UI's upload form: to the login page
    ],
)
def test_unauthenticated_requests_are_answered_before_their_body_is_read(
    live_api: LiveApi, path: str, credential: str | None, content_type: str, status: int
) -> None:
    headers = {"Authorization": credential} if credential else {}
    answered, seconds = unread_body_answer(live_api.url, path, 900_000, headers, content_type)
    assert answered == status and seconds < GOOD_ANSWER_S, f"answered {answered} after {seconds:.1f} s"


def test_an_upload_past_its_limit_is_refused_before_its_body_is_read(live_api: LiveApi) -> None:
    """An upload's declared size is refused against ``api.max_upload_mb`` before its body is read."""
    limit = live_api.settings.api.max_upload_mb * MIB
    status, seconds = unread_body_answer(live_api.url, "/api/v1/models", limit + 1, live_api.world.as_role("admin"))
    assert status == 413 and seconds < GOOD_ANSWER_S
