"""The platform API in-process (TestClient) with the sqlite platform DB and fakes for MLflow, Airflow and the
deployer: authentication, roles, CSRF, rate limiting, problem details, validation and the audit trail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlplatform.config import Settings
from mlplatform.operations.schemas import NOT_BLANK
from mlplatform.store import PlatformStore
from mlplatform.store.auth import ROLES, AuthRepository, AuthStoreError
from mlplatform.store.bootstrap import bootstrap_admin
from mlplatform.store.models import ApiTokenRow
from tests.support.api_world import MODEL, PASSWORD, World, cheap_hash, make_world, user_for
from tests.support.fakes.deployer import FakeDeployer
from tests.support.fakes.registry import version_info

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


# Every mutating endpoint, a valid body, and the least role that may call it.
MUTATIONS: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    (
        "train",
        "POST",
        f"/api/v1/models/{MODEL}/training-runs",
        {"reason": "weekly", "window_days": 30},
        "data-scientist",
    ),
    ("promote", "POST", f"/api/v1/models/{MODEL}/promote", {"version": 4, "reason": "beats v2"}, "approver"),
    (
        "override",
        "POST",
        f"/api/v1/models/{MODEL}/promote",
        {"version": 3, "override": True, "reason": "hotfix"},
        "admin",
    ),
    ("rollback", "POST", f"/api/v1/models/{MODEL}/rollback", {"reason": "v2 misbehaves"}, "approver"),
    ("deploy", "POST", "/api/v1/deployments", {"model": MODEL, "backend": "kserve"}, "approver"),
    ("undeploy", "DELETE", f"/api/v1/deployments/{MODEL}", None, "approver"),
    ("canary", "PUT", f"/api/v1/deployments/{MODEL}/canary", {"percent": 10}, "approver"),
    ("create-user", "POST", "/api/v1/users", {"username": "carol", "role": "viewer"}, "admin"),
    ("update-user", "PATCH", "/api/v1/users/viewer", {"role": "data-scientist"}, "admin"),
    ("create-token", "POST", "/api/v1/tokens", {"name": "laptop"}, "viewer"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("case", "method", "path", "body", "needed"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_authorization_matrix(
    world: World, role: str, case: str, method: str, path: str, body: dict[str, Any] | None, needed: str
) -> None:
    if case == "canary":
        world.deployer.served[MODEL] = "kserve"
    response = world.client.request(method, path, json=body, headers=world.as_role(role))
    allowed = ROLES.index(role) >= ROLES.index(needed)
    [event] = world.audit(limit=1)
    if allowed:
        assert response.status_code < 300, response.text
        assert event.result.startswith("ok") and event.actor == user_for(role)
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert (event.result, event.actor, event.client) == ("denied", user_for(role), "203.0.113.7")


def test_unauthenticated_mutation_is_401_and_audited(world: World) -> None:
    response = world.client.post(f"/api/v1/models/{MODEL}/rollback", json={"reason": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    [event] = world.audit(limit=1)
    assert (event.actor, event.action, event.target, event.result) == (
        "anonymous",
        "model.rollback",
        MODEL,
        "unauthenticated",
    )


@pytest.mark.parametrize(
    ("status", "method", "path", "role", "body"),
    [
        (401, "GET", f"/api/v1/models/{MODEL}", None, None),
        (403, "GET", "/api/v1/users", "approver", None),
        (404, "GET", "/api/v1/models/no_such_model", "viewer", None),
        (404, "GET", f"/api/v1/models/{MODEL}/versions/99", "viewer", None),
        (404, "GET", "/api/v1/nowhere", "viewer", None),
        (422, "GET", "/api/v1/models/Bad-Name!", "viewer", None),
        (422, "GET", f"/api/v1/models/{MODEL}/versions/0", "viewer", None),
        (422, "POST", f"/api/v1/models/{MODEL}/promote", "approver", {"version": -1}),
    ],
)
def test_every_error_is_a_problem_document(
    world: World, status: int, method: str, path: str, role: str | None, body: dict[str, Any] | None
) -> None:
    headers = world.as_role(role) if role else {}
    response = world.client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) >= PROBLEM_KEYS
    assert problem["status"] == status and problem["instance"] == path.split("?")[0]
    if status == 422:
        assert problem["errors"] and all({"loc", "msg"} <= set(error) for error in problem["errors"])


def test_validation_errors_never_echo_input(world: World) -> None:
    response = world.client.post(
        "/api/v1/users",
        json={"username": "x", "role": "viewer", "password": "hunter2-short"},
        headers=world.as_role("admin"),
    )
    assert response.status_code == 422
    assert "hunter2" not in response.text


def test_expired_and_revoked_tokens_are_rejected(world: World) -> None:
    auth = world.services.auth
    expired = auth.create_token("admin", "old", ttl_days=1)
    with world.services.store.session() as session, session.begin():
        row = session.get(ApiTokenRow, expired.token.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    revoked = auth.create_token("admin", "gone", ttl_days=1)
    response = world.client.delete(f"/api/v1/tokens/{revoked.token.id}", headers=world.as_role("admin"))
    assert response.status_code == 200 and response.json()["revoked_at"]
    for secret in (expired.secret, revoked.secret, "mlp_never-issued", "not-even-a-token"):
        response = world.client.get("/api/v1/session", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 401, secret
        assert response.json()["type"] == "/problems/unauthenticated"


def test_a_scoped_token_holds_only_its_role(world: World) -> None:
    issued = world.services.auth.create_token("admin", "readonly", ttl_days=1, role="viewer")
    response = world.client.post(
        "/api/v1/users",
        json={"username": "dave", "role": "viewer"},
        headers={"Authorization": f"Bearer {issued.secret}"},
    )
    assert response.status_code == 403


def test_token_is_shown_once_and_stored_hashed(world: World) -> None:
    created = world.client.post("/api/v1/tokens", json={"name": "ci", "ttl_days": 7}, headers=world.as_role("viewer"))
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = world.client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {secret}"})
    assert listed.status_code == 200 and secret not in listed.text
    assert {token["name"] for token in listed.json()} == {"test", "ci"}


def test_a_token_made_with_a_token_never_outlives_it_nor_its_revocation(world: World) -> None:
    """A leaked token must not be a way to mint credentials that survive its own expiry or revocation."""
    parent = world.services.auth.create_token("admin", "parent", ttl_days=2)

    def mint(secret: str, name: str) -> dict[str, Any]:
        response = world.client.post(
            "/api/v1/tokens", json={"name": name, "ttl_days": 365}, headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 201, response.text
        minted: dict[str, Any] = response.json()
        return minted

    child = mint(parent.secret, "child")
    grandchild = mint(child["token"], "grandchild")
    for minted in (child, grandchild):
        assert datetime.fromisoformat(minted["expires_at"]) <= parent.token.expires_at

    assert world.client.delete(f"/api/v1/tokens/{parent.token.id}", headers=world.as_role("admin")).status_code == 200
    for secret in (parent.secret, child["token"], grandchild["token"]):
        response = world.client.get("/api/v1/session", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 401
    listed = {token.name: token for token in world.services.auth.list_tokens("admin")}
    assert all(listed[name].revoked_at is not None for name in ("parent", "child", "grandchild"))
    assert listed["test"].revoked_at is None  # other tokens of the same user are untouched


def test_no_token_is_made_with_a_revoked_one(world: World) -> None:
    """The route's guard for a parent revoked between authentication and creation."""
    parent = world.services.auth.create_token("admin", "parent", ttl_days=2)
    world.services.auth.revoke_token(parent.token.id)
    with pytest.raises(AuthStoreError, match="revoked"):
        world.services.auth.create_token("admin", "child", ttl_days=1, parent_id=parent.token.id)


def login(world: World, username: str, password: str = PASSWORD) -> Any:
    return world.client.post("/api/v1/session", json={"username": username, "password": password})


def test_session_cookie_is_http_only_and_same_site_lax(world: World) -> None:
    response = login(world, "approver")
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert world.client.get("/api/v1/session").json()["username"] == "approver"


def test_secure_cookies_setting_marks_the_cookie_secure(settings: Settings) -> None:
    world = make_world(settings.model_copy(update={"api": settings.api.model_copy(update={"secure_cookies": True})}))
    assert "secure" in login(world, "viewer").headers["set-cookie"].lower()


def test_cookie_session_posts_need_the_csrf_token(world: World) -> None:
    csrf = login(world, "admin").json()["csrf_token"]
    body = {"username": "erin", "role": "viewer"}
    missing = world.client.post("/api/v1/users", json=body)
    assert missing.status_code == 403 and missing.json()["type"] == "/problems/csrf"
    wrong_form = world.client.post("/api/v1/users", data={"csrf_token": "forged", **body})
    assert wrong_form.status_code == 403 and wrong_form.json()["type"] == "/problems/csrf"
    [refusal] = world.audit(result="denied", action="user.create")  # the same refusal again is counted on its row
    assert "CSRF" in refusal.reason and refusal.detail["repeats"] == 1
    accepted = world.client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 201
    # A Bearer token is no ambient credential: no CSRF token needed.
    world.client.cookies.clear()
    assert world.client.delete("/api/v1/tokens/1", headers=world.as_role("admin")).status_code == 200


def test_a_forged_session_cookie_is_anonymous(world: World) -> None:
    world.client.cookies.set("mlp_session", "eyJ1IjoxLCJjIjoieCJ9.forged.sig")
    assert world.client.get("/api/v1/session").status_code == 401


def test_logout_ends_the_session(world: World) -> None:
    csrf = login(world, "viewer").json()["csrf_token"]
    assert world.client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert world.client.get("/api/v1/session").status_code == 401


def test_login_is_rate_limited_per_user_and_client(world: World) -> None:
    limit = world.services.settings.api.login_attempts_per_minute
    for _ in range(limit):
        assert login(world, "approver", "wrong password!").status_code == 401
    blocked = login(world, "approver")  # even the right password waits now
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert blocked.json()["type"] == "/problems/rate-limited"
    assert login(world, "viewer").status_code == 200  # another user is unaffected
    results = [event.result for event in world.audit(action="session.login", actor="approver")]
    assert results == ["denied"] + ["failed"] * limit
    assert 'mlplatform_api_login_failures_total{reason="rate_limited"} 1.0' in world.client.get("/metrics").text


def test_promote_through_the_gate(world: World) -> None:
    response = world.client.post(
        f"/api/v1/models/{MODEL}/promote", json={"version": 4}, headers=world.as_role("approver")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["promoted"] and body["previous_champion"] == "2" and body["gate"]["passed"]
    assert body["gate"]["champion_metrics_source"] == "champion's own run metrics"
    assert world.registry.aliases[MODEL]["champion"] == "4"
    [event] = world.audit(action="model.promote")
    assert (event.from_value, event.to_value, event.result, event.target) == ("2", "4", "ok", f"{MODEL}/v4")


def test_the_gate_prefers_the_champion_score_on_the_challengers_holdout(world: World) -> None:
    gate = '{"passed": false, "reasons": [], "challenger_score": 0.97, "champion_score": 0.99, "champion_version": "2"}'
    world.registry.models[MODEL][3] = version_info(4, 0.97, 0.7, {"mlplatform.gate": gate})
    response = world.client.post(
        f"/api/v1/models/{MODEL}/promote", json={"version": 4}, headers=world.as_role("approver")
    )
    assert response.status_code == 409
    assert "does not beat champion v2 (0.9900)" in response.json()["detail"]


def test_gate_refusal_is_409_audited_and_overridable_by_admins_with_a_reason(world: World) -> None:
    refused = world.client.post(
        f"/api/v1/models/{MODEL}/promote", json={"version": 3}, headers=world.as_role("approver")
    )
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/gate-refused"
    assert any("below the minimum" in reason for reason in refused.json()["reasons"])
    assert world.audit(limit=1)[0].result == "refused by gate"
    assert world.registry.aliases[MODEL]["champion"] == "2"
    no_reason = world.client.post(
        f"/api/v1/models/{MODEL}/promote", json={"version": 3, "override": True}, headers=world.as_role("admin")
    )
    assert no_reason.status_code == 422
    forced = world.client.post(
        f"/api/v1/models/{MODEL}/promote",
        json={"version": 3, "override": True, "reason": "incident 42"},
        headers=world.as_role("admin"),
    )
    assert forced.status_code == 200 and forced.json()["overridden"]
    event = world.audit(limit=1)[0]
    assert (event.result, event.reason, event.actor) == ("ok (gate overridden)", "incident 42", "admin")


def test_rollback_moves_champion_to_the_previous_holder(world: World) -> None:
    response = world.client.post(
        f"/api/v1/models/{MODEL}/rollback", json={"reason": "latency"}, headers=world.as_role("approver")
    )
    assert response.status_code == 200
    assert response.json() == {"model": MODEL, "from_version": "2", "to_version": "1"}
    history = world.services.store.alias_history(MODEL, "champion")
    assert (history[-1].from_version, history[-1].to_version, history[-1].actor) == ("2", "1", "approver")
    # v1 took over from nobody: nothing further back.
    again = world.client.post(
        f"/api/v1/models/{MODEL}/rollback", json={"reason": "again"}, headers=world.as_role("approver")
    )
    assert again.status_code == 409


def test_train_passes_overrides_as_dag_conf(world: World) -> None:
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs",
        json={
            "estimator_params": {"max_depth": 4, "learning_rate": 0.1},
            "window_days": 30,
            "reason": "tune",
            "promote": False,
        },
        headers=world.as_role("data-scientist"),
    )
    assert response.status_code == 202
    assert world.orchestrator.triggered == [
        (
            "train_fraud_detector",
            "manual__1",
            {
                "estimator_params": {"max_depth": 4, "learning_rate": 0.1},
                "promote": False,
                "reason": "tune",
                "requested_by": "data_scientist",
                "window_days": 30,
            },
        )
    ]
    runs = world.client.get(f"/api/v1/models/{MODEL}/training-runs", headers=world.as_role("viewer"))
    assert [run["run_id"] for run in runs.json()] == ["manual__1"]
    assert (
        world.client.get(f"/api/v1/models/{MODEL}/training-runs/manual__9", headers=world.as_role("viewer")).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_iter": 10**12}, "max_iter: must be between 1 and 1000, got 1000000000000"),
        ({"max_iter": 40.5}, "max_iter: must be a whole number, got 40.5"),
        ({"loss": "squared_error"}, "loss: must be one of ['log_loss'], got 'squared_error'"),
        ({"random_state": 1}, "random_state: not overridable for fraud_detector (overridable: class_weight,"),
    ],
    ids=["beyond-the-bound", "not-whole", "not-a-choice", "not-listed"],
)
def test_overrides_outside_the_specs_overridable_bounds_are_422_and_start_nothing(
    world: World, overrides: dict[str, Any], message: str
) -> None:
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs",
        json={"estimator_params": overrides, "reason": "tune"},
        headers=world.as_role("data-scientist"),
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert [error["loc"][-1] for error in response.json()["errors"]] == list(overrides)
    assert world.orchestrator.triggered == []
    assert (
        world.client.get("/api/v1/audit?action=training.trigger", headers=world.as_role("admin")).json()[0]["result"]
        == "failed"
    )


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_override_is_422(world: World, number: bytes) -> None:
    """Python's JSON parser takes these tokens; no estimator parameter means them."""
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs",
        content=b'{"reason": "tune", "estimator_params": {"learning_rate": ' + number + b"}}",
        headers={**world.as_role("data-scientist"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert world.orchestrator.triggered == []


def test_a_dag_an_operator_paused_is_a_409_and_stays_paused(world: World) -> None:
    world.orchestrator.paused.add("train_fraud_detector")
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs", json={"reason": "tune"}, headers=world.as_role("data-scientist")
    )
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "/problems/dag-paused" and "paused in Airflow" in response.json()["detail"]
    assert world.orchestrator.triggered == [] and world.orchestrator.paused == {"train_fraud_detector"}


def test_a_model_that_does_not_validate_starts_no_training_run(world: World) -> None:
    """Fail fast: the validation a training run would fail on refuses the trigger before Airflow sees it."""
    from mlplatform.onboarding.validate import ValidationReport

    failing = ValidationReport(MODEL)
    failing.add("estimator", False, "cannot import 'sklearn.ensemble.RandomForrestRegressor'")
    world.services.model_validator = lambda _name: failing
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs", json={"reason": "try"}, headers=world.as_role("data-scientist")
    )
    assert response.status_code == 422
    assert "RandomForrestRegressor" in response.json()["detail"]
    assert world.orchestrator.triggered == []


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "x", "estimator_params": {"nested": {"a": 1}}},
        {"reason": "x", "estimator_params": {f"p{i}": i for i in range(33)}},
        {"reason": "x", "estimator_params": {"bad key": 1}},
        {"reason": "x", "estimator_params": {"s": "x" * 257}},
        {"reason": "x", "estimator_params": [1, 2]},
        {"reason": "x", "window_days": 0},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"reason": "x", "surprise": 1},
    ],
)
def test_training_input_is_validated(world: World, body: dict[str, Any]) -> None:
    response = world.client.post(
        f"/api/v1/models/{MODEL}/training-runs", json=body, headers=world.as_role("data-scientist")
    )
    assert response.status_code == 422, body
    assert world.orchestrator.triggered == []


def test_unknown_model_is_404_for_mutations_too(world: World) -> None:
    response = world.client.post(
        "/api/v1/models/no_such_model/training-runs", json={"reason": "x"}, headers=world.as_role("admin")
    )
    assert response.status_code == 404 and response.json()["type"] == "/problems/unknown-model"


@pytest.mark.parametrize("percent", [-1, 101])
def test_canary_percent_is_bounded(world: World, percent: int) -> None:
    response = world.client.put(
        f"/api/v1/deployments/{MODEL}/canary", json={"percent": percent}, headers=world.as_role("approver")
    )
    assert response.status_code == 422


@pytest.mark.parametrize("port", [80, 1023, 65536, "next"])
def test_deploy_port_is_bounded_and_named(world: World, port: object) -> None:
    response = world.client.post(
        "/api/v1/deployments", json={"model": MODEL, "port": port}, headers=world.as_role("approver")
    )
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["errors"]] == ["port"]


def test_deploy_passes_the_requested_port_to_the_deployer(world: World) -> None:
    headers = world.as_role("approver")
    response = world.client.post("/api/v1/deployments", json={"model": MODEL, "port": 9301}, headers=headers)
    assert response.status_code == 201
    deployer = world.services.deployer
    assert isinstance(deployer, FakeDeployer) and deployer.ports == {MODEL: 9301}


def test_deploy_lifecycle_is_recorded(world: World) -> None:
    headers = world.as_role("approver")
    assert world.client.post("/api/v1/deployments", json={"model": MODEL}, headers=headers).status_code == 201
    conflict = world.client.post("/api/v1/deployments", json={"model": MODEL, "backend": "kserve"}, headers=headers)
    assert conflict.status_code == 409 and world.audit(limit=1)[0].result == "failed"
    world.client.put(f"/api/v1/deployments/{MODEL}/canary", json={"percent": 20}, headers=headers)
    [listed] = world.client.get("/api/v1/deployments", headers=world.as_role("viewer")).json()
    assert (listed["backend"], listed["canary_percent"], listed["deployed_by"]) == ("bentoml", 20, "approver")
    assert world.client.delete(f"/api/v1/deployments/{MODEL}", headers=headers).json()["was_running"]
    assert world.services.deployments.list() == []


def test_compare_puts_metrics_side_by_side(world: World) -> None:
    response = world.client.get(f"/api/v1/models/{MODEL}/compare?a=1&b=2", headers=world.as_role("data-scientist"))
    assert response.status_code == 200
    rows = {row["metric"]: row for row in response.json()["metrics"]}
    assert rows["roc_auc"]["a"] == 0.90 and rows["roc_auc"]["b"] == 0.95
    assert rows["roc_auc"]["difference"] == pytest.approx(0.05)
    assert (
        world.client.get(f"/api/v1/models/{MODEL}/compare?a=1&b=2", headers=world.as_role("viewer")).status_code == 403
    )


def test_reads_and_audit_log(world: World) -> None:
    viewer = world.as_role("viewer")
    assert [m["name"] for m in world.client.get("/api/v1/models", headers=viewer).json()] == [MODEL]
    assert world.client.get(f"/api/v1/models/{MODEL}", headers=viewer).json()["aliases"] == {"champion": "2"}
    version = world.client.get(f"/api/v1/models/{MODEL}/versions/2", headers=viewer).json()
    assert version["aliases"] == ["champion"] and version["lineage"] == {"spec_fingerprint": "abc"}
    world.client.post("/api/v1/users", json={"username": "frank", "role": "viewer"}, headers=viewer)
    events = world.client.get("/api/v1/audit?action=user.create", headers=viewer).json()
    assert [(e["actor"], e["action"], e["result"], e["client"]) for e in events] == [
        ("viewer", "user.create", "denied", "203.0.113.7")
    ]


def test_operations_endpoints_and_openapi(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/readyz").json() == {"status": "ready"}
    world.client.get(f"/api/v1/models/{MODEL}", headers=world.as_role("viewer"))
    metrics = world.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'mlplatform_api_requests_total{method="GET",route="/api/v1/models/{name}",status="200"} 1.0' in metrics.text
    assert "python_gc_objects_collected_total" not in metrics.text  # own registry, not the global one
    paths = world.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/models/{name}/promote", "/api/v1/deployments", "/api/v1/audit", "/api/v1/session"} <= set(paths)


def test_bootstrap_generates_a_one_time_admin_password(settings: Settings) -> None:
    auth = AuthRepository(PlatformStore.connect(settings.db_url), cheap_hash())
    password = bootstrap_admin(settings, auth)
    assert password and len(password) >= 20
    assert auth.verify_password("admin", password) is not None
    assert bootstrap_admin(settings, auth) is None  # once only


def test_bootstrap_uses_the_configured_password(settings: Settings) -> None:
    from pydantic import SecretStr

    api = settings.api.model_copy(update={"admin_username": "root", "admin_password": SecretStr("configured-pass-1")})
    settings = settings.model_copy(update={"api": api})
    auth = AuthRepository(PlatformStore.connect(settings.db_url), cheap_hash())
    assert bootstrap_admin(settings, auth) is None
    assert auth.verify_password("root", "configured-pass-1") is not None


BEYOND_INT64 = 2**63  # one past the largest row id sqlite and PostgreSQL can hold


@pytest.mark.parametrize(
    ("method", "path", "parameter"),
    [
        ("GET", f"/api/v1/audit?before_id={BEYOND_INT64}", "before_id"),
        ("GET", f"/api/v1/models/{MODEL}/drift?before_id={BEYOND_INT64}", "before_id"),
        ("DELETE", f"/api/v1/tokens/{BEYOND_INT64}", "token_id"),
    ],
    ids=["audit-page", "drift-page", "revoke-token"],
)
def test_ids_beyond_64_bits_are_422_naming_the_parameter(world: World, method: str, path: str, parameter: str) -> None:
    """They used to reach the database driver, which cannot bind them: a 500."""
    response = world.client.request(method, path, headers=world.as_role("admin"))
    assert response.status_code == 422, response.text
    assert [error["loc"][-1] for error in response.json()["errors"]] == [parameter]


def test_the_ui_audit_page_refuses_an_id_beyond_64_bits(world: World) -> None:
    response = world.client.get(f"/audit?before_id={BEYOND_INT64}", headers=world.as_role("admin"))
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("reason", "status"),
    [("\u0085", 422), ("\x1c\u00a0\ufeff", 422), ("a\u0085", 200), ("\u0085x\u0085", 200)],
    ids=["next-line-only", "separators-only", "text-then-next-line", "text-between"],
)
def test_a_reason_of_blanks_by_any_definition_is_refused_and_the_schema_says_so(
    world: World, reason: str, status: int
) -> None:
    """JSON Schema readers (ECMAScript regexes) and the server (Python's strip) disagree on what whitespace is; the
    published pattern asks for a character that is whitespace to neither, so a reason the schema admits is one the
    server keeps."""
    response = world.client.post(
        f"/api/v1/models/{MODEL}/rollback", json={"reason": reason}, headers=world.as_role("approver")
    )
    assert response.status_code == status, response.text
    schema = world.client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["RollbackRequest"]["properties"]["reason"]["pattern"] == NOT_BLANK


def test_every_character_the_reason_pattern_admits_survives_stripping() -> None:
    admitted = [chr(code) for code in range(0x10000) if re.fullmatch(NOT_BLANK, chr(code))]
    assert len(admitted) > 60_000
    assert all(character.strip() for character in admitted)


def test_a_body_past_the_limit_is_413_before_authentication(world: World) -> None:
    """No route reads it and no credential is checked: a 2 MiB body to a JSON route costs nothing but the 413."""
    oversized = b'{"username": "x", "role": "viewer", "padding": "' + b"x" * (2 << 20) + b'"}'
    for headers in ({}, world.as_role("admin")):
        response = world.client.post(
            "/api/v1/users", content=oversized, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/too-large" and "limit of 1048576" in response.json()["detail"]
    assert world.audit(action="user.create") == []  # refused before anything was attempted
    metrics = world.client.get("/metrics").text
    assert 'mlplatform_api_requests_total{method="POST",route="unmatched",status="413"} 2.0' in metrics


def test_a_streamed_body_is_cut_off_at_the_limit(world: World) -> None:
    def chunks() -> Any:
        yield b'{"username": "x", "role": "viewer", "padding": "'
        for _ in range(40):
            yield b"x" * (64 << 10)
        yield b'"}'

    response = world.client.post(
        "/api/v1/users", content=chunks(), headers={**world.as_role("admin"), "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "exceeds the limit of 1048576 bytes" in response.json()["detail"]


def test_routes_with_their_own_limit_take_larger_bodies(world: World) -> None:
    """The alert webhook reads up to 4 MiB itself: a 2 MiB payload reaches it (and is judged malformed there)."""
    from mlplatform.retraining.alertmanager import webhook_token

    payload = b'{"version": "4", "padding": "' + b"x" * (2 << 20) + b'"}'
    response = world.client.post(
        "/api/v1/alerts/alertmanager",
        content=payload,
        headers={
            "Authorization": f"Bearer {webhook_token(world.services.settings)}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400 and response.json()["type"] == "/problems/malformed-alert"
