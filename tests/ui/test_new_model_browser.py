"""A data scientist creates a model from the "New model" form in a real browser (Chromium through Playwright).

The platform API/UI app runs under uvicorn with its real services: the upload goes through the data contract, the
model folder is written, its features are applied to real Feast and loaded into the online store, and the model
is validated with a sample fit.  Airflow is a stand-in (no run is started here); MLflow is not running, which the
pages show as an unavailable registry section.  Then the model is in the model list, and a refused upload shows
the form again with the contract's message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from mlplatform.config import Settings
from mlplatform.operations.services import ApiServices
from mlplatform.store import PlatformStore
from mlplatform.webapp import create_app
from tests.support.api_world import cheap_hash
from tests.support.environment import free_port
from tests.support.fakes.orchestrator import FakeOrchestrator
from tests.support.onboarding import KEY, LABEL, Tables, onboarding_settings, write_tables
from tests.support.waiting import wait_started
from tests.ui.conftest import new_page, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"
NEW = "machines"
CREATE_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Tables]]:
    """The API/UI app under uvicorn over onboarding settings (no bundled models), with a data scientist."""
    root = tmp_path_factory.mktemp("ui-new-model")
    settings = onboarding_settings(root / "state", api={"port": free_port()}, mlflow={"port": free_port()})
    services = ApiServices.from_settings(
        settings,
        store=PlatformStore.connect(settings.db_url),
        password_hash=cheap_hash(),
        orchestrator_factory=FakeOrchestrator,
    )
    services.auth.create_user("dana", "data-scientist", PASSWORD)
    app = create_app(settings, services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread, 20, "uvicorn")
    try:
        yield settings, write_tables(root / "in")
    finally:
        server.should_exit = True
        thread.join(10)
        services.close()


def test_a_model_created_from_the_form_appears_in_the_model_list(
    browser: Browser, served: tuple[Settings, Tables]
) -> None:
    settings, tables = served
    page = new_page(browser, settings.api.resolved_public_url())
    page.goto("/login")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_test_id("new-model-link").click()

    form = page.get_by_test_id("new-model-form")
    fill(page, tables, label="outcome")
    form.get_by_role("button", name="Create model").click()
    expect(page.get_by_test_id("form-error")).to_contain_text(f"{tables.labels.name}: no label column 'outcome'")
    assert not (settings.user_models_dir / NEW).exists()

    form.get_by_label("Label column").fill(LABEL)
    form.get_by_label("Feature files").set_input_files(tables.features)
    form.get_by_label("Label file").set_input_files(tables.labels)
    # The answer waits for Feast and a sample fit.
    form.get_by_role("button", name="Create model").click(timeout=CREATE_TIMEOUT_MS)
    expect(page).to_have_url(f"{settings.api.resolved_public_url()}/models/{NEW}")
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text(f"Model {NEW} created (binary)")
    expect(flash).to_contain_text("it is ready to train")
    expect(flash).to_contain_text("ok: sample fit: fitted on 300 rows")
    screenshot(page, "new-model-created")

    page.get_by_role("link", name="Models", exact=True).click()
    expect(page.locator(f'tr[data-model="{NEW}"]')).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]


def fill(page: Page, tables: Tables, label: str) -> None:
    """Fill every field of the form (the timestamp column keeps its default)."""
    form = page.get_by_test_id("new-model-form")
    form.get_by_label("Name").fill(NEW)
    form.get_by_label("Entity key").fill(KEY)
    form.get_by_label("Feature files").set_input_files(tables.features)
    form.get_by_label("Label file").set_input_files(tables.labels)
    form.get_by_label("Label column").fill(label)
    form.get_by_label("Task").select_option("classification")
