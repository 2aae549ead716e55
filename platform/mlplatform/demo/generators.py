"""Bundled models' data generators for the closed loop, by model name: ``mlplatform loop run`` looks a model up
here and, when it has one, regenerates its data with and without drift instead of reading a ``--drifted`` table.

A factory takes the size of the world (entities, days) and a seed and returns what the loop calls as its
``RegenerateData``: ``(data_dir, *, end, drift_after) -> summary with rows and start``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from mlplatform.demo.fraud_data import DESCRIPTION, MODEL, GeneratedData, generate


class Generator(Protocol):
    """One bundled model's data, written under ``data_dir``, ending at ``end``, drifted from ``drift_after`` on."""

    def __call__(
        self,
        data_dir: Path,
        *,
        end: datetime,
        drift_after: datetime | None,
        progress: Callable[[str], None] | None = None,
    ) -> GeneratedData: ...


GeneratorFactory = Callable[[int, int, int], Generator]
"""(entities, days, seed) -> generator."""


def fraud_generator(entities: int, days: int, seed: int) -> Generator:
    """The card-fraud demo's synthetic data: ``entities`` customers over ``days`` days."""
    return partial(generate, customers=entities, days=days, seed=seed)


DRIFT_GENERATORS: dict[str, GeneratorFactory] = {MODEL: fraud_generator}

DEMO_MODEL = MODEL
"""The model `make demo` runs the loop on, whose data `mlplatform data generate` writes."""
DEMO_DESCRIPTION = DESCRIPTION
