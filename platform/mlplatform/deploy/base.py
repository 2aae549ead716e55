"""The Deployer port: what the CLI, API and UI need from any way of running model servers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Backend = Literal["bentoml", "kserve"]
BACKENDS: tuple[Backend, ...] = ("bentoml", "kserve")


class DeployError(RuntimeError):
    """A deployment could not be created, found or removed; the message says which and why."""


@dataclass(frozen=True)
class Deployment:
    """One model served by one backend, as the platform reports it."""

    model: str
    backend: Backend
    url: str
    running: bool
    ready: bool
    detail: str = ""
    log_path: Path | None = None

    @property
    def predict_url(self) -> str:
        """The JSON prediction endpoint of the backend."""
        if self.backend == "kserve":
            return f"{self.url}/v1/models/{self.model}:predict"
        return f"{self.url}/predict"


class Deployer(ABC):
    """Runs model servers. Optional capabilities raise ``NotImplementedError`` naming the class."""

    @abstractmethod
    def deploy(self, model: str, backend: Backend, port: int | None = None) -> Deployment:
        """Start (or keep) a server for ``model``; returns once it is ready or raises ``DeployError``.

        ``port`` asks for the port the server listens on; deployers that give every server the same port (in its
        own pod) raise ``NotImplementedError`` when given one.
        """

    @abstractmethod
    def undeploy(self, model: str) -> bool:
        """Stop the model's server; ``False`` when nothing was deployed."""

    @abstractmethod
    def list(self) -> list[Deployment]:
        """Every deployment this deployer knows of."""

    def set_canary(self, model: str, percent: int) -> Deployment:
        """Send ``percent`` of traffic to the challenger (backends with traffic splitting only)."""
        raise NotImplementedError(f"{type(self).__name__} does not split traffic")
