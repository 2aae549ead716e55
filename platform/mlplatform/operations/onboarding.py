"""Create a model from uploaded tables, and validate a model: what ``models init``/``models validate``, the API and
the UI's upload form all call.

Creating runs the data contract (``mlplatform.onboarding.contract``), writes the model folder and its data
(``scaffold``), registers the features with Feast and loads them into the online store, then validates the model
(``validate``).  A contract refusal is a 422 problem naming the file, column and fix; nothing is written.  A failure
while registering features removes what was written.  A failed validation keeps the model (its spec is there to be
fixed) and is reported in the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import Request

from mlplatform.onboarding.contract import ContractError, check_tables
from mlplatform.onboarding.scaffold import ScaffoldError, check_name_free, remove_model, write_model
from mlplatform.onboarding.validate import ValidationReport
from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import CheckOut, NewModelOut, NewModelRequest, ValidationOut
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

ACTION_CREATE = "model.create"
ACTION_VALIDATE = "model.validate"


def validation_out(report: ValidationReport) -> ValidationOut:
    return ValidationOut(
        model=report.model,
        passed=report.passed,
        checks=[CheckOut(name=c.name, passed=c.passed, detail=c.detail) for c in report.checks],
    )


def create_model(
    request: Request,
    services: ApiServices,
    principal: Principal,
    body: NewModelRequest,
    features: list[Path],
    labels: Path,
    progress: Callable[[str], None] | None = None,
) -> NewModelOut:
    """Check, write, register and validate a new model (see the module docstring for what each failure does)."""
    settings = services.settings
    try:
        check_name_free(settings, body.name)
        data = check_tables(
            features,
            labels,
            entity_key=body.entity_key,
            label=body.label,
            task=body.task,
            timestamp_column=body.timestamp_column,
            timezone=body.timezone,
        )
        scaffold = write_model(settings, body.name, data, estimator_class=body.estimator, owner=principal.username)
    except (ContractError, ScaffoldError) as error:
        record(request, principal.username, ACTION_CREATE, body.name, RESULT_FAILED, detail={"error": str(error)})
        slug = "data-contract" if isinstance(error, ContractError) else "model-exists"
        raise Problem(422 if slug == "data-contract" else 409, str(error), slug=slug) from None
    end = data.feature_end + timedelta(seconds=1)
    try:
        _register_features(services, end, progress)
    except Exception as error:
        remove_model(settings, body.name)
        record(request, principal.username, ACTION_CREATE, body.name, RESULT_FAILED, detail={"error": str(error)})
        raise Problem(
            500, f"registering the features with Feast failed, nothing was kept: {error}", slug="feature-store"
        ) from None
    report = services.validate_model(body.name)
    record(
        request,
        principal.username,
        ACTION_CREATE,
        body.name,
        RESULT_OK,
        to_value=str(scaffold.folder),
        detail={"task": data.task, "notices": data.notices, "validation": report.failures},
    )
    return NewModelOut(
        name=body.name,
        task=data.task,
        folder=str(scaffold.folder),
        data_dir=str(scaffold.data_dir),
        feature_views=scaffold.views,
        notices=data.notices,
        materialized_up_to=end,
        validation=validation_out(report),
    )


def _register_features(services: ApiServices, end: datetime, progress: Callable[[str], None] | None) -> None:
    """Apply every model's features (the new folder's included) and load the online store up to ``end``."""
    from mlplatform.features.store import FeatureStoreAdapter

    adapter = FeatureStoreAdapter(services.settings, progress)
    adapter.apply()
    adapter.materialize(end=end)


def validate(request: Request, services: ApiServices, principal: Principal, name: str) -> ValidationOut:
    """Validate one model (it must exist; an invalid spec is reported as the first failed check); audited."""
    try:
        services.spec(name)
    except Problem as problem:
        if problem.status != 500:
            raise
    report = services.validate_model(name)
    record(
        request,
        principal.username,
        ACTION_VALIDATE,
        name,
        RESULT_OK if report.passed else RESULT_FAILED,
        detail={"failures": report.failures},
    )
    return validation_out(report)
