"""The built images stay as small as infrastructure/docker/README.md says, and hold no compiler, no package cache,
no build tool and no test code."""

from __future__ import annotations

import re

import pytest

from tests.images.conftest import IMAGES
from tests.support.containers import Podman
from tests.support.environment import REPO_ROOT

README = REPO_ROOT / "infrastructure" / "docker" / "README.md"
# A row of the README's size table: | `mlplatform-<name>` | <measured> MB | <limit> MB |
SIZE_ROW = re.compile(r"^\| `mlplatform-(\w+)` \| (\d+) MB \| (\d+) MB \|$", re.MULTILINE)
# Found anywhere on PATH, or present at all: a compiler, the build stage's uv, a package cache, our tests.
LEFTOVERS = (
    "for tool in gcc cc c++ make uv; do command -v $tool && exit 1; done; "
    "for path in /root/.cache /tmp/.cache /opt/uv /src /app/tests /opt/airflow/tests; do "
    "[ -e $path ] && echo $path && exit 1; done; exit 0"
)


def documented_limits() -> dict[str, int]:
    """Image name -> the most megabytes the README allows it."""
    return {name: int(limit) for name, _measured, limit in SIZE_ROW.findall(README.read_text())}


def test_the_readme_states_a_limit_for_every_image() -> None:
    assert set(documented_limits()) == set(IMAGES), f"{README}: a size row per image ({sorted(IMAGES)})"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_images_are_no_larger_than_the_readme_states(podman: Podman, name: str) -> None:
    size_mb = podman.image_size(IMAGES[name]) // 1_000_000
    limit = documented_limits()[name]
    assert size_mb <= limit, f"{IMAGES[name]} is {size_mb} MB, over the {limit} MB {README.name} states"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_images_hold_no_compiler_cache_or_test_code(podman: Podman, name: str) -> None:
    result = podman.run("run", "--rm", "--network", "none", IMAGES[name], "sh", "-c", LEFTOVERS, check=False)
    assert result.returncode == 0, f"{IMAGES[name]} holds {result.stdout.strip() or result.stderr.strip()}"
