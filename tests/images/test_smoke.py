"""The chart's pods from the images: they start as the chart says (uid 10001, read-only root filesystem, every
capability dropped), MLflow and the API pass their readiness probes, the API logs a user in, a model registered
into the containerised MLflow is served by the serving image with its online features, a second version rolled out
as a split is answered by the same Deployment per customer, and the Airflow image parses the DAGs."""

from __future__ import annotations

import json

import httpx

from mlplatform.registry.traffic import TrafficPlan
from tests.images.conftest import ADMIN, IMAGES, Release
from tests.support.waiting import wait_for

# The bundled example model (pipelines/models, copied into the images) and a small data set for it.
MODEL = "fraud_detector"
TRAIN_IN_PROCESS = (
    "from mlplatform.config import get_settings\n"
    "from mlplatform.training.pipeline import TrainingRequest, run_all\n"
    "outcome = run_all(get_settings(), TrainingRequest(model={model!r}, run_key='smoke', actor='smoke'))\n"
    "print(outcome.version, outcome.promoted)\n"
)
ROLL_OUT_IN_PROCESS = (
    "from mlplatform.config import get_settings\n"
    "from mlplatform.registry.mlflow_registry import ModelRegistry\n"
    "from mlplatform.rollouts.control import RolloutControl\n"
    "from mlplatform.specs import find_spec\n"
    "from mlplatform.store import PlatformStore\n"
    "from mlplatform.store.audit import AuditLog\n"
    "from mlplatform.store.rollouts import RolloutRecords\n"
    "from mlplatform.training.pipeline import TrainingRequest, run_all\n"
    "settings = get_settings()\n"
    "request = TrainingRequest(\n"
    "    model={model!r}, run_key='smoke-candidate', actor='smoke', estimator_params={{'max_iter': 3}}\n"
    ")\n"
    "outcome = run_all(settings, request)\n"
    "store = PlatformStore.connect(settings.db_url)\n"
    "control = RolloutControl(RolloutRecords(store), ModelRegistry(settings, store=store), AuditLog(store))\n"
    "spec = find_spec(settings.model_roots, {model!r})\n"
    "rollout = control.start(spec, outcome.version, actor='smoke', overrides={{'mode': 'split', 'share': 0.5}})\n"
    "print(outcome.version, outcome.promoted, rollout.id)\n"
)
PARSE_DAGS = (
    "import json\n"
    "from airflow.dag_processing.dagbag import DagBag\n"
    "bag = DagBag('/opt/airflow/dags')\n"
    "print(json.dumps({'dags': sorted(bag.dag_ids), 'errors': {k: str(v) for k, v in bag.import_errors.items()}}))\n"
)


def test_pods_run_as_the_chart_says(release: Release) -> None:
    for component in ("mlflow", "platform"):
        obj = release.workload("Deployment", component)
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        name = release.container(obj, container["name"])
        config = release.podman.inspect(name)
        assert config["Config"]["User"].split(":")[0] == "10001", config["Config"]["User"]
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert set(config["EffectiveCaps"] or []) == set(), config["EffectiveCaps"]
        assert release.exec(obj, container["name"], "id", "-u").strip() == "10001"
        refused = release.podman.run("exec", name, "touch", "/app/written", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_the_api_answers_healthz_and_a_login(release: Release) -> None:
    base = f"http://127.0.0.1:{release.ports['platform']}"
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    # The chart sets secure cookies (TLS ends at your Ingress): carried by hand here, as a browser would over https.
    page = httpx.get(f"{base}/login", timeout=30)
    assert page.status_code == 200
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    cookies = "; ".join(cookie.split(";", 1)[0] for cookie in page.headers.get_list("set-cookie"))
    form = {"username": ADMIN, "password": release.admin_password, "csrf_token": csrf}
    answer = httpx.post(f"{base}/login", data=form, headers={"Cookie": cookies}, timeout=30)
    assert answer.status_code == 303, answer.text[:500]
    session = answer.headers["set-cookie"]
    assert "Secure" in session and "HttpOnly" in session, session
    wrong = httpx.post(f"{base}/login", data={**form, "password": "not-it"}, headers={"Cookie": cookies}, timeout=30)
    session_cookie = session.split("=", 1)[0]
    assert wrong.status_code == 401 and not any(
        cookie.startswith(f"{session_cookie}=") and "Max-Age=0" not in cookie
        for cookie in wrong.headers.get_list("set-cookie")
    ), wrong.headers.get_list("set-cookie")


def test_a_registered_model_is_served_with_its_online_features(release: Release) -> None:
    platform = release.workload("Deployment", "platform")
    # As an operator would with `kubectl exec` into the platform pod (the chart's NOTES.txt): data, definitions.
    release.exec(platform, "api", "mlplatform", "data", "generate", "--entities", "300", "--days", "30")
    release.exec(platform, "api", "mlplatform", "features", "apply")
    # The chart's own materialization job, once.
    release.run_to_completion(release.workload("CronJob", "materialize"))
    trained = release.exec(platform, "api", "python", "-c", TRAIN_IN_PROCESS.format(model=MODEL))
    version, promoted = trained.split()[-2:]
    assert promoted == "True", trained
    # MLflow proxies artifacts: the model it registered lies in the S3 bucket.
    listing = httpx.get(release.artifacts_url, params={"list-type": "2"}, timeout=30).text
    assert "MLmodel</Key>" in listing, listing[:1000]
    server = release.workload("Deployment", "model-server")
    release.play(server)
    release.wait_ready(server, timeout=300)
    answer = httpx.post(
        f"http://127.0.0.1:{release.ports['serving']}/predict",
        json={"entities": [{"customer_id": 1001, "amount": 42.0}]},
        headers={"Authorization": f"Bearer {release.serving_token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == version and body["errors"] == [], body
    (prediction,) = body["predictions"]
    assert 0.0 <= prediction["probability"] <= 1.0
    refused = httpx.post(f"http://127.0.0.1:{release.ports['serving']}/predict", json={"entities": []}, timeout=30)
    assert refused.status_code == 401
    (container,) = server["spec"]["template"]["spec"]["containers"]
    config = release.podman.inspect(release.container(server, container["name"]))
    assert config["Config"]["User"].split(":")[0] == "10001" and config["HostConfig"]["ReadonlyRootfs"] is True
    _a_rollout_splits_the_same_deployment(release, version)


def _a_rollout_splits_the_same_deployment(release: Release, champion: str) -> None:
    """A second version rolled out as a 50 % split from the platform pod (as the API would): the chart's one model
    server Deployment follows the registry's traffic plan and answers each customer by its arm."""
    platform = release.workload("Deployment", "platform")
    candidate, promoted, rollout = release.exec(
        platform, "api", "python", "-c", ROLL_OUT_IN_PROCESS.format(model=MODEL)
    ).split()[-3:]
    assert promoted == "False" and candidate != champion
    plan = TrafficPlan(int(rollout), candidate, "split", 0.5)
    customers = list(range(1001, 1041))
    expected = {customer: candidate if plan.candidate_answers(customer) else champion for customer in customers}

    def split() -> dict[int, str] | None:
        answer = httpx.post(
            f"http://127.0.0.1:{release.ports['serving']}/predict",
            json={"entities": [{"customer_id": customer, "amount": 42.0} for customer in customers]},
            headers={"Authorization": f"Bearer {release.serving_token}"},
            timeout=30,
        ).json()
        versions = {item["customer_id"]: item.get("version") for item in answer["predictions"]}
        return versions if candidate in versions.values() else None

    answered = wait_for(split, 120, "the model server to follow the rollout's plan", interval=1.0)
    assert answered and all(version == expected[customer] for customer, version in answered.items()), answered


def test_the_airflow_image_parses_the_dags(release: Release) -> None:
    result = release.podman.run(
        "run", "--rm", "--read-only", "--network", "none", "--tmpfs", "/tmp", "--user", "50000:0",
        "--env", "AIRFLOW_HOME=/tmp/airflow", "--env", "AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags",
        "--env", "AIRFLOW__CORE__LOAD_EXAMPLES=False",
        IMAGES["airflow"], "python", "-c", PARSE_DAGS, timeout=300,
    )  # fmt: skip
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert any(MODEL in dag for dag in parsed["dags"]), parsed["dags"]
