"""One fake per interface the platform talks through, each declared as an implementation of the real interface
(a Protocol or ABC of ``mlplatform``) so mypy keeps it in step:

* ``orchestrator.FakeOrchestrator``: Airflow's run API (``OrchestratorPort``, ``RetrainOrchestrator``);
* ``registry.FakeRegistry``: the model registry (``RegistryPort``);
* ``deployer.FakeDeployer``: model servers (``Deployer``);
* ``drift_check.FakeDriftCheck``: ``run_drift_check`` (checked against the function's own signature);
* ``kubernetes_api``: the Kubernetes API over real HTTP, for the real ``kubernetes`` client.
"""
