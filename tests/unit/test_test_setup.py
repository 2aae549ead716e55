"""The test suite's own set-up: services found on their default ports, and skips that fail under CI."""

from __future__ import annotations

import pytest

from tests.conftest import _postgres_error, _redis_error
from tests.support.environment import free_port

pytest_plugins = ["pytester"]

SKIPPING_TEST = """
import pytest
from tests.support.environment import skip_missing

def test_needs_a_tool():
    skip_missing("frobnicator, not installed", "`sudo apt-get install frobnicator`")
"""


@pytest.fixture()
def skipping(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile(SKIPPING_TEST)
    return pytester


@pytest.mark.parametrize("ci", ["", "false", "0"])
def test_outside_ci_a_missing_tool_is_a_skip_that_names_it(
    skipping: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    result = skipping.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs frobnicator, not installed: `sudo apt-get install frobnicator`*"])


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_is_a_failure(skipping: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    result = skipping.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true, which counts as a failure: needs frobnicator*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_port_without_redis_or_postgres_says_why() -> None:
    port = free_port()
    assert "refused" in _redis_error(f"127.0.0.1:{port}").lower()
    assert _postgres_error(f"postgresql://postgres@127.0.0.1:{port}") != ""


def test_the_local_services_are_found_on_their_default_ports(postgres_server_url: str, redis_address: str) -> None:
    """With no MLP_TEST_* variables (as `make test` runs on a fresh machine) both are found by themselves."""
    assert _postgres_error(postgres_server_url) == "" and _redis_error(redis_address) == ""
