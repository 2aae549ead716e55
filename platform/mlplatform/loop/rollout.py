"""The loop's rollout step: a retrained candidate enters beside the champion as a shadow, then a split, and the
platform's rollout evaluator promotes it or rolls it back on outcomes that arrive late.

``run_rollout`` plays the world and nothing else.  It replays the model's latest labelled events as live requests
(entity key and request columns, with the features each event had: ``loop.replay``) and hands each label back to
the platform later, as a labelling system would:
after its delay in event time (the label table's ``known_at`` column, e.g. a chargeback's date), compressed to
``day_seconds`` of wall time per day, joined to its prediction by the request id the server answered.  It does not
decide: the evaluator in the platform API process reads the prediction log and the labels and acts, as it does in
production.  The step only starts the rollout, under the spec's policy with the overrides it is given (a demo needs
seconds where production takes days: ``DEMO_POLICY``), and waits, bounded, for the decision.

Without ``--candidate`` the candidate is the version holding ``challenger`` (a run trained with ``--no-promote``
keeps it there whatever the gate says).
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlplatform.loop.driver import ACTOR, running_deployment
from mlplatform.loop.replay import AsOfFeatures
from mlplatform.loop.timeline import (
    OUTCOME_PROMOTED,
    LoopResult,
    LoopStalledError,
    Recorder,
    Say,
    Step,
    ignore_step,
    quiet,
)
from mlplatform.loop.waits import wait_serving
from mlplatform.specs import find_spec

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.deploy.base import Deployment
    from mlplatform.registry.mlflow_registry import ModelRegistry
    from mlplatform.rollouts.control import RolloutControl
    from mlplatform.specs import ModelSpec
    from mlplatform.store.db import PlatformStore
    from mlplatform.store.rollouts import Rollout, RolloutEvaluation

OUTCOME_ROLLED_BACK = "rolled_back"
OUTCOME_AWAITING = "awaiting_decision"
OUTCOME_UNDECIDED = "undecided"

DEMO_POLICY: Mapping[str, Any] = {
    "mode": "shadow",
    "split_after": "20s",
    "share": 0.5,
    "evaluation_interval": "2s",
    "min_samples": 200,
    "min_duration": "35s",
    "max_duration": "80s",
    "decision": "auto",
    "guardrails": {"max_prediction_shift": 1.0},
}
"""The spec's rollout policy, shortened for a demo: guardrails hold for 20 s of shadow, then half the entities get
the candidate; evaluated every 2 s; no verdict of the test before 35 s (so the split is seen even when the shadow
alone would have decided); a person decides what the test has not by 80 s.  The prediction-shift guardrail
is off (a distance of at most 1): it would stop a candidate that predicts very differently, like the demo's, before
any outcome, and the demo is there to show the test deciding on outcomes."""
CHECK_S = 1.0
"""How often the replay hands over due labels and reads the rollout's state."""
MAX_FAILED_SHARE = 0.05


@dataclass(frozen=True)
class RolloutOptions:
    """The model, its candidate and how the world is played: request rate, label delays, time allowed."""

    model: str
    candidate: str | None = None
    policy: Mapping[str, Any] = field(default_factory=lambda: dict(DEMO_POLICY))
    rate: float = 100.0
    known_at: str | None = None
    """Label-table column of when each label became known; None: labels come back at the next check."""
    day_seconds: float = 2.0
    """Wall seconds per day of label delay."""
    timeout: float = 90.0
    swap_timeout: float = 180.0


@dataclass
class _Replay:
    """What the replay has sent and handed back so far."""

    sent: int = 0
    failed: int = 0
    labelled: int = 0
    pending: list[tuple[float, int, str]] = field(default_factory=list)
    """(due time, event index, request id) of labels not handed back yet, earliest first."""


def run_rollout(
    settings: Settings, options: RolloutOptions, *, say: Say = quiet, on_step: Callable[[Step], None] = ignore_step
) -> LoopResult:
    """Start the rollout, play requests and late labels until the evaluator decides (or ``timeout``); returns the
    timeline with outcome ``promoted``, ``rolled_back``, ``awaiting_decision`` or ``undecided``.

    Raises ``LoopStalledError`` when the platform API (which runs the evaluator) or the model server is not there,
    and ``RolloutError`` for a candidate or policy that cannot be rolled out.
    """
    from mlplatform.registry.mlflow_registry import ModelRegistry
    from mlplatform.store.db import PlatformStore

    spec = find_spec(settings.model_roots, options.model)
    result = LoopResult(started=datetime.now(UTC))
    record = Recorder(result, on_step)
    store = PlatformStore.connect(settings.db_url)
    try:
        _require_api(settings)
        registry = ModelRegistry(settings, store=store)
        deployment = running_deployment(settings, spec.name)
        events = _events(settings, spec, options)
        features = AsOfFeatures(settings, spec, events)
        control = _control(store, registry)
        champion, candidate = _versions(registry, control, spec, options.candidate, say)
        wait_serving(deployment, settings, spec, champion, options.swap_timeout, say)
        result.old_version, result.new_version = champion, candidate
        record.done("champion serving", f"v{champion}; candidate v{candidate}; {len(events):,} labelled events to send")
        rollout = control.start(spec, candidate, actor=ACTOR, overrides=options.policy, reason="loop rollout")
        record.done(rollout.mode, _started(rollout))
        try:
            ended = _play(spec, deployment, store, control, rollout, (events, features), options, record, say)
        except BaseException:
            _withdraw(control, rollout.id)
            raise
        finally:
            say(f"the online store back to the latest features in {features.restore():.1f}s")
        _finish(settings, spec, deployment, store, control, ended, options, record, say)
    finally:
        store.dispose()
    return result


def _withdraw(control: RolloutControl, rollout_id: int) -> None:
    """A replay that failed (or was interrupted) leaves no candidate in the traffic."""
    from mlplatform.store.rollouts import RolloutConflictError

    with contextlib.suppress(RolloutConflictError):  # the evaluator ended it meanwhile
        control.stop(rollout_id, actor=ACTOR, reason="the loop's replay stopped before a decision")


def _require_api(settings: Settings) -> None:
    """The evaluator runs in the platform API process: without it nothing would decide."""
    import httpx

    from mlplatform.stack.embedded import EmbeddedStack

    url = f"{EmbeddedStack(settings).api_url}/readyz"
    try:
        ready = httpx.get(url, timeout=5.0).status_code == 200
    except httpx.HTTPError:
        ready = False
    if not ready:
        raise LoopStalledError(
            "platform API", f"{url} does not answer; its rollout evaluator decides: run `mlplatform stack up`"
        )


def _events(settings: Settings, spec: ModelSpec, options: RolloutOptions) -> pd.DataFrame:
    """As many of the latest labelled events as the rate can send in the time allowed."""
    from mlplatform.loop.traffic import NoRequestsError, labelled_events

    try:
        return labelled_events(settings, spec, int(options.rate * options.timeout) + 1, options.known_at)
    except NoRequestsError as error:
        raise LoopStalledError("replay", str(error)) from None


def _control(store: PlatformStore, registry: ModelRegistry) -> RolloutControl:
    from mlplatform.rollouts.control import RolloutControl
    from mlplatform.store.audit import AuditLog
    from mlplatform.store.rollouts import RolloutRecords

    return RolloutControl(RolloutRecords(store), registry, AuditLog(store))


def _versions(
    registry: ModelRegistry, control: RolloutControl, spec: ModelSpec, candidate: str | None, say: Say
) -> tuple[str, str]:
    """(champion, candidate version); a rollout an earlier run left open is stopped first."""
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION
    from mlplatform.rollouts.control import RolloutError

    earlier = control.records.open_for(spec.name)
    if earlier is not None:
        say(f"stopping rollout {earlier.id}, left {earlier.state} by an earlier run")
        control.stop(earlier.id, actor=ACTOR, reason="superseded by a new `mlplatform loop rollout`")
    champion = registry.alias_holder(spec.name, CHAMPION)
    if champion is None:
        raise RolloutError(f"{spec.name} has no champion: run `mlplatform train {spec.name} --wait`")
    if candidate is not None:
        return champion.version, candidate
    challenger = registry.alias_holder(spec.name, CHALLENGER)
    if challenger is None or challenger.version == champion.version:
        raise RolloutError(
            f"{spec.name} has no candidate: its champion v{champion.version} also holds 'challenger'; train one with "
            f"`mlplatform train {spec.name} --no-promote --wait`, or pass --candidate VERSION"
        )
    return champion.version, challenger.version


def _started(rollout: Rollout) -> str:
    policy = rollout.policy
    split = f", a {policy['share']:.0%} split after {policy['split_after']:.0f}s" if policy.get("split_after") else ""
    return (
        f"rollout {rollout.id}: v{rollout.candidate_version} as {rollout.mode}{split}; {policy['metric']}, "
        f"alpha {policy['alpha']}, evaluated every {policy['evaluation_interval']:.0f}s"
    )


def _play(
    spec: ModelSpec,
    deployment: Deployment,
    store: PlatformStore,
    control: RolloutControl,
    rollout: Rollout,
    replayed: tuple[pd.DataFrame, AsOfFeatures],
    options: RolloutOptions,
    record: Recorder,
    say: Say,
) -> Rollout:
    """Send the events at ``rate``, each with its features as of its time, and hand their labels back when due,
    until the rollout leaves ``running`` (or the time is up)."""
    import httpx

    events, features = replayed
    chunk = max(1, round(options.rate * CHECK_S))
    requests = _requests(spec, events)
    delays = _label_delays(spec, events, options)
    replay = _Replay()
    started = time.monotonic()
    next_check = started + CHECK_S
    mode = rollout.mode
    with httpx.Client(timeout=10.0) as client:
        while True:
            now = time.monotonic()
            if now >= next_check:
                _hand_back(spec, store, events, replay, now)
                current = control.records.get(rollout.id)
                assert current is not None
                if current.mode != mode:
                    mode = current.mode
                    record.done(mode, f"{current.share:.0%} of entities answered by v{current.candidate_version}")
                if current.state != "running" or now - started >= options.timeout:
                    return current
                say(_progress(control, current, replay))
                next_check = now + CHECK_S
            due = started + replay.sent / options.rate
            if replay.sent < len(requests) and now >= due:
                features.before(replay.sent, chunk)
                _send(deployment, client, requests[replay.sent], delays[replay.sent], replay)
                _refuse_failures(deployment, replay)
            else:
                time.sleep(max(0.0, min(next_check, due) - time.monotonic()))


def _requests(spec: ModelSpec, events: pd.DataFrame) -> list[dict[str, Any]]:
    """The events as single-entity requests (JSON-ready Python values)."""
    columns = [spec.entity_key, *spec.label.request_columns]
    return [
        {
            column: (value.item() if hasattr(value, "item") else value)
            for column, value in zip(columns, row, strict=True)
        }
        for row in events[columns].itertuples(index=False, name=None)
    ]


def _label_delays(spec: ModelSpec, events: pd.DataFrame, options: RolloutOptions) -> list[float]:
    """Wall seconds from each request to its label: its delay in event time, ``day_seconds`` per day."""
    if options.known_at is None:
        return [0.0] * len(events)
    days = (events[options.known_at] - events[spec.label.timestamp_column]).dt.total_seconds() / 86_400
    if (days < 0).any():
        raise LoopStalledError("replay", f"{options.known_at} is before {spec.label.timestamp_column} in some rows")
    return [float(value) * options.day_seconds for value in days.fillna(0.0)]


def _send(deployment: Deployment, client: httpx.Client, request: dict[str, Any], delay: float, replay: _Replay) -> None:
    from mlplatform.serving.client import PredictionError, predict

    index = replay.sent
    replay.sent += 1
    try:
        answer = predict(deployment, [request], client)
    except PredictionError:
        replay.failed += 1
        return
    heapq.heappush(replay.pending, (time.monotonic() + delay, index, str(answer["request_id"])))


def _refuse_failures(deployment: Deployment, replay: _Replay) -> None:
    if replay.sent >= 100 and replay.failed > MAX_FAILED_SHARE * replay.sent:
        raise LoopStalledError("replay", f"{replay.failed}/{replay.sent} requests failed; see {deployment.log_path}")


def _hand_back(spec: ModelSpec, store: PlatformStore, events: pd.DataFrame, replay: _Replay, now: float) -> None:
    """Store the labels that are due, as the labelling system's feed would deliver them."""
    import pandas as pd

    from mlplatform.monitoring.outcomes import normalise_labels
    from mlplatform.store.outcomes import OutcomeRecords

    due: list[tuple[int, str]] = []
    while replay.pending and replay.pending[0][0] <= now:
        _, index, request_id = heapq.heappop(replay.pending)
        due.append((index, request_id))
    if not due:
        return
    rows = events.iloc[[index for index, _ in due]]
    frame = pd.DataFrame(
        {
            spec.entity_key: rows[spec.entity_key].to_numpy(),
            spec.label.column: rows[spec.label.column].to_numpy(),
            "request_id": [request_id for _, request_id in due],
        }
    )
    OutcomeRecords(store).add(spec.name, normalise_labels(frame, spec, "replayed labels"), source=ACTOR)
    replay.labelled += len(due)


def _progress(control: RolloutControl, rollout: Rollout, replay: _Replay) -> str:
    evaluations = control.records.evaluations(rollout.id, limit=1)
    latest = evaluations[-1] if evaluations else None
    test = "no evaluation yet"
    if latest is not None and latest.estimate is not None:
        test = f"difference {latest.estimate:+.4f} [{latest.lower:+.4f}, {latest.upper:+.4f}]: {latest.verdict}"
    elif latest is not None:
        test = latest.reason
    return f"{rollout.mode}: {replay.sent:,} requests, {replay.labelled:,} labels back; {test}"


def _finish(
    settings: Settings,
    spec: ModelSpec,
    deployment: Deployment,
    store: PlatformStore,
    control: RolloutControl,
    rollout: Rollout,
    options: RolloutOptions,
    record: Recorder,
    say: Say,
) -> None:
    """Name the decision with its evidence, follow a promotion to the server, and measure the online quality; a
    rollout still running when the time is up is stopped, so the demo leaves no candidate in the traffic."""
    from mlplatform.monitoring.quality import refresh_quality
    from mlplatform.rollouts.evaluator import BREACH
    from mlplatform.store.rollouts import AWAITING_DECISION, PROMOTED, ROLLED_BACK

    result = record.result
    evaluations = control.records.evaluations(rollout.id, limit=1)
    evidence = _evidence(evaluations[-1] if evaluations else None)
    decided = evidence if evaluations and evaluations[-1].verdict == BREACH else ""
    if rollout.state == PROMOTED:
        result.outcome = OUTCOME_PROMOTED
        record.done("promoted by the test", f"{rollout.decision_reason}{decided}")
        wait_serving(deployment, settings, spec, rollout.candidate_version, options.swap_timeout, say)
        record.done("new champion serving", f"{deployment.url} answers with v{rollout.candidate_version}")
    elif rollout.state == ROLLED_BACK:
        result.outcome = OUTCOME_ROLLED_BACK
        record.done("rolled back by the test", f"{rollout.decision_reason}{decided}")
    elif rollout.state == AWAITING_DECISION:
        result.outcome = OUTCOME_AWAITING
        record.done("awaiting a person", f"the test recommends {rollout.recommendation}{evidence}")
    else:
        result.outcome = OUTCOME_UNDECIDED
        control.stop(rollout.id, actor=ACTOR, reason=f"no decision within the loop's {options.timeout:.0f}s")
        record.done("stopped undecided", f"no decision within {options.timeout:.0f}s{evidence}")
    quality, _ = refresh_quality(settings, store, spec)
    record.done("online quality", _quality(quality, spec.rollout_metric, rollout))
    result.message = f"rollout {rollout.id} of v{rollout.candidate_version} against v{rollout.champion_version}: "
    result.message += result.outcome.replace("_", " ")


def _evidence(evaluation: RolloutEvaluation | None) -> str:
    """The test's standing, for an ending its reason does not already state."""
    if evaluation is None or evaluation.estimate is None:
        return "; no estimate yet"
    return (
        f"; champion minus candidate loss {evaluation.estimate:+.4f} (band {evaluation.lower:+.4f} .. "
        f"{evaluation.upper:+.4f}) on {evaluation.champion_samples:,} + {evaluation.candidate_samples:,} outcomes"
    )


def _quality(rows: list[dict[str, Any]], metric: str, rollout: Rollout) -> str:
    """The two versions' online loss on their labelled predictions (of the quality window)."""
    parts = []
    for row in rows:
        if row["model_version"] in (rollout.champion_version, rollout.candidate_version):
            value = row["metrics"].get(metric)
            shown = "-" if value is None else f"{value:.4f}"
            parts.append(f"v{row['model_version']} {row['arm']}: {metric} {shown} on {row['labelled']:,}")
    return "; ".join(parts) or "no labelled predictions"
