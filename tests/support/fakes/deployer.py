"""Model servers that are only entries in a dict (a fake: the real deployers start processes or talk to
Kubernetes, tested in tests/integration and tests/deploy)."""

from __future__ import annotations

from mlplatform.deploy.base import Backend, Deployer, DeployError, Deployment


class FakeDeployer(Deployer):
    """Deploys instantly and reports every deployment running and ready; refuses a second backend per model."""

    def __init__(self) -> None:
        self.served: dict[str, Backend] = {}
        self.ports: dict[str, int | None] = {}
        """The port each deploy asked for (None: the deployer's choice)."""

    def deploy(self, model: str, backend: Backend, port: int | None = None) -> Deployment:
        if model in self.served and self.served[model] != backend:
            raise DeployError(f"{model} is already served by {self.served[model]}")
        self.served[model] = backend
        self.ports[model] = port
        return self._deployment(model)

    def undeploy(self, model: str) -> bool:
        return self.served.pop(model, None) is not None

    def list(self) -> list[Deployment]:
        return [self._deployment(model) for model in self.served]

    def set_canary(self, model: str, percent: int) -> Deployment:
        if model not in self.served:
            raise DeployError(f"{model} is not deployed")
        return self._deployment(model)

    def _deployment(self, model: str) -> Deployment:
        return Deployment(model=model, backend=self.served[model], url="http://127.0.0.1:1", running=True, ready=True)
