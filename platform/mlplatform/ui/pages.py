"""The UI's pages (GET): models, one model, a comparison, training runs, the audit log, the login form and the
"New model" upload form.

Reads need the same roles as the matching REST reads (``require``): any user sees models, runs and the audit log;
comparing versions needs data-scientist, as ``GET /api/v1/models/{name}/compare`` does, and so does the form that
creates a model (``POST /api/v1/models``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from mlplatform.deploy.base import BACKENDS
from mlplatform.operations.access import Principal, authenticate, get_services, require
from mlplatform.operations.problems import Problem
from mlplatform.operations.promotion import gate_decision, metric_rows
from mlplatform.operations.schemas import MAX_ROW_ID, NewModelRequest
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN
from mlplatform.ui import charts, views
from mlplatform.ui.monitoring import HEATMAP_CHECKS, load_monitoring
from mlplatform.ui.render import Renderer, UiRoute, renderer, safe_next

router = APIRouter(route_class=UiRoute, include_in_schema=False)
Services = Annotated[ApiServices, Depends(get_services)]
Render = Annotated[Renderer, Depends(renderer)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
DataScientist = Annotated[Principal, Depends(require("data-scientist"))]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
OptionalVersion = Annotated[int | None, Query(gt=0, le=10**9)]
Filter = Annotated[str | None, Query(max_length=255)]
AUDIT_PAGE = 50
RUNS_PAGE = 25
REFRESH_S = 5


@router.get("/login")
def login_page(
    request: Request, services: Services, render: Render, next: Annotated[str, Query(max_length=2000)] = "/"
) -> Response:
    """The login form; someone already logged in goes straight on."""
    target = safe_next(next)
    try:
        signed_in = authenticate(request, services) is not None
    except Problem:  # a bad Bearer token: this page is where that caller has to go anyway
        signed_in = False
    if signed_in:
        return RedirectResponse(target, status_code=303)
    return login_form(request, services, render, target)


def login_form(
    request: Request,
    services: ApiServices,
    render: Renderer,
    target: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
) -> Response:
    """The form with a fresh double-submit CSRF token (there is no session to bind one to yet)."""
    carrier = Response()
    token = services.sessions.issue_login_csrf(carrier)
    response = render.page(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=target,
        error=error,
        username=username,
        login_csrf=token,
        sso=services.settings.api.oidc.enabled,
    )
    for cookie in carrier.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", cookie)
    return response


NEW_MODEL_PATH = "/new-model"  # not under /models/, where any lowercase word is a model's name
MAX_SHOWN_VALUE = 200


@router.get(NEW_MODEL_PATH)
def new_model_page(request: Request, services: Services, render: Render, principal: DataScientist) -> Response:
    return new_model_form(request, services, render, principal)


def new_model_form(
    request: Request,
    services: ApiServices,
    render: Renderer,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The upload form, filled with what was typed last time (files cannot be kept) and the refusal, if any."""
    defaults = {
        name: "" if field.is_required() or field.default is None else str(field.default)
        for name, field in NewModelRequest.model_fields.items()
    }
    shown = {
        **defaults,
        **{name: value[:MAX_SHOWN_VALUE] for name, value in (values or {}).items() if name in defaults},
    }
    return render.page(
        request,
        "new_model.html",
        principal,
        status_code=status_code,
        error=error,
        values=shown,
        action=NEW_MODEL_PATH,
        max_upload_mb=services.settings.api.max_upload_mb,
    )


@router.get("/")
def models_page(request: Request, services: Services, render: Render, principal: Viewer) -> Response:
    return render.page(request, "models.html", principal, models=views.model_summaries(services))


@router.get("/models/{name}")
def model_page(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Viewer,
    version: OptionalVersion = None,
) -> Response:
    detail = views.model_detail(services, name, version)
    chart = None
    if detail.registry and detail.registry.versions:
        rows = detail.registry.versions
        metrics = views.quality_metrics(detail.spec, rows)
        champion = detail.registry.champion.version if detail.registry.champion else None
        chart = charts.metrics_by_version(rows, metrics, champion)
    pair = views.default_pair(detail.registry) if detail.registry else (None, None)
    monitoring = load_monitoring(services, name, detail.registry, detail.history)
    checks = monitoring.checks
    rollout = views.rollout_view(services, name)
    rollout_charts = (
        (
            charts.rollout_difference(rollout.evaluations, rollout.min_effect, rollout.metric),
            charts.rollout_arms(rollout.evaluations, rollout.metric),
        )
        if rollout and rollout.latest
        else None
    )
    return render.page(
        request,
        "model.html",
        principal,
        model=detail,
        chart=chart,
        monitoring=monitoring,
        drift_chart=charts.drift_over_time(checks) if checks else None,
        feature_chart=charts.drift_by_feature(checks, HEATMAP_CHECKS) if any(c.features for c in checks) else None,
        pair=pair,
        table_metrics=views.table_metrics(detail.spec),
        backends=BACKENDS,
        rollout=rollout,
        rollout_charts=rollout_charts,
    )


@router.get("/models/{name}/compare")
def compare_page(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: DataScientist,
    a: OptionalVersion = None,
    b: OptionalVersion = None,
) -> Response:
    """Two versions side by side; without a choice, the champion against the challenger (or the newest)."""
    spec = services.spec(name)
    registry = views.load_registry(services, name)
    first, second = _pair(registry, a, b)
    if first is None or second is None:
        raise Problem(404, f"model {name!r} needs two versions to compare", slug="unknown-version")
    candidate = views.gate_candidate(first, second)
    gate, source = gate_decision(services, spec, candidate.info)
    metrics = views.quality_metrics(spec, [first, second])
    return render.page(
        request,
        "compare.html",
        principal,
        spec=spec,
        registry=registry,
        a=first,
        b=second,
        rows=metric_rows(first.info, second.info),
        candidate=candidate,
        gate=gate,
        gate_source=source,
        chart=charts.comparison(first, second, metrics),
        lineage_keys=(
            "feature_service",
            "data_window_start",
            "data_window_end",
            "row_count",
            "data_hash",
            "dag_run_id",
            "reason",
            "spec_hash",
            "git_commit",
        ),
    )


def _pair(
    registry: views.Registry, a: int | None, b: int | None
) -> tuple[views.VersionRow | None, views.VersionRow | None]:
    """The chosen versions; a missing choice falls back to the default pair."""
    default_a, default_b = views.default_pair(registry)
    if a is None and b is None:
        return default_a, default_b
    return (registry.find(str(a)) if a else default_a), (registry.find(str(b)) if b else default_b)


@router.get("/runs")
def runs_page(
    request: Request,
    services: Services,
    render: Render,
    principal: Viewer,
    model: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> Response:
    """Recent training runs; the page refreshes itself while any run is unfinished."""
    rows, errors = views.run_rows(services, model, RUNS_PAGE)
    refresh = REFRESH_S if any(not row.finished for row in rows) else None
    return render.page(request, "runs.html", principal, rows=rows, errors=errors, model=model, refresh=refresh)


@router.get("/audit")
def audit_page(
    request: Request,
    services: Services,
    render: Render,
    principal: Viewer,
    actor: Filter = None,
    action: Filter = None,
    target: Filter = None,
    result: Filter = None,
    before_id: Annotated[int | None, Query(gt=0, le=MAX_ROW_ID)] = None,
) -> Response:
    filters = {"actor": actor, "action": action, "target": target, "result": result}
    chosen = {key: value for key, value in filters.items() if value}
    events = services.audit.query(limit=AUDIT_PAGE, before_id=before_id, **chosen)
    older = events[-1].id if len(events) == AUDIT_PAGE else None
    return render.page(request, "audit.html", principal, events=events, filters=filters, chosen=chosen, older=older)
