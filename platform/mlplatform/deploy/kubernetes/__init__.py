"""Model servers on Kubernetes: KServe InferenceServices or BentoML Deployments, applied with server-side apply.

``manifests`` builds the objects (pure functions, checked offline against the CRD and OpenAPI schemas), ``client``
is the handful of API calls (and the RBAC they need), ``deployer`` is the ``Deployer`` the API, UI and CLI use when
``settings.deploy.target`` selects Kubernetes.
"""

from mlplatform.deploy.kubernetes.deployer import KubernetesDeployer, in_cluster

__all__ = ["KubernetesDeployer", "in_cluster"]
