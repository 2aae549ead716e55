"""The Dockerfiles and the chart agree: image names, ports, the user, the environment the servers read, and the
commands the chart runs exist in the image that runs them. And the images build without any image registry but the
base's: one pinned base, uv from PyPI, every download through the build secret, nothing of the build left in the
final stage. Static checks (the images themselves are built and run by `make images` / `make images-smoke`)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helm.conftest import CHART, of_kind, pod_spec, render, workloads
from tests.support.environment import REPO_ROOT

DOCKER = REPO_ROOT / "infrastructure" / "docker"
IN_BUILD = DOCKER / "in-build.sh"
IMAGES = {"platform": "mlplatform-platform", "serving": "mlplatform-serving", "airflow": "mlplatform-airflow"}
# Executables the chart runs -> the extra that installs them.
EXECUTABLES = {"mlplatform": None, "python": None, "mlflow": "training", "feast": "features"}
DIGEST_PINNED = re.compile(r"[\w.-]+(?::\d+)?(?:/[\w.-]+)*:[\w.-]+@sha256:[0-9a-f]{64}")
# Steps that reach a package index (or any URL): they need the build's CA bundle behind a TLS-intercepting proxy.
DOWNLOADS = re.compile(
    r"\bpip3?(?:\.\d+)? install\b|-m pip install\b|\buv (?:sync|pip|add|lock|tool)\b|\bcurl\b|\bwget\b"
)
CA_SECRET = "--mount=type=secret,id=ca-bundle"
CA_VARIABLES = {"SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "UV_NATIVE_TLS"}
# Paths that must stay out of the build context: tests, docs, local state and secrets, caches.
NEVER_IN_CONTEXT = (
    "tests/helm/test_images.py",
    "docs/monitoring.md",
    ".venv/pyvenv.cfg",
    ".git/HEAD",
    ".mlplatform/api/initial_admin_password",
    "tools/bin/helm",
    "platform/mlplatform/__pycache__/config.cpython-311.pyc",
)
# The stage that installs the project on top of the environment, and the prefix it installs into.
PROJECT_STAGE = "project"
PROJECT_PREFIX = "/opt/project"
COMPILERS = {"gcc", "g++", "cc", "clang", "make", "build-essential", "python3-dev", "python3.11-dev", "libc6-dev"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    alias: str | None
    instructions: tuple[Instruction, ...]

    def of(self, keyword: str) -> list[str]:
        """The arguments of this stage's ``keyword`` instructions, in order."""
        return [item.args for item in self.instructions if item.keyword == keyword]


def _dockerfile(image: str) -> str:
    return (DOCKER / f"{image}.Dockerfile").read_text()


def _final_stage(text: str) -> str:
    return text.rsplit("\nFROM ", 1)[1]


def _extras(text: str) -> set[str]:
    return set(re.findall(r"--extra ([\w-]+)", text))


def _env(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(MLP_[A-Z_]+|BENTOML_HOME|HOME)=(\S+)", _final_stage(text)))


def _instructions(text: str) -> list[Instruction]:
    """The instructions as the builder reads them: comment lines dropped, continuation lines joined (so a check of
    one RUN sees all of it, its --mount flags included)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            parsed.append(Instruction(keyword.upper(), args.strip()))
    return parsed


def _preamble_args(image: str) -> dict[str, str]:
    """The ARGs declared before the first FROM: the only ones a FROM line can use."""
    args: dict[str, str] = {}
    for item in _instructions(_dockerfile(image)):
        if item.keyword == "FROM":
            break
        if item.keyword == "ARG":
            name, _, default = item.args.partition("=")
            args[name] = default
    return args


def _stages(image: str) -> list[Stage]:
    stages: list[Stage] = []
    base: str = ""
    alias: str | None = None
    body: list[Instruction] = []
    for item in _instructions(_dockerfile(image)):
        if item.keyword == "FROM":
            if base:
                stages.append(Stage(base, alias, tuple(body)))
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", item.args, flags=re.IGNORECASE)
            assert match, f"{image}: unreadable FROM {item.args!r}"
            base, alias, body = match.group(1), match.group(2), []
        elif base:
            body.append(item)
    stages.append(Stage(base, alias, tuple(body)))
    return stages


def _flags_and_rest(args: str) -> tuple[list[str], str]:
    """A RUN's or COPY's leading --flags and what follows them."""
    match = re.fullmatch(r"((?:--\S+\s+)*)(.*)", args, flags=re.DOTALL)
    assert match, args
    return match.group(1).split(), match.group(2)


def _copies(stage: Stage) -> list[tuple[list[str], list[str], str]]:
    """(flags, sources, destination) of each COPY and ADD of a stage."""
    copies = []
    for item in stage.instructions:
        if item.keyword in ("COPY", "ADD"):
            flags, rest = _flags_and_rest(item.args)
            words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            copies.append((flags, words[:-1], words[-1]))
    return copies


def _from_images(flags: list[str]) -> list[str]:
    """What a COPY --from or a RUN --mount=...,from= reads: a stage alias, or else an image it would pull."""
    named = [flag.split("=", 1)[1] for flag in flags if flag.startswith("--from=")]
    named += re.findall(r"(?:^|,)from=([^,]+)", ",".join(flag for flag in flags if flag.startswith("--mount=")))
    return named


def _env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.of("ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _uv_syncs(stage: Stage) -> list[str]:
    return [args for args in stage.of("RUN") if re.search(r"\buv sync\b", args)]


def _lineage(image: str, stage: Stage) -> list[Stage]:
    """``stage`` and the earlier stages it starts from (by alias), nearest first."""
    by_alias = {s.alias: s for s in _stages(image) if s.alias}
    lineage = [stage]
    while lineage[-1].base in by_alias:
        lineage.append(by_alias[lineage[-1].base])
    return lineage


def _final(image: str) -> Stage:
    return _stages(image)[-1]


def _build(image: str) -> Stage:
    """The stage that builds the environment the final stage copies."""
    (stage,) = [stage for stage in _stages(image) if _uv_syncs(stage)]
    return stage


def _dockerignore_admits(path: str) -> bool:
    """Whether the build context holds ``path``: the last .dockerignore rule matching it or a parent wins, as in
    Docker and Buildah (``**/`` also matches no folder at all)."""
    admitted = True
    parents = ["/".join(path.split("/")[: depth + 1]) for depth in range(path.count("/") + 1)]
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(parent, candidate) for parent in parents for candidate in candidates):
            admitted = negated
    return admitted


def _locked_version(package: str) -> str:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    (version,) = [entry["version"] for entry in lock["package"] if entry["name"] == package]
    return str(version)


def _demo_models() -> list[str]:
    return sorted(path.name for path in (REPO_ROOT / "pipelines" / "models").iterdir() if path.is_dir())


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_basics(image: str) -> None:
    text = _dockerfile(image)
    assert len(_stages(image)) >= 2, f"{image}: multi-stage (the build stage's tools stay out of the image)"
    assert f'org.opencontainers.image.title="{IMAGES[image]}"' in text, f"{image}: title label names the image"
    user = re.findall(r"^USER (\S+)", _final_stage(text), flags=re.M)
    assert user and not user[-1].startswith(("0", "root")), f"{image}: runs as non-root"
    assert (REPO_ROOT / ".dockerignore").is_file(), "the build context needs a .dockerignore"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_stage_starts_from_the_pinned_base(image: str) -> None:
    """No registry but the base's is needed: every stage starts from BASE_IMAGE (pinned by digest, so a build is
    reproducible and a local base can stand in) or from an earlier stage, and nothing copies from an image."""
    args = _preamble_args(image)
    assert DIGEST_PINNED.fullmatch(args.get("BASE_IMAGE", "")), f"{image}: ARG BASE_IMAGE=<name>:<tag>@sha256:<digest>"
    others = sorted(name for name in args if name.endswith("_IMAGE") and name != "BASE_IMAGE")
    assert not others, f"{image}: images other than BASE_IMAGE: {others}"
    aliases: set[str] = set()
    for stage in _stages(image):
        assert stage.base in {"${BASE_IMAGE}", *aliases}, f"{image}: FROM {stage.base} pulls another image"
        for flags, _, _ in _copies(stage):
            pulled = set(_from_images(flags)) - aliases
            assert not pulled, f"{image}: COPY --from an image, not a stage: {sorted(pulled)}"
        for run in stage.of("RUN"):
            pulled = set(_from_images(_flags_and_rest(run)[0])) - aliases
            assert not pulled, f"{image}: RUN --mount from an image, not a stage: {sorted(pulled)}"
        aliases |= {stage.alias} if stage.alias else set()


def test_the_three_images_share_one_base_and_one_uv() -> None:
    """`make images` builds all three on the one base it reads from platform.Dockerfile, and one uv version
    resolves uv.lock the same way in each."""
    bases = {image: _preamble_args(image).get("BASE_IMAGE") for image in IMAGES}
    assert len(set(bases.values())) == 1, f"different BASE_IMAGE defaults: {bases}"
    versions = {image: _preamble_args(image).get("UV_VERSION", "") for image in IMAGES}
    assert len(set(versions.values())) == 1, f"different UV_VERSION defaults: {versions}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["platform"]), f"UV_VERSION is an exact version: {versions}"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_uv_is_installed_from_pypi_at_uv_version(image: str) -> None:
    """uv comes from PyPI with the base's pip (no uv image to pull); the stage re-declares ARG UV_VERSION, without
    which the version would be empty inside it."""
    build = _build(image)
    assert "UV_VERSION" in build.of("ARG"), f"{image}: the build stage declares ARG UV_VERSION"
    installs = [run for run in build.of("RUN") if re.search(r"pip install .*[\"']?uv==\$\{?UV_VERSION\}?", run)]
    assert installs, f'{image}: the build stage runs pip install "uv==${{UV_VERSION}}"'
    first_sync = build.of("RUN").index(_uv_syncs(build)[0])
    assert build.of("RUN").index(installs[0]) < first_sync, f"{image}: uv is installed before it is used"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_downloads_run_through_in_build_with_the_ca_secret(image: str) -> None:
    """Behind a TLS-intercepting proxy every download needs the proxy's CA: each one runs through in-build with
    the ca-bundle secret mounted, which trusts it for that step only."""
    downloads = 0
    for stage in _stages(image):
        for run in stage.of("RUN"):
            flags, command = _flags_and_rest(run)
            if not DOWNLOADS.search(command):
                continue
            downloads += 1
            assert CA_SECRET in flags, f"{image}: a download without {CA_SECRET}: {command[:80]}"
            assert command.startswith("in-build "), f"{image}: a download not run through in-build: {command[:80]}"
            copied = [
                dest
                for ancestor in _lineage(image, stage)
                for _, sources, dest in _copies(ancestor)
                if sources == ["infrastructure/docker/in-build.sh"]
            ]
            assert copied == ["/usr/local/bin/in-build"], (
                f"{image}: the stage (or its parent) copies in-build onto PATH"
            )
    assert downloads >= 2, f"{image}: expected uv's install and uv sync among the RUNs"


def test_in_build_trusts_the_secret_for_one_step_only() -> None:
    """in-build runs as the first word of a RUN: it must be executable and parse, read the mounted secret and hand
    over to the step with exec (no copy of the bundle anywhere)."""
    text = IN_BUILD.read_text()
    assert os.access(IN_BUILD, os.X_OK), "in-build.sh is executable (COPY keeps the mode)"
    result = subprocess.run(["sh", "-n", str(IN_BUILD)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"in-build.sh does not parse: {result.stderr}"
    assert "/run/secrets/ca-bundle" in text and 'exec "$@"' in text, "in-build reads the secret and execs the step"
    assert not re.search(r"\b(cp|cat|tee|install)\b[^\n]*\$bundle", text), "in-build never copies the bundle"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_no_ca_bundle_is_baked_into_the_image(image: str) -> None:
    """The build's CA bundle is a secret of that build, not of the image: no certificate is copied in, no stage sets
    a variable pointing at one, and no RUN reads the mounted secret but in-build."""
    for stage in _stages(image):
        for _, sources, _ in _copies(stage):
            certificates = [s for s in sources if s.endswith((".crt", ".pem", ".cer", ".p12")) or "ca-bundle" in s]
            assert not certificates, f"{image}: copies a certificate into a layer: {certificates}"
        assert not stage.of("ADD"), f"{image}: ADD (it can fetch URLs outside in-build); use COPY"
        set_here = (_env_of(stage).keys() | {a.partition("=")[0] for a in stage.of("ARG")}) & CA_VARIABLES
        assert not set_here, f"{image}: a stage sets {sorted(set_here)} (in-build sets them for one step)"
        readers = [run for run in stage.of("RUN") if "/run/secrets" in _flags_and_rest(run)[1]]
        assert not readers, f"{image}: a RUN reads the secret itself: {readers}"


def test_dockerignore_admits_what_the_images_copy_and_no_more() -> None:
    """A COPY of an excluded path fails the build; tests, docs and local state never enter the context."""
    assert _dockerignore_admits("infrastructure/docker/in-build.sh"), ".dockerignore admits in-build.sh"
    for excluded in NEVER_IN_CONTEXT:
        assert not _dockerignore_admits(excluded), f".dockerignore admits {excluded}"
    for image in IMAGES:
        for stage in _stages(image):
            for flags, sources, _ in _copies(stage):
                if _from_images(flags):
                    continue
                for source in sources:
                    assert (REPO_ROOT / source).exists(), f"{image}: COPY {source}: no such path"
                    assert _dockerignore_admits(source.rstrip("/")), f"{image}: .dockerignore excludes {source}"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_environment_comes_from_the_lock_and_the_project_alone_from_its_wheel(image: str) -> None:
    """The dependencies are one sync from the lock, without dev tools or the project (a layer a code change leaves
    alone); the project is built into a wheel and installed, without dependencies, into a prefix of its own in a
    stage on top, so the final image takes the two apart and a code change rebuilds only the small one."""
    (sync,) = _uv_syncs(_build(image))
    assert all(flag in sync for flag in ("--frozen", "--no-dev", "--no-install-project")), f"{image}: {sync}"
    (project,) = [stage for stage in _stages(image) if stage.alias == PROJECT_STAGE]
    assert project.base == _build(image).alias, f"{image}: the project stage starts from the environment's"
    (install,) = project.of("RUN")
    assert "uv build --wheel" in install, f"{image}: the project is built into a wheel"
    assert re.search(rf"uv pip install .*--no-deps --prefix {PROJECT_PREFIX} ", install), f"{image}: {install}"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_final_stage_holds_no_build_tools(image: str) -> None:
    """The image holds the venv and the repository folders it needs: no uv, no compilers, no tests, and the venv at
    the path it was built at (its scripts' shebangs are absolute)."""
    final, build = _final(image), _build(image)
    venv = _env_of(build).get("UV_PROJECT_ENVIRONMENT")
    assert venv, f"{image}: the build stage sets UV_PROJECT_ENVIRONMENT"
    from_build = [(sources, dest) for flags, sources, dest in _copies(final) if _from_images(flags)]
    expected = [([venv], venv), ([f"{PROJECT_PREFIX}/"], f"{venv}/")]
    assert from_build == expected, f"{image}: the final stage copies only the environment and the project: {from_build}"
    local = [source for flags, sources, _ in _copies(final) if not _from_images(flags) for source in sources]
    assert not [s for s in local if s in (".", "./") or s.startswith(("tests", "infrastructure"))], f"{image}: {local}"
    for run in final.of("RUN"):
        command = _flags_and_rest(run)[1]
        assert not DOWNLOADS.search(command) and not re.search(r"\buv\b", command), f"{image}: {command[:80]}"
        installed = set(re.findall(r"[\w.+-]+", " ".join(re.findall(r"apt-get install ([^&;|]*)", command))))
        assert not installed & COMPILERS, f"{image}: the final stage installs {sorted(installed & COMPILERS)}"
    path = _env_of(final).get("PATH", "")
    assert path.startswith(f"{venv}/bin:") and "/opt/uv" not in path, f"{image}: PATH={path}"


def test_chart_image_names_are_the_dockerfiles() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["platform"] == IMAGES["platform"], "chart's platform image"
    assert values["image"]["serving"] == IMAGES["serving"], "chart's serving image"
    assert values["image"]["registry"] == "ghcr.io/mlplatform", "chart's registry"
    airflow = yaml.safe_load((REPO_ROOT / "helm" / "airflow-values.yaml").read_text())
    assert airflow["images"]["airflow"]["repository"] == f"ghcr.io/mlplatform/{IMAGES['airflow']}", "Airflow's image"


def test_containers_run_what_their_image_holds(helm: str) -> None:
    texts = {name: _dockerfile(key) for key, name in IMAGES.items()}
    for profile in ("production", "bentoml"):
        for workload in workloads(render(helm, profile)):
            for container in pod_spec(workload)["containers"]:  # type: ignore[index]
                image = container["image"].rsplit("/", 1)[1].split(":")[0]
                text = texts[image]
                uid = re.search(r"useradd --uid (\d+)", text)
                assert uid and int(uid.group(1)) == container["securityContext"]["runAsUser"], f"{image}: uid"
                argv = container.get("command", []) + container["args"]
                extra = EXECUTABLES[argv[0]]
                assert extra is None or extra in _extras(text), f"{argv[0]} not installed in {image}"
                if argv[0] == "python":  # a script the image copies, relative to WORKDIR /app
                    copies = [line for line in text.splitlines() if line.startswith("COPY ")]
                    assert any(argv[1] in line for line in copies), f"{argv[1]} not in {image}"
                if "--chdir" in argv:
                    folder = Path(argv[argv.index("--chdir") + 1]).name
                    assert f"COPY {folder} ./{folder}" in text, f"{image}: {folder} not copied"
                assert "WORKDIR /app" in _final_stage(text), f"{image}: WORKDIR /app"


def test_ports_and_serving_environment_agree(helm: str) -> None:
    objects = render(helm, "production")
    serving_env = _env(_dockerfile("serving"))
    platform_env = _env(_dockerfile("platform"))
    servers = [w for w in workloads(objects) if w["kind"] == "InferenceService"]
    assert servers, "the production profile serves a model"
    for server in servers:
        (container,) = pod_spec(server)["containers"]  # type: ignore[index]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["MLP_SERVING__PORT"] == serving_env["MLP_SERVING__PORT"] == "8080", "serving port"
        assert env["MLP_SERVING__HOST"] == serving_env["MLP_SERVING__HOST"] == "0.0.0.0", "serving host"
        assert container["ports"][0]["containerPort"] == 8080, "serving containerPort"
    assert "EXPOSE 8080" in _dockerfile("serving") and "EXPOSE 8400" in _dockerfile("platform"), "EXPOSE"
    (platform,) = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-platform")]
    (api,) = platform["spec"]["template"]["spec"]["containers"]
    assert api["ports"][0]["containerPort"] == int(platform_env["MLP_API__PORT"]) == 8400, "API port"
    assert api["args"] == ["mlplatform", "api", "serve"], "the chart runs the API"
    assert 'CMD ["mlplatform", "api", "serve"]' in _dockerfile("platform"), "the image runs the API"
    # The schema is migrated by the migration hook Job alone (tests/helm/test_chart_least_privilege.py): no
    # long-running pod migrates, the API only checks the revision.
    assert all("initContainers" not in (pod_spec(w) or {}) for w in workloads(objects) if w["kind"] != "Job")
    # The image's HOME and state dir are the writable mounts the chart provides.
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert {platform_env["HOME"], platform_env["MLP_STATE_DIR"]} <= mounts, f"HOME and state dir mounted: {mounts}"


def test_airflow_image_installs_airflow_3_from_the_lock() -> None:
    """Airflow is a locked dependency like any other (no apache/airflow base): the airflow extra requires it and
    every sync of the image installs that extra, so the image runs uv.lock's Airflow 3."""
    version = _locked_version("apache-airflow")
    assert version.split(".")[0] == "3", f"uv.lock pins apache-airflow {version}, not 3.x"
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.match(r"apache-airflow\b", req) for req in extras["airflow"]), "the airflow extra names Airflow"
    syncs = _uv_syncs(_build("airflow"))
    assert syncs and all("--extra airflow" in sync for sync in syncs), "every uv sync of the image has --extra airflow"
    assert "apache/airflow" not in _dockerfile("airflow"), "no apache/airflow image"


def test_airflow_image_is_laid_out_as_the_official_chart_expects() -> None:
    """The official chart runs `exec airflow <component>` as uid 50000 gid 0, mounts the MLflow credentials in the
    image's HOME, and reads DAGs from AIRFLOW_HOME/dags (no git-sync): the image provides exactly that."""
    import yaml

    final = _final("airflow")
    env = _env_of(final)
    assert final.of("USER")[-1] == "50000", "the image runs as USER 50000"
    assert any(re.search(r"useradd --uid 50000 --gid 0\b", run) for run in final.of("RUN")), "user 50000, group 0"
    assert env.get("AIRFLOW_HOME") == "/opt/airflow", "AIRFLOW_HOME=/opt/airflow"
    assert env.get("MLP_AIRFLOW__DAGS_FOLDER") == "/opt/airflow/dags", "the platform's DAG folder is Airflow's"
    dags = [(sources, dest) for _, sources, dest in _copies(final) if dest == "/opt/airflow/dags"]
    assert dags == [(["pipelines/dags"], "/opt/airflow/dags")], f"pipelines/dags copied to /opt/airflow/dags: {dags}"
    assert env.get("PATH", "").startswith("/opt/venv/bin:"), "`airflow` is on PATH"
    values = yaml.safe_load((REPO_ROOT / "helm" / "airflow-values.yaml").read_text())
    pod = values["securityContexts"]["pod"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (50000, 0), f"the chart runs uid 50000 gid 0: {pod}"
    credentials = {m["mountPath"] for m in values["volumeMounts"] if m["name"] == "mlflow-credentials"}
    assert credentials == {f"{env.get('HOME')}/.mlflow"}, f"MLflow credentials mounted in HOME: {credentials}"


def test_no_image_assumes_a_model() -> None:
    """Which model a server serves is the deployer's choice: the serving image's CMD names none, and no image file
    names a model of the demo data."""
    (cmd,) = _final("serving").of("CMD")
    argv = json.loads(cmd)
    assert "--model" not in argv, f"the serving image's CMD names a model: {argv}"
    files = sorted(path for path in DOCKER.iterdir() if path.is_file())
    named = [(path.name, model) for path in files for model in _demo_models() if model in path.read_text()]
    assert _demo_models() and not named, f"image files name demo models: {named}"
