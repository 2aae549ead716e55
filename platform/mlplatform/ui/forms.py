"""The UI's forms (POST): log in and out, create a model, train, check drift, promote, roll back, deploy, undeploy,
start, pause, resume, stop, evaluate and decide a rollout.

Each handler is authorised by the same ``permit(action, role)`` dependency as the REST route (role, CSRF token
from the form's hidden field, refusals audited), validates the form into the REST request model, and calls the
same operation.  What follows is Post/Redirect/Get: the outcome, good or refused, is a message on the next page;
only the "New model" form is shown again on a refusal, with what was typed (files cannot be refilled by a page).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from mlplatform.operations import deployments, drift, promotion, rollouts, sessions, training
from mlplatform.operations.access import Principal, get_services, permit, record, signed_in
from mlplatform.operations.problems import Problem
from mlplatform.operations.rollouts import DecideRequest, RolloutActionRequest, StartRolloutRequest
from mlplatform.operations.schemas import (
    MAX_REASON,
    DeployRequest,
    LoginRequest,
    NewModelOut,
    PromoteRequest,
    RollbackRequest,
    TrainRequest,
    UndeployRequest,
)
from mlplatform.operations.security import LOGIN_CSRF_COOKIE
from mlplatform.operations.services import ApiServices
from mlplatform.operations.uploads import FORM_FIELDS, bounded_upload, create_from_upload, upload_form
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.audit import RESULT_DENIED
from mlplatform.store.drift import DriftCheck
from mlplatform.ui.pages import NEW_MODEL_PATH, login_form, new_model_form
from mlplatform.ui.render import Flash, Renderer, UiRoute, renderer, safe_next

router = APIRouter(route_class=UiRoute, include_in_schema=False)
Services = Annotated[ApiServices, Depends(get_services)]
Render = Annotated[Renderer, Depends(renderer)]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
ReasonField = Annotated[str, Form(max_length=MAX_REASON + 100)]
ShortField = Annotated[str, Form(max_length=64)]
ParamsField = Annotated[str, Form(max_length=4000)]
Body = TypeVar("Body", bound=BaseModel)
PARAM_SEPARATORS = re.compile(r"[\s,;]+")


class FormError(Exception):
    """Form input the request model rejected; the messages name the field and the rule, never the value."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def validated(schema: type[Body], **values: Any) -> Body:
    """The form as the REST request model, so a form and a JSON body obey exactly the same rules."""
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        messages = [f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()]
        raise FormError(messages) from None


def refused(refusal: Problem | FormError) -> Flash:
    if isinstance(refusal, FormError):
        return Flash("error", "The form is invalid", tuple(refusal.messages))
    return Flash.from_problem(refusal)


def model_url(name: str) -> str:
    return f"/models/{name}"


def parse_params(text: str) -> dict[str, Any]:
    """``max_iter=50 learning_rate=0.1`` -> typed overrides (bool, int, float or text), checked by TrainRequest."""
    params: dict[str, Any] = {}
    for token in PARAM_SEPARATORS.split(text.strip()):
        if not token:
            continue
        key, separator, raw = token.partition("=")
        if not separator or not key:
            raise FormError([f"estimator_params: {token[:40]!r} is not key=value"])
        params[key] = _typed(raw)
    return params


def _typed(raw: str) -> bool | int | float | str | None:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


# --------------------------------------------------------------------------------------------------- sessions


@router.post("/login")
def login(
    request: Request,
    services: Services,
    render: Render,
    username: Annotated[str, Form(max_length=1024)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Password login through the API's login (rate limit, audit); the form is protected by a double-submit token."""
    target, shown_name = safe_next(next), username[:64]

    def again(status: int, error: str) -> Response:
        return login_form(request, services, render, target, status_code=status, error=error, username=shown_name)

    if not services.sessions.login_csrf_valid(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        reason = "login form CSRF token missing or wrong"
        record(request, shown_name or "anonymous", "session.login", shown_name, RESULT_DENIED, reason=reason)
        return again(403, "The login form expired. Please try again.")
    try:
        body = validated(LoginRequest, username=username, password=password)
        response = render.redirect(target)
        sessions.login(request, response, services, body.username, body.password)
    except FormError:
        return again(422, "Enter a username and a password.")
    except Problem as problem:
        page = again(
            problem.status, "Unknown user or wrong password." if problem.status == 401 else f"{problem.detail}."
        )
        if "Retry-After" in problem.headers:
            page.headers["Retry-After"] = problem.headers["Retry-After"]
        return page
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("session.logout", "viewer"))],
) -> Response:
    response = render.redirect("/login", Flash("info", f"{principal.username} logged out."))
    sessions.logout(request, response, services, principal)
    return response


# ---------------------------------------------------------------------------------------------------- actions


@router.post(NEW_MODEL_PATH)
async def create_model(
    request: Request,
    services: Services,
    render: Render,
    _size: Annotated[None, Depends(bounded_upload)],
    _caller: Annotated[Principal, Depends(signed_in("model.create"))],
    form: Annotated[FormData, Depends(upload_form)],
    principal: Annotated[Principal, Depends(permit("model.create", "data-scientist"))],
) -> Response:
    """``POST /api/v1/models`` from a form: the size is checked and the caller signed in, then the form parsed with
    its limits (before the CSRF check reads it), then the same operation runs; a refusal shows the form again with
    its status and words."""
    try:
        created = await create_from_upload(request, services, principal, form)
    except Problem as problem:
        if problem.status >= 500:
            raise
        typed = {key: value for key in FORM_FIELDS if isinstance(value := form.get(key), str)}
        return new_model_form(
            request, services, render, principal, status_code=problem.status, error=problem.detail, values=typed
        )
    return render.redirect(model_url(created.name), created_flash(created))


def created_flash(created: NewModelOut) -> Flash:
    """What ``models init`` prints: the validation's checks, then the contract's notices about the data."""
    report = created.validation
    checks = tuple(f"{'ok' if check.passed else 'FAILED'}: {check.name}: {check.detail}" for check in report.checks)
    notices = tuple(created.notices)
    head = f"Model {created.name} created ({created.task}), features loaded up to {created.materialized_up_to:%Y-%m-%d}"
    if report.passed:
        return Flash("ok", f"{head}; it is ready to train.", checks + notices)
    return Flash("error", f"{head}, but it does not validate yet: fix what failed before training.", checks + notices)


@router.post("/models/{name}/train")
def train(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("training.trigger", "data-scientist"))],
    reason: ReasonField = "",
    window_days: ShortField = "",
    params: ParamsField = "",
    stay_challenger: Annotated[bool, Form()] = False,
) -> Response:
    try:
        body = validated(
            TrainRequest,
            reason=reason,
            window_days=window_days.strip() or None,
            estimator_params=parse_params(params),
            promote=not stay_challenger,
        )
        run = training.trigger_training(request, services, principal, name, body)
    except (Problem, FormError) as refusal:
        return render.redirect(model_url(name), refused(refusal))
    started = Flash("ok", f"Training run {run.run_id} of {name} started; this page follows it until it finishes.")
    return render.redirect(f"/runs?model={name}", started)


@router.post("/models/{name}/drift-check")
def drift_check(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("drift.check", "data-scientist"))],
) -> Response:
    """Run the drift check now (as ``mlplatform drift check`` does); the verdict is the next page's message."""
    try:
        check = drift.check_drift(request, services, principal, name)
    except Problem as refusal:
        return render.redirect(f"{model_url(name)}#drift", refused(refusal))
    return render.redirect(f"{model_url(name)}#drift", drift_flash(check))


def drift_flash(check: DriftCheck) -> Flash:
    """The verdict in words: an empty window is said to be one, never reported as calm."""
    head = f"Drift check #{check.id} of v{check.model_version}"
    if check.status == "insufficient_data":
        text = f"{head}: insufficient data: {check.rows} rows in the window, at least {check.min_rows} needed."
        return Flash("info", text)
    drifted = [feature.feature for feature in check.features if feature.drifted]
    share = f"drift share {check.drift_share or 0:.2f} (threshold {check.drift_share_threshold:.2f})"
    verdict = "drift detected" if check.status == "drift" else "no drift"
    details = (f"drifted inputs: {', '.join(drifted)}",) if drifted else ()
    return Flash(
        "info" if check.status == "drift" else "ok", f"{head}: {verdict}, {share}, {check.rows} rows.", details
    )


@router.post("/models/{name}/promote")
def promote(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("model.promote", "approver"))],
    version: ShortField = "",
    reason: ReasonField = "",
    override: Annotated[bool, Form()] = False,
) -> Response:
    try:
        body = validated(PromoteRequest, version=version, reason=reason.strip() or None, override=override)
        result = promotion.promote(request, services, principal, name, body)
    except (Problem, FormError) as refusal:
        message = refused(refusal)
        if isinstance(refusal, Problem) and refusal.type.endswith("/gate-refused"):
            message = Flash("error", f"Refused by the promotion gate: v{version} was not promoted.", message.details)
        return render.redirect(model_url(name), message)
    gate = tuple(result.gate.reasons)
    if not result.promoted:
        return render.redirect(model_url(name), Flash("info", f"v{result.version} is already the champion.", gate))
    verb = "promoted over the gate" if result.overridden else "promoted"
    before = f" (was v{result.previous_champion})" if result.previous_champion else ""
    return render.redirect(model_url(name), Flash("ok", f"v{result.version} {verb} to champion{before}.", gate))


@router.post("/models/{name}/rollback")
def rollback(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("model.rollback", "approver"))],
    reason: ReasonField = "",
) -> Response:
    try:
        body = validated(RollbackRequest, reason=reason)
        result = promotion.rollback(request, services, principal, name, body)
    except (Problem, FormError) as refusal:
        return render.redirect(model_url(name), refused(refusal))
    done = Flash("ok", f"Rolled back: champion is v{result.to_version} again (was v{result.from_version}).")
    return render.redirect(model_url(name), done)


@router.post("/models/{name}/deploy")
def deploy(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("deployment.create", "approver"))],
    backend: ShortField = "",
    port: ShortField = "",
    reason: ReasonField = "",
) -> Response:
    try:
        body = validated(
            DeployRequest, model=name, backend=backend or None, port=port.strip() or None, reason=reason.strip() or None
        )
        result = deployments.deploy(request, services, principal, body)
    except (Problem, FormError) as refusal:
        return render.redirect(model_url(name), refused(refusal))
    return render.redirect(model_url(name), Flash("ok", f"{name} is served by {result.backend} at {result.url}."))


@router.post("/models/{name}/undeploy")
def undeploy(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("deployment.delete", "approver"))],
    reason: ReasonField = "",
) -> Response:
    try:
        body = validated(UndeployRequest, reason=reason.strip() or None)
        was_running = deployments.undeploy(request, services, principal, name, body)
    except (Problem, FormError) as refusal:
        return render.redirect(model_url(name), refused(refusal))
    text = f"{name} is no longer served." if was_running else f"{name} was not running; its record is removed."
    return render.redirect(model_url(name), Flash("ok", text))


# --------------------------------------------------------------------------------------------------- rollouts


@router.post("/models/{name}/rollouts")
def start_rollout(
    name: NamePath,
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("rollout.start", "data-scientist"))],
    candidate: ShortField = "challenger",
    mode: ShortField = "",
    share: ShortField = "",
    reason: ReasonField = "",
) -> Response:
    try:
        body = validated(
            StartRolloutRequest,
            candidate=candidate,
            mode=mode or None,
            share=share.strip() or None,
            reason=reason.strip() or None,
        )
        started = rollouts.start(request, services, principal, name, body)
    except (Problem, FormError) as refusal:
        return render.redirect(model_url(name), refused(refusal))
    text = (
        f"Rollout {started.id} started: v{started.candidate_version} in {started.mode} "
        f"against v{started.champion_version}."
    )
    return render.redirect(f"{model_url(name)}#rollout", Flash("ok", text))


@router.post("/rollouts/{rollout_id}/decide")
def decide_rollout(
    rollout_id: Annotated[int, Path(gt=0, le=2**31 - 1)],
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("rollout.decide", "approver"))],
    decision: ShortField = "",
    reason: ReasonField = "",
) -> Response:
    rollout = services.rollout_records.get(rollout_id)
    target = model_url(rollout.model) + "#rollout" if rollout else "/"
    try:
        body = validated(DecideRequest, decision=decision, reason=reason)
        decided = rollouts.decide(request, services, principal, rollout_id, body)
    except (Problem, FormError) as refusal:
        return render.redirect(target, refused(refusal))
    return render.redirect(target, Flash("ok", f"Rollout {decided.id}: {decided.state.replace('_', ' ')}."))


@router.post("/rollouts/{rollout_id}/{action}")  # after decide: its path must win
def change_rollout(
    rollout_id: Annotated[int, Path(gt=0, le=2**31 - 1)],
    action: Annotated[Literal["pause", "resume", "stop", "evaluate"], Path()],
    request: Request,
    services: Services,
    render: Render,
    principal: Annotated[Principal, Depends(permit("rollout.change", "data-scientist"))],
    reason: ReasonField = "",
) -> Response:
    rollout = services.rollout_records.get(rollout_id)
    target = model_url(rollout.model) + "#rollout" if rollout else "/"
    try:
        if action == "evaluate":
            detail = rollouts.evaluate_now(services, rollout_id)
            latest = detail.evaluations[-1] if detail.evaluations else None
            text = f"Evaluated: {latest.verdict}: {latest.reason}" if latest else "Evaluated."
            return render.redirect(target, Flash("ok", text))
        body = validated(RolloutActionRequest, reason=reason.strip() or None)
        changed = rollouts.act(request, services, principal, rollout_id, action, body)
    except (Problem, FormError) as refusal:
        return render.redirect(target, refused(refusal))
    return render.redirect(target, Flash("ok", f"Rollout {changed.id} is {changed.state.replace('_', ' ')}."))
