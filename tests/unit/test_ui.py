"""The web UI in-process (TestClient) over the same fakes as the API tests: login, pages per role, every form's
outcome and refusal, CSRF, audit parity with the REST API, escaping, static files and security headers.

The real browser, MLflow and Airflow are exercised in tests/ui; these tests pin the rules quickly.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mlplatform.config import Settings
from mlplatform.monitoring import drift_check
from mlplatform.operations.services import ApiServices
from mlplatform.orchestration.airflow_client import DagRun
from mlplatform.registry.lineage import Lineage
from mlplatform.registry.mlflow_registry import RegistryUnavailableError
from mlplatform.store.drift import DriftCheck, DriftResults, FeatureDrift
from mlplatform.store.retrains import AlertRef
from mlplatform.ui import charts
from mlplatform.webapp import create_app
from tests.support.api_world import MODEL, PASSWORD, World, logged_in, make_world, ui_login
from tests.support.fakes.deployer import FakeDeployer
from tests.support.fakes.drift_check import FakeDriftCheck
from tests.support.fakes.registry import version_info


def post_form(world: World, path: str, csrf: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = world.client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=False)
    return response


def flashes_after(world: World, response: httpx.Response) -> str:
    """The page a form redirected to, with its flash message."""
    assert response.status_code == 303, response.text
    page: str = world.client.get(response.headers["location"]).text
    return page


# -------------------------------------------------------------------------------------------------------- login


def test_pages_need_a_session_and_come_back_after_login(world: World) -> None:
    response = world.client.get(f"/models/{MODEL}?version=2", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmodels%2Ffraud_detector%3Fversion%3D2"
    page = world.client.get(response.headers["location"])
    assert page.status_code == 200 and "mlp_login_csrf" in page.headers["set-cookie"]
    assert 'value="/models/fraud_detector?version=2"' in page.text and "Sign in with SSO" not in page.text
    logged = ui_login(world, "viewer", next="/models/fraud_detector?version=2")
    assert logged.headers["location"] == "/models/fraud_detector?version=2"
    session_cookie = next(c for c in logged.headers.get_list("set-cookie") if c.startswith("mlp_session="))
    assert "httponly" in session_cookie.lower() and "samesite=lax" in session_cookie.lower()
    [event] = world.audit(action="session.login", limit=1)
    assert (event.actor, event.result, event.client) == ("viewer", "ok", "203.0.113.7")


def test_login_page_for_a_signed_in_user_or_a_bad_token(world: World) -> None:
    bad_token = world.client.get("/login", headers={"Authorization": "Bearer nope"}, follow_redirects=False)
    assert bad_token.status_code == 200 and "Log in" in bad_token.text
    ui_login(world, "viewer")
    assert world.client.get("/login?next=/audit", follow_redirects=False).headers["location"] == "/audit"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(world: World, target: str) -> None:
    assert ui_login(world, "viewer", next=target).headers["location"] == "/"


def test_wrong_password_and_rate_limit_are_shown_and_audited(world: World) -> None:
    wrong = ui_login(world, "approver", password="not the password")
    assert wrong.status_code == 401 and "Unknown user or wrong password." in wrong.text
    for _ in range(world.services.settings.api.login_attempts_per_minute - 1):
        ui_login(world, "approver", password="not the password")
    blocked = ui_login(world, "approver")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "too many failed logins" in blocked.text
    results = [event.result for event in world.audit(action="session.login", actor="approver")]
    assert results[0] == "denied" and set(results[1:]) == {"failed"}


def test_login_form_needs_its_csrf_token(world: World) -> None:
    world.client.get("/login")
    response = world.client.post(
        "/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": "forged"}, follow_redirects=False
    )
    assert response.status_code == 403 and "The login form expired" in response.text
    assert "mlp_session" not in response.headers.get("set-cookie", "")
    [event] = world.audit(action="session.login", limit=1)
    assert event.result == "denied" and "CSRF" in event.reason


def test_sso_link_appears_when_oidc_is_configured(settings: Settings) -> None:
    oidc = settings.api.oidc.model_copy(update={"issuer": "https://id.example", "client_id": "mlplatform"})
    configured = settings.model_copy(update={"api": settings.api.model_copy(update={"oidc": oidc})})
    page = make_world(configured).client.get("/login").text
    assert 'href="/api/v1/auth/oidc/login?next=/"' in page and "Sign in with SSO" in page


def test_logout_ends_the_session(world: World) -> None:
    csrf = logged_in(world, "viewer")
    page = flashes_after(world, post_form(world, "/logout", csrf))
    assert "viewer logged out." in page
    assert world.client.get("/", follow_redirects=False).status_code == 303
    assert world.audit(limit=1)[0].action == "session.logout"


# --------------------------------------------------------------------------------------------------- role views

FORMS = ("train-form", "promote-form", "rollback-form", "deploy-form", "compare-form")
VISIBLE = {
    "viewer": set(),
    "data-scientist": {"train-form", "compare-form"},
    "approver": set(FORMS),
    "admin": set(FORMS),
}


@pytest.mark.parametrize("role", list(VISIBLE))
def test_each_role_sees_only_the_controls_it_may_use(world: World, role: str) -> None:
    logged_in(world, role)
    page = world.client.get(f"/models/{MODEL}").text
    shown = {form for form in FORMS if f'data-testid="{form}"' in page}
    assert shown == VISIBLE[role]
    assert ("Override the gate" in page) == (role == "admin")


@pytest.mark.parametrize(
    ("path", "fields", "action"),
    [
        (f"/models/{MODEL}/promote", {"version": "4"}, "model.promote"),
        (f"/models/{MODEL}/rollback", {"reason": "x"}, "model.rollback"),
        (f"/models/{MODEL}/deploy", {"backend": "kserve"}, "deployment.create"),
        (f"/models/{MODEL}/train", {"reason": "x"}, "training.trigger"),
        (f"/models/{MODEL}/drift-check", {}, "drift.check"),
    ],
)
def test_a_viewers_forged_post_is_403_and_audited(world: World, path: str, fields: dict[str, str], action: str) -> None:
    csrf = logged_in(world, "viewer")
    response = post_form(world, path, csrf, **fields)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "you have viewer" in response.text
    [event] = world.audit(action=action, limit=1)
    assert (event.actor, event.result, event.target) == ("viewer", "denied", MODEL)
    assert world.registry.aliases[MODEL]["champion"] == "2" and world.orchestrator.triggered == []


def test_a_post_without_the_sessions_csrf_token_is_refused(world: World) -> None:
    logged_in(world, "approver")
    for token in ("", "forged"):
        response = post_form(world, f"/models/{MODEL}/rollback", token, reason="x")
        assert response.status_code == 403 and "CSRF" in response.text
    assert all("CSRF" in event.reason for event in world.audit(action="model.rollback"))
    assert world.registry.aliases[MODEL]["champion"] == "2"


def test_an_expired_session_posting_goes_to_login(world: World) -> None:
    response = world.client.post(f"/models/{MODEL}/rollback", data={"reason": "x"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "session has ended" in world.client.get("/login").text
    assert world.audit(limit=1)[0].result == "unauthenticated"


# ------------------------------------------------------------------------------------------------------ actions


def test_promote_form_passes_the_gate_and_is_audited_like_the_api(world: World) -> None:
    csrf = logged_in(world, "approver")
    page = flashes_after(world, post_form(world, f"/models/{MODEL}/promote", csrf, version="4", reason="beats v2"))
    assert "v4 promoted to champion (was v2)." in page and "roc_auc 0.9700 beats champion v2" in page
    assert world.registry.aliases[MODEL]["champion"] == "4"
    [event] = world.audit(action="model.promote")
    assert (event.target, event.from_value, event.to_value, event.result, event.reason, event.client) == (
        f"{MODEL}/v4",
        "2",
        "4",
        "ok",
        "beats v2",
        "203.0.113.7",
    )
    assert "is already the champion" in flashes_after(
        world, post_form(world, f"/models/{MODEL}/promote", csrf, version="4")
    )


def test_a_gate_refusal_is_a_message_with_the_reasons(world: World) -> None:
    csrf = logged_in(world, "approver")
    page = flashes_after(world, post_form(world, f"/models/{MODEL}/promote", csrf, version="3"))
    assert "Refused by the promotion gate: v3 was not promoted." in page
    assert "roc_auc 0.8000 is below the minimum 0.8500" in page
    assert world.registry.aliases[MODEL]["champion"] == "2"
    assert world.audit(limit=1)[0].result == "refused by gate"
    # Overriding is for admins; an approver who forges the checkbox is refused, and audited.
    forced = flashes_after(world, post_form(world, f"/models/{MODEL}/promote", csrf, version="3", override="true"))
    assert "overriding the gate needs the admin role" in forced
    assert world.audit(limit=1)[0].reason == "override needs role admin"


def test_an_admin_overrides_the_gate_with_a_reason(world: World) -> None:
    csrf = logged_in(world, "admin")
    missing = flashes_after(world, post_form(world, f"/models/{MODEL}/promote", csrf, version="3", override="true"))
    assert "an override needs a reason" in missing and world.registry.aliases[MODEL]["champion"] == "2"
    forced = flashes_after(
        world, post_form(world, f"/models/{MODEL}/promote", csrf, version="3", override="true", reason="incident 7")
    )
    assert "v3 promoted over the gate to champion (was v2)." in forced
    assert world.audit(limit=1)[0].result == "ok (gate overridden)"


def test_rollback_form_goes_back_once_then_says_there_is_nothing_left(world: World) -> None:
    csrf = logged_in(world, "approver")
    page = world.client.get(f"/models/{MODEL}").text
    assert "Roll back to v1" in page
    done = flashes_after(world, post_form(world, f"/models/{MODEL}/rollback", csrf, reason="latency"))
    assert "Rolled back: champion is v1 again (was v2)." in done
    assert "No earlier champion to go back to." in done
    again = flashes_after(world, post_form(world, f"/models/{MODEL}/rollback", csrf, reason="again"))
    assert "Nothing to roll back to" in again
    assert [event.result for event in world.audit(action="model.rollback")] == ["refused", "ok"]


def test_train_form_sends_typed_overrides_to_airflow(world: World) -> None:
    csrf = logged_in(world, "data-scientist")
    response = post_form(
        world,
        f"/models/{MODEL}/train",
        csrf,
        reason="tune",
        params="max_iter=50, learning_rate=0.1 early_stopping=true loss=log_loss class_weight=balanced",
        window_days="30",
        stay_challenger="true",
    )
    assert response.headers["location"] == f"/runs?model={MODEL}"
    page = world.client.get(response.headers["location"]).text
    assert "Training run manual__1 of fraud_detector started" in page
    assert '<meta http-equiv="refresh" content="5">' in page  # the fake's run stays queued
    assert world.orchestrator.triggered == [
        (
            "train_fraud_detector",
            "manual__1",
            {
                "estimator_params": {
                    "max_iter": 50,
                    "learning_rate": 0.1,
                    "early_stopping": True,
                    "loss": "log_loss",
                    "class_weight": "balanced",
                },
                "promote": False,
                "reason": "tune",
                "requested_by": "data_scientist",
                "window_days": 30,
            },
        )
    ]
    assert world.audit(limit=1)[0].action == "training.trigger"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": ""}, "reason: String should have at least 1 character"),
        ({"reason": "x", "params": "max_iter"}, "is not key=value"),
        ({"reason": "x", "params": "bad-key=1"}, "estimator_params.bad-key"),
        ({"reason": "x", "window_days": "0"}, "window_days: Input should be greater than or equal to 1"),
        ({"reason": "x", "window_days": "soon"}, "window_days: Input should be a valid integer"),
    ],
)
def test_invalid_train_forms_are_explained_and_start_nothing(
    world: World, fields: dict[str, str], message: str
) -> None:
    csrf = logged_in(world, "data-scientist")
    page = flashes_after(world, post_form(world, f"/models/{MODEL}/train", csrf, **fields))
    assert "The form is invalid" in page and message in page
    assert world.orchestrator.triggered == []


def test_deploy_and_undeploy_forms(world: World) -> None:
    csrf = logged_in(world, "approver")
    page = flashes_after(world, post_form(world, f"/models/{MODEL}/deploy", csrf, backend="kserve"))
    assert "fraud_detector is served by kserve at http://127.0.0.1:1." in page
    assert 'data-testid="deployment"' in page and "Stop serving" in page
    conflict = flashes_after(world, post_form(world, f"/models/{MODEL}/deploy", csrf, backend="bentoml"))
    assert "Deployment failed: fraud_detector is already served by kserve" in conflict
    bad = flashes_after(world, post_form(world, f"/models/{MODEL}/deploy", csrf, backend="docker"))
    assert "backend: Input should be &#39;bentoml&#39; or &#39;kserve&#39;" in bad
    gone = flashes_after(world, post_form(world, f"/models/{MODEL}/undeploy", csrf))
    assert "fraud_detector is no longer served." in gone
    assert [e.result for e in world.audit(target=MODEL, action="deployment.create")] == ["failed", "ok"]


def test_deploy_form_takes_a_port(world: World) -> None:
    csrf = logged_in(world, "approver")
    bad = flashes_after(world, post_form(world, f"/models/{MODEL}/deploy", csrf, backend="kserve", port="80"))
    assert "port: Input should be greater than or equal to 1024" in bad
    page = flashes_after(world, post_form(world, f"/models/{MODEL}/deploy", csrf, backend="kserve", port="9301"))
    assert "fraud_detector is served by kserve at http://127.0.0.1:1." in page
    deployer = world.services.deployer
    assert isinstance(deployer, FakeDeployer) and deployer.ports == {MODEL: 9301}


def test_unknown_model_is_a_404_page(world: World) -> None:
    csrf = logged_in(world, "admin")
    assert world.client.get("/models/no_such_model").status_code == 404
    refused = post_form(world, "/models/no_such_model/rollback", csrf, reason="x")
    assert "no model named &#39;no_such_model&#39;" in flashes_after(world, refused)
    invalid = world.client.get("/models/Not-A-Name")
    assert invalid.status_code == 422 and invalid.headers["content-type"].startswith("text/html")


# -------------------------------------------------------------------------------------------------------- pages


def test_models_list_shows_health_at_a_glance(world: World) -> None:
    logged_in(world, "viewer")
    page = world.client.get("/").text
    assert 'data-model="fraud_detector"' in page
    assert "champion v2 · roc_auc 0.9500" in page and "not deployed" in page and "dot-ok" in page


def test_model_page_shows_versions_chart_lineage_and_history(world: World) -> None:
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}?version=1").text
    assert page.count("<tr data-version=") == 4
    assert 'data-plotly="chart-metrics"' in page and "Holdout metrics by version" in page
    assert "Lineage of v1" in page and "outside Airflow" in page
    assert "pipeline" in page and "better" in page  # alias history: who and why


def test_compare_page_previews_the_gate(world: World) -> None:
    logged_in(world, "approver")
    page = world.client.get(f"/models/{MODEL}/compare?a=2&b=3").text
    assert "Gate: v3 as champion" in page and "would refuse" in page and "below the minimum" in page
    assert 'data-testid="promote-candidate"' in page
    assert re.search(r'data-metric="roc_auc".*?-0\.1500', page, re.S)
    default = world.client.get(f"/models/{MODEL}/compare").text
    assert "v2 vs v4" in default and "would pass" in default  # champion against the newest other version
    missing = world.client.get(f"/models/{MODEL}/compare?a=1&b=99")
    assert missing.status_code == 404


def test_comparing_needs_a_data_scientist(world: World) -> None:
    logged_in(world, "viewer")
    response = world.client.get(f"/models/{MODEL}/compare?a=1&b=2")
    assert response.status_code == 403 and "this needs the data-scientist role; you have viewer" in response.text


def test_audit_page_filters_pages_and_escapes(world: World) -> None:
    csrf = logged_in(world, "data-scientist")
    post_form(world, f"/models/{MODEL}/train", csrf, reason="<script>alert(1)</script>")
    page = world.client.get("/audit?action=training.trigger").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert page.count('data-action="training.trigger"') == 1
    for _ in range(55):
        world.services.audit.record(actor="bot", action="probe", target="x", result="ok")
    first = world.client.get("/audit?actor=bot").text
    assert first.count('data-action="probe"') == 50
    older = re.search(r'href="/audit\?actor=bot&amp;before_id=(\d+)"', first)
    assert older, "no link to older events"
    second = world.client.get(f"/audit?actor=bot&before_id={older.group(1)}").text
    assert second.count('data-action="probe"') == 5
    assert world.client.get("/audit?before_id=0").status_code == 422


def test_a_tampered_flash_cookie_is_ignored(world: World) -> None:
    logged_in(world, "viewer")
    world.client.cookies.set("mlp_flash", "forged.message")
    assert 'data-testid="flash"' not in world.client.get("/").text


def test_a_backend_outage_blanks_only_its_section(settings: Settings) -> None:
    def unavailable() -> Any:
        raise RegistryUnavailableError("MLflow at http://127.0.0.1:1 is unreachable")

    world = make_world(settings)
    world.services.registry_factory = unavailable
    world.services._cache.clear()
    logged_in(world, "viewer")
    listing = world.client.get("/")
    assert listing.status_code == 200 and "registry unavailable" in listing.text
    page = world.client.get(f"/models/{MODEL}")
    assert page.status_code == 200 and "registry: MLflow at http://127.0.0.1:1 is unreachable" in page.text


# ------------------------------------------------------------------------------------------ assets and headers


def test_pages_carry_security_headers_and_stay_out_of_openapi(world: World) -> None:
    response = world.client.get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
    paths = world.client.get("/openapi.json").json()["paths"]
    assert all(path.startswith(("/api/", "/healthz", "/readyz", "/metrics")) for path in paths)


def test_plotly_comes_from_the_installed_package(world: World) -> None:
    url = f"/static/plotly-{charts.plotly_version()}.min.js"
    response = world.client.get(url, headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip" and "immutable" in response.headers["cache-control"]
    assert int(response.headers["content-length"]) < len(response.content) / 2  # sent compressed
    assert response.content.startswith(b"/**") and b"plotly.js v2" in response.content[:400]
    plain = world.client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == response.content
    assert world.client.get("/static/plotly-0.0.1.min.js").status_code == 404
    assert world.client.get("/static/ui.css").headers["content-type"].startswith("text/css")
    assert world.client.get("/static/..%2F__init__.py").status_code == 404
    assert world.client.get("/static/missing.js").status_code == 404


def test_the_ui_shares_one_app_with_the_api(settings: Settings) -> None:
    services = ApiServices.from_settings(settings)
    app = create_app(settings, services)
    assert app.state.ui is not None and app.state.services is services


# --------------------------------------------------------------------------------------------------- monitoring

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)


def _feature(name: str, drifted: bool, score: float, missing: int = 0, out_of_range: int = 0) -> FeatureDrift:
    return FeatureDrift(name, "K-S p_value", 0.05, score, drifted, missing, out_of_range, 0.0, 10.0)


def _check(status: str, hours_ago: int, **fields: Any) -> DriftCheck:
    end = NOW - timedelta(hours=hours_ago)
    base = DriftCheck(
        model=MODEL,
        model_version="2",
        reference_run_id="run2",
        status=status,  # type: ignore[arg-type]
        window_start=end - timedelta(hours=24),
        window_end=end,
        rows=12 if status == "insufficient_data" else 900,
        rows_compared=0 if status == "insufficient_data" else 900,
        min_rows=100,
        reference_rows=0 if status == "insufficient_data" else 5000,
        drift_share_threshold=0.5,
        started_at=end,
        finished_at=end,
        actor="monitor_fraud_detector",
    )
    return replace(base, **fields)


def record_checks(world: World) -> list[int]:
    """An old calm check, a drifted one with its report, then a quiet window (the latest)."""
    results = DriftResults(world.services.store)
    calm = _check(
        "no_drift",
        48,
        drift_share=0.0,
        dataset_drift=False,
        has_report=True,
        features=(_feature("amount", False, 0.4), _feature("hour", False, 0.7)),
    )
    drifted = _check(
        "drift",
        24,
        drift_share=1.0,
        dataset_drift=True,
        has_report=True,
        features=(_feature("amount", True, 0.0001, missing=3), _feature("hour", True, 0.001, out_of_range=7)),
    )
    ids = [results.record(calm), results.record(drifted), results.record(_check("insufficient_data", 1))]
    for check_id in ids[:2]:
        report = world.services.settings.layout.drift_report(MODEL, check_id)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("<html><script>document.title='evidently'</script></html>")
    return ids


def figure(page: str, chart_id: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" data-plotly="{chart_id}">(.*?)</script>', page, re.S)
    assert found, f"no {chart_id} on the page"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def section(page: str, marker: str) -> str:
    """The markup from ``marker`` to the end of its table row or table."""
    return page.split(marker, 1)[1].split("</tr>" if marker.startswith("data-retrain") else "</table>", 1)[0]


def test_drift_section_shows_checks_over_time_and_insufficient_data_as_such(world: World) -> None:
    _, drifted, quiet = record_checks(world)
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text

    latest = section(page, 'data-testid="drift-latest"')
    assert f"Latest check #{quiet}" in latest and "insufficient data" in latest
    assert "at least 100 needed for a verdict" in latest and "no verdict" in latest
    # The quiet check wrote no report: the link is the newest report there is, served by the API with its CSP.
    report = f"/api/v1/models/{MODEL}/drift/{drifted}/report"
    assert f'href="{report}"' in page and 'data-testid="drift-report"' in page
    served = world.client.get(report)
    assert served.status_code == 200 and served.headers["content-security-policy"] == "sandbox allow-scripts"

    share, threshold, no_data = figure(page, "chart-drift")["data"]
    assert share["y"] == [0.0, 1.0] and len(threshold["y"]) == 3  # the quiet check is not a zero
    assert no_data["name"] == "insufficient data (no verdict)" and len(no_data["x"]) == 1
    assert "12 of 100 rows" in no_data["text"][0]
    heatmap = figure(page, "chart-drift-features")["data"][0]
    assert heatmap["y"] == ["amount", "hour"] and heatmap["x"][-1].endswith("no data")
    assert [row[:2] for row in heatmap["z"]] == [[0.0, 1.0], [0.0, 1.0]] and heatmap["text"][0][2] == "n/a"
    assert 'data-testid="drift-check-form"' not in page  # a viewer cannot run checks


def test_latest_analysed_check_lists_drifted_features_and_data_quality(world: World) -> None:
    features = (_feature("amount", True, 0.01, 4, 9), _feature("hour", False, 0.5))
    DriftResults(world.services.store).record(
        _check("drift", 2, drift_share=0.5, dataset_drift=True, features=features)
    )
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text
    latest = section(page, 'data-testid="drift-latest"')
    assert 'badge-bad">drift<' in latest and "4 / 9" in latest
    assert section(latest, 'data-testid="drifted-features"').startswith(">amount<")
    assert "No drift report yet" in page and 'data-feature="hour"' in page


def test_no_checks_no_alertmanager_no_retrains_are_said_plainly(world: World) -> None:
    logged_in(world, "data-scientist")
    page = world.client.get(f"/models/{MODEL}")
    assert page.status_code == 200
    assert "No drift checks yet" in page.text and 'data-testid="drift-check-form"' in page.text
    url = f"http://127.0.0.1:{world.services.settings.prometheus.alertmanager_port}"
    assert f"Firing alerts cannot be shown: Alertmanager at {url} is unreachable" in page.text
    assert "No retrain triggers yet" in page.text and 'data-plotly="chart-drift"' not in page.text


def test_alerts_switched_off_are_not_an_error(settings: Settings) -> None:
    off = settings.model_copy(update={"prometheus": settings.prometheus.model_copy(update={"enabled": False})})
    world = make_world(off)
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}")
    assert page.status_code == 200 and "Alertmanager is switched off" in page.text


def _alert(fingerprint: str, starts: datetime) -> AlertRef:
    return AlertRef(MODEL, "DatasetDriftDetected", fingerprint, starts, f"{fingerprint}@{starts.isoformat()}")


def _run(dag_id: str, run_id: str, state: str = "success") -> DagRun:
    return DagRun.model_validate({"dag_id": dag_id, "dag_run_id": run_id, "state": state})


def test_retrain_history_shows_each_decision_and_the_runs_outcome(world: World) -> None:
    """Triggered retrains are followed into Airflow (run state) and the registry (version, gate, champion)."""
    records, dag = world.services.retrains, "train_fraud_detector"
    promoted = records.claim(_alert("aa", NOW - timedelta(hours=3)), dag, "retrain__a", "drift", first_attempt_at=NOW)
    refused = records.claim(_alert("bb", NOW), dag, "retrain__b", "drift", first_attempt_at=NOW)
    pending = records.claim(_alert("dd", NOW), dag, "retrain__d", "drift", first_attempt_at=NOW)
    assert promoted and refused and pending
    records.triggered(promoted.id, "retrain__a")
    records.triggered(refused.id, "retrain__b")
    records.attempt_failed(pending.id, "AirflowUnreachableError: connection refused", NOW + timedelta(minutes=1))
    skipped = records.skip(_alert("cc", NOW), "cooldown")

    gate_refused = json.dumps({"passed": False, "reasons": ["roc_auc 0.9000 does not beat champion v5"]})
    world.registry.models[MODEL] += [
        version_info(5, 0.98, 0.8, {f"{Lineage.PREFIX}dag_run_id": "retrain__a"}),
        version_info(6, 0.90, 0.8, {f"{Lineage.PREFIX}dag_run_id": "retrain__b", "mlplatform.gate": gate_refused}),
    ]
    world.registry.move_alias(MODEL, "champion", "5", actor="alertmanager", reason="roc_auc 0.9800 beats v2")
    world.orchestrator.list_runs = lambda dag_id, limit: [_run(dag_id, "retrain__a")]  # type: ignore[method-assign]
    world.orchestrator.get_run = _run  # type: ignore[method-assign]  # retrain__b is older than the listing
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text

    first = section(page, f'data-retrain="{promoted.id}"')
    assert "v5 became champion" in first and 'href="/runs?model=fraud_detector">retrain__a' in first
    assert "alias history (alertmanager)" in first and "?version=5#lineage" in first
    second = section(page, f'data-retrain="{refused.id}"')
    assert "v6 refused by the gate; the champion stays" in second and "does not beat champion v5" in second
    assert "skipped: cooldown after the last retrain" in section(page, f'data-retrain="{skipped.id}"')
    waiting = section(page, f'data-retrain="{pending.id}"')
    assert "pending" in waiting and "connection refused" in waiting


def test_retrain_outcomes_follow_airflow_and_say_when_it_is_away(world: World) -> None:
    records = world.services.retrains
    claimed = records.claim(_alert("ee", NOW), "train_fraud_detector", "manual__1", "drift", first_attempt_at=NOW)
    assert claimed is not None
    world.orchestrator.trigger("train_fraud_detector", {"reason": "drift"}, run_id="manual__1")
    records.triggered(claimed.id, "manual__1")
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text
    assert "run queued" in section(page, f'data-retrain="{claimed.id}"')  # the fake's runs stay queued

    def unreachable(dag_id: str, limit: int) -> list[DagRun]:
        from mlplatform.orchestration.airflow_client import AirflowUnreachableError

        raise AirflowUnreachableError("down")

    world.orchestrator.list_runs = unreachable  # type: ignore[method-assign]
    page = world.client.get(f"/models/{MODEL}").text
    assert "retrain runs: Airflow is unreachable" in page and "run state unknown" in page


def test_run_drift_check_now_calls_the_shared_check_and_says_what_it_found(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDriftCheck(
        _check("insufficient_data", 0),
        _check("drift", 0, drift_share=1.0, dataset_drift=True, features=(_feature("amount", True, 0.001),)),
        drift_check.DriftCheckError("fraud_detector has no champion: train and promote a version first"),
    )
    monkeypatch.setattr(drift_check, "run_drift_check", fake)
    csrf = logged_in(world, "data-scientist")

    response = post_form(world, f"/models/{MODEL}/drift-check", csrf)
    assert response.headers["location"] == f"/models/{MODEL}#drift"
    page = flashes_after(world, response)
    assert "insufficient data: 12 rows in the window, at least 100 needed." in page
    assert fake.calls == [(MODEL, "data_scientist")]
    [event] = world.audit(action="drift.check")
    assert (event.actor, event.result, event.to_value, event.target) == (
        "data_scientist",
        "ok",
        "insufficient_data",
        MODEL,
    )

    drifted = flashes_after(world, post_form(world, f"/models/{MODEL}/drift-check", csrf))
    assert "drift detected, drift share 1.00 (threshold 0.50), 900 rows." in drifted
    assert "drifted inputs: amount" in drifted
    impossible = flashes_after(world, post_form(world, f"/models/{MODEL}/drift-check", csrf))
    assert "Drift check impossible: fraud_detector has no champion" in impossible
    assert [e.result for e in world.audit(action="drift.check")] == ["failed", "ok", "ok"]


def test_run_drift_check_needs_the_sessions_csrf_token(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDriftCheck()
    monkeypatch.setattr(drift_check, "run_drift_check", fake)
    logged_in(world, "data-scientist")
    response = post_form(world, f"/models/{MODEL}/drift-check", "forged")
    assert response.status_code == 403 and fake.calls == []
    assert world.audit(action="drift.check", limit=1)[0].reason == "missing or wrong CSRF token"


def test_runs_page_and_api_show_why_a_run_failed(world: World) -> None:
    run = world.orchestrator.trigger("train_fraud_detector", {"reason": "try", "requested_by": "ana"})
    reason = "prepare_training_set: TrainingDataError: label source x.parquet does not exist"
    world.orchestrator.finish(run.run_id, "failed", reason=reason)
    listed = world.client.get("/api/v1/models/fraud_detector/training-runs", headers=world.as_role("viewer")).json()
    assert listed[0]["failure_reason"] == reason
    logged_in(world, "viewer")
    page = world.client.get("/runs").text
    assert 'data-testid="failure-reason"' in page
    assert "TrainingDataError: label source x.parquet does not exist" in page


def test_a_finished_retrain_whose_verdict_the_registry_read_missed_is_shown_as_awaiting_it(world: World) -> None:
    """The page reads the registry before Airflow: a run that ended in between has a version but no gate tag yet.
    That is not "registered, not champion" (a verdict that left it challenger); the next reload has the verdict."""
    records = world.services.retrains
    claimed = records.claim(_alert("ff", NOW), "train_fraud_detector", "retrain__f", "drift", first_attempt_at=NOW)
    assert claimed is not None
    records.triggered(claimed.id, "retrain__f")
    world.registry.models[MODEL] += [version_info(7, 0.95, 0.8, {f"{Lineage.PREFIX}dag_run_id": "retrain__f"})]
    world.orchestrator.list_runs = lambda dag_id, limit: [_run(dag_id, "retrain__f")]  # type: ignore[method-assign]
    logged_in(world, "viewer")
    row = section(world.client.get(f"/models/{MODEL}").text, f'data-retrain="{claimed.id}"')
    assert "v7 registered, awaiting the gate&#39;s verdict" in row and "not champion" not in row
