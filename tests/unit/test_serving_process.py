"""A model server settles its process for serving: the configured switch interval, the long-lived heap frozen."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlplatform.config import get_settings
from mlplatform.serving.process import settle_server_process


@pytest.fixture
def interpreter_restored() -> Iterator[None]:
    """The test process's own switch interval and heap come back afterwards."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


@pytest.mark.usefixtures("interpreter_restored")
def test_the_switch_interval_comes_from_the_settings_and_the_heap_is_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLP_SERVING__GIL_SWITCH_INTERVAL_MS", "2.5")
    gc.unfreeze()
    settle_server_process(get_settings(state_dir=tmp_path))
    assert sys.getswitchinterval() == pytest.approx(0.0025)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("interpreter_restored")
def test_the_default_interval_is_a_millisecond(tmp_path: Path) -> None:
    settle_server_process(get_settings(state_dir=tmp_path))
    assert sys.getswitchinterval() == pytest.approx(0.001)


@pytest.mark.parametrize("milliseconds", [0, -1, 101])
def test_an_interval_out_of_range_is_refused_with_the_field(milliseconds: float) -> None:
    with pytest.raises(ValidationError, match="gil_switch_interval_ms"):
        get_settings(serving={"gil_switch_interval_ms": milliseconds})
