"""The UI's "New model" form in-process (TestClient): who may see and post it, a good upload creating a model with
real Feast registration (the model's validation is the world's stand-in), and each refusal shown on the form."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.api_world import World, form_token, make_world, ui_login
from tests.support.onboarding import KEY, LABEL, Tables, onboarding_settings, write_tables

NEW = "machines"


@pytest.fixture()
def onboard_world(tmp_path: Path) -> World:
    """The API/UI world over settings with no bundled models: only what the form creates is registered with Feast."""
    return make_world(onboarding_settings(tmp_path / "state"))


@pytest.fixture()
def tables(tmp_path: Path) -> Tables:
    return write_tables(tmp_path / "in")


def log_in(world: World, role: str) -> str:
    """Log in through the form; returns the session's CSRF token from the models page."""
    assert ui_login(world, role).status_code == 303
    return form_token(world.client.get("/").text)


def post_upload(world: World, tables: Tables, csrf: str, **fields: str) -> httpx.Response:
    response: httpx.Response = world.client.post(
        "/new-model",
        data={"csrf_token": csrf, "name": NEW, "entity_key": KEY, "label": LABEL, **fields},
        files=[
            ("features", (tables.features.name, tables.features.read_bytes())),
            ("labels", (tables.labels.name, tables.labels.read_bytes())),
        ],
        follow_redirects=False,
    )
    return response


def test_the_form_is_linked_and_shown_to_a_data_scientist(onboard_world: World) -> None:
    log_in(onboard_world, "data-scientist")
    assert 'href="/new-model"' in onboard_world.client.get("/").text
    page = onboard_world.client.get("/new-model")
    assert page.status_code == 200 and 'data-testid="new-model-form"' in page.text
    assert 'enctype="multipart/form-data"' in page.text and 'name="csrf_token"' in page.text
    assert 'name="timestamp_column" required maxlength="128" value="event_timestamp"' in page.text


def test_a_viewer_gets_no_link_and_is_refused(onboard_world: World, tables: Tables) -> None:
    csrf = log_in(onboard_world, "viewer")
    assert "/new-model" not in onboard_world.client.get("/").text
    page = onboard_world.client.get("/new-model")
    assert page.status_code == 403 and "this needs the data-scientist role; you have viewer" in page.text
    refused = post_upload(onboard_world, tables, csrf)
    assert refused.status_code == 403 and "this needs the data-scientist role" in refused.text
    [event] = onboard_world.audit(action="model.create", limit=1)
    assert (event.actor, event.result, event.reason) == ("viewer", "denied", "needs role data-scientist")
    assert not onboard_world.services.settings.model_data_dir(NEW).exists()


def test_a_good_upload_creates_the_model_and_lists_it(onboard_world: World, tables: Tables) -> None:
    csrf = log_in(onboard_world, "data-scientist")
    response = post_upload(onboard_world, tables, csrf)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/models/{NEW}"
    page = onboard_world.client.get(response.headers["location"])
    assert page.status_code == 200
    assert f"Model {NEW} created (binary), features loaded up to 2026-02-27; it is ready to train." in page.text
    assert "ok: spec: stand-in: validation is not run in this world" in page.text
    assert "<li>machine_readings.parquet: event_timestamp has no time zone; read as UTC</li>" in page.text
    assert f'data-model="{NEW}"' in onboard_world.client.get("/").text
    settings = onboard_world.services.settings
    assert (settings.user_models_dir / NEW / "spec.yaml").is_file()
    assert (settings.model_data_dir(NEW) / tables.labels.name).is_file()
    [event] = onboard_world.audit(action="model.create", limit=1)
    assert (event.actor, event.result, event.target) == ("data_scientist", "ok", NEW)


def test_a_refused_upload_shows_the_form_again_with_the_message(onboard_world: World, tables: Tables) -> None:
    csrf = log_in(onboard_world, "data-scientist")
    missing = post_upload(onboard_world, tables, csrf, label="outcome", timezone="Europe/Berlin")
    assert missing.status_code == 422
    assert 'data-testid="form-error"' in missing.text and 'data-testid="new-model-form"' in missing.text
    assert f"{tables.labels.name}: no label column &#39;outcome&#39;" in missing.text
    assert 'name="label" required maxlength="128" value="outcome"' in missing.text
    assert 'value="Europe/Berlin"' in missing.text
    bad_name = post_upload(onboard_world, tables, csrf, name="Bad-Name")
    assert bad_name.status_code == 422 and "name: String should match pattern" in bad_name.text
    settings = onboard_world.services.settings
    assert not (settings.user_models_dir / NEW).exists() and not settings.model_data_dir(NEW).exists()
    assert f'data-model="{NEW}"' not in onboard_world.client.get("/").text
    [event] = onboard_world.audit(action="model.create", result="failed", limit=1)
    assert "no label column 'outcome'" in event.detail["error"]


def test_an_upload_without_the_csrf_token_or_too_large_is_refused(onboard_world: World, tables: Tables) -> None:
    log_in(onboard_world, "data-scientist")
    forged = post_upload(onboard_world, tables, "forged")
    assert forged.status_code == 403 and "CSRF token missing or invalid" in forged.text
    limit = onboard_world.services.settings.api.max_upload_mb * 2**20
    too_big = onboard_world.client.post(
        "/new-model",
        headers={"Content-Length": str(limit + 1), "Content-Type": "multipart/form-data; boundary=x"},
        content=b"",
    )
    assert too_big.status_code == 413
    assert f"the upload exceeds api.max_upload_mb ({limit // 2**20} MiB)" in too_big.text
    assert not onboard_world.services.settings.model_data_dir(NEW).exists()
