"""The private hooks of KServe, BentoML and Feast the platform relies on still exist, with the shape it expects.

Why: ``serving/adapters/`` overrides KServe's private server hooks and relies on how BentoML finds a service
class; ``features/online_reader.py`` picks Feast's cached request context apart by tuple position and reads the
sqlite and Redis stores in Feast's own layouts.  None of that is public API, so pyproject.toml pins these
libraries to the patch level (``~=X.Y.Z``) and this test names the hook that moved when an upgrade breaks one,
instead of letting a server fail at start or read wrong columns.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

FEAST_REQUEST_CONTEXT_POSITIONS = {
    1: "requested_on_demand_feature_views",
    3: "entity_type_map",
    5: "grouped_refs",
    8: "entityless_case",
}
"""The ``_get_cached_request_context`` result positions ``OnlineFeatureReader`` reads, by Feast's own names."""


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _has_parameters(function: Callable[..., Any], *names: str) -> bool:
    return set(names) <= set(_parameters(function))


def _returned_tuple_names(function: Callable[..., Any], variable: str) -> list[str]:
    """The names in ``<variable> = (a, b, ...)`` inside ``function``'s source (Feast builds its result so)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == [variable]
            and isinstance(node.value, ast.Tuple)
        ):
            return [ast.unparse(element) for element in node.value.elts]
    return []


def _kserve_hooks() -> dict[str, Callable[[], bool]]:
    import kserve
    from kserve import model_server
    from kserve.errors import ModelNotReady
    from kserve.model import InferenceVerb
    from kserve.model_server import ModelServer
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.rest.server import RESTServer

    server_attributes = ("_rest_server", "_grpc_server", "servers", "dataplane", "model_repository_extension")
    init_source = inspect.getsource(ModelServer.__init__)
    return {
        "kserve.protocol.rest.server.RESTServer._add_middlewares(app)": lambda: (
            _parameters(RESTServer._add_middlewares) == ["self", "app"]
        ),
        "kserve.protocol.rest.server.RESTServer._add_exception_handlers(app)": lambda: (
            _parameters(RESTServer._add_exception_handlers) == ["self", "app"]
        ),
        "kserve.protocol.rest.server.RESTServer(app, data_plane, model_repository_extension, http_port, ...)": lambda: (
            _parameters(RESTServer.__init__)[:5]
            == ["self", "app", "data_plane", "model_repository_extension", "http_port"]
            and _has_parameters(RESTServer.__init__, "grace_period", "timeout_keep_alive")
        ),
        "kserve.model_server.ModelServer attributes set in __init__ (" + ", ".join(server_attributes) + ")": lambda: (
            all(f"self.{name} =" in init_source for name in server_attributes)
        ),
        "kserve.model_server.ModelServer.setup_event_loop / _serve / register_model": lambda: (
            callable(ModelServer.setup_event_loop)
            and inspect.iscoroutinefunction(ModelServer._serve)
            and callable(ModelServer.register_model)
        ),
        "kserve.model_server.ModelServer(http_port, grpc_port, enable_grpc, enable_latency_logging, grace_period)": (
            lambda: _has_parameters(
                ModelServer.__init__, "http_port", "grpc_port", "enable_grpc", "enable_latency_logging", "grace_period"
            )
        ),
        "kserve.model_server.app and kserve.model_server.args (module globals)": lambda: (
            hasattr(model_server, "app") and hasattr(model_server, "args")
        ),
        "kserve.protocol.grpc.server.GRPCServer(port, data_plane, model_repository_extension, kwargs, grace_period)": (
            lambda: (
                _has_parameters(
                    GRPCServer.__init__, "port", "data_plane", "model_repository_extension", "kwargs", "grace_period"
                )
                and inspect.iscoroutinefunction(GRPCServer.stop)
            )
        ),
        "kserve.Model.__call__(body, headers, verb) and InferenceVerb.PREDICT": lambda: (
            _parameters(kserve.Model.__call__)[:4] == ["self", "body", "headers", "verb"]
            and hasattr(InferenceVerb, "PREDICT")
        ),
        "kserve.Model.validate / get_input_types / get_output_types": lambda: all(
            callable(getattr(kserve.Model, name, None)) for name in ("validate", "get_input_types", "get_output_types")
        ),
        "kserve.errors.ModelNotReady": lambda: issubclass(ModelNotReady, Exception),
    }


def _bentoml_hooks() -> dict[str, Callable[[], bool]]:
    import bentoml
    from _bentoml_impl.server import app as server_app
    from _bentoml_impl.worker import service as http_worker
    from _bentoml_sdk.service import config
    from _bentoml_sdk.service.factory import Service

    service_source = inspect.getsource(Service)
    return {
        "bentoml.service(name, workers, traffic, metrics, logging, tracing) / asgi_app / on_shutdown": lambda: (
            callable(bentoml.service) and callable(bentoml.asgi_app) and callable(bentoml.on_shutdown)
        ),
        "_bentoml_sdk Service.import_string from the module that defines the class (_caller_module)": lambda: (
            isinstance(inspect.getattr_static(Service, "import_string"), property)
            and "_caller_module" in service_source
        ),
        "_bentoml_sdk Service readiness through the class's __is_ready__": lambda: (
            "__is_ready__" in inspect.getsource(server_app)
        ),
        "_bentoml_sdk service config tracing.excluded_urls": lambda: "excluded_urls" in inspect.getsource(config),
        "bentoml.service(service_class=...) and its HTTP worker serving service.to_asgi(...)": lambda: (
            "service_class" in inspect.signature(bentoml.service).parameters
            and "service.to_asgi(" in inspect.getsource(http_worker)
        ),
    }


def _feast_hooks() -> dict[str, Callable[[], bool]]:
    from feast import FeatureStore
    from feast.infra.online_stores import helpers, redis, sqlite
    from feast.utils import _get_cached_request_context

    def positions_hold() -> bool:
        names = _returned_tuple_names(_get_cached_request_context, "result")
        return all(
            index < len(names) and names[index] == name for index, name in FEAST_REQUEST_CONTEXT_POSITIONS.items()
        )

    return {
        "feast.utils._get_cached_request_context(registry, project, features, full_feature_names)": lambda: (
            _parameters(_get_cached_request_context) == ["registry", "project", "features", "full_feature_names"]
        ),
        "feast.utils._get_cached_request_context result positions "
        + ", ".join(f"[{index}]={name}" for index, name in FEAST_REQUEST_CONTEXT_POSITIONS.items()): positions_hold,
        "feast.FeatureStore._get_provider()": lambda: _parameters(FeatureStore._get_provider) == ["self"],
        "feast.infra.online_stores.sqlite._table_id(project, table, enable_versioning) / _quote_id": lambda: (
            len(_parameters(sqlite._table_id)) == 3 and callable(sqlite._quote_id)
        ),
        "feast.infra.online_stores.sqlite.SqliteOnlineStore._get_db_path(config)": lambda: callable(
            getattr(sqlite.SqliteOnlineStore, "_get_db_path", None)
        ),
        "feast.infra.online_stores.redis.RedisOnlineStore._get_client(online_store_config)": lambda: (
            _parameters(redis.RedisOnlineStore._get_client) == ["self", "online_store_config"]
        ),
        "feast.infra.online_stores.redis._versioned_fv_name(table, config) / helpers._mmh3(key)": lambda: (
            _parameters(redis._versioned_fv_name) == ["table", "config"] and _parameters(helpers._mmh3) == ["key"]
        ),
        "feast.infra.online_stores.redis: hash per entity key (_redis_key), field per view:feature (_mmh3)": lambda: (
            "_redis_key(" in inspect.getsource(redis.RedisOnlineStore.online_write_batch)
            and '_mmh3(f"{feature_view}:{feature_name}")'
            in inspect.getsource(redis.RedisOnlineStore.online_write_batch)
        ),
    }


def test_private_hooks_the_platform_relies_on_are_still_there() -> None:
    broken = []
    for distribution, hooks in (("kserve", _kserve_hooks), ("bentoml", _bentoml_hooks), ("feast", _feast_hooks)):
        pinned = f"{distribution}=={version(distribution)}"
        for hook, holds in hooks().items():
            try:
                ok = holds()
            except (AttributeError, ImportError, TypeError, ValueError, OSError) as error:
                ok, hook = False, f"{hook} ({type(error).__name__}: {error})"
            if not ok:
                broken.append(f"{pinned}: {hook}")
    assert not broken, "private hooks gone or changed shape (adapt the code, then the pin):\n" + "\n".join(broken)
