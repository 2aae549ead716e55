"""A rollout inside a model server: the candidate version held next to the champion, the shadow thread, and the
routing of a request between them (``Predictor.predict`` calls ``route``).

* **The platform decides, servers follow.** Each replica reads the rollout's traffic plan from the registry on the
  alias poller's beat (``mlplatform.registry.traffic``) and never reads the platform DB or the outcomes: the
  rollout's evaluator runs once, in the platform.
* **Swaps stay atomic.** The plan and the loaded candidate are one immutable ``Arms`` held in one attribute; a
  request reads it once, so a plan change or a candidate swap mid-request does not affect it.
* **A failing candidate never costs an answer.** In a split, entities the candidate cannot score are answered by
  the champion; in shadow the candidate runs on its own thread after the answer.  Its failures are logged as
  records with an ``error`` (the rollout's error guardrail reads them).
* **Shadow costs one extra scoring**, and no second online-store read when both versions read the same feature
  service; a full shadow queue skips shadowing (counted) rather than delaying answers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlplatform.predictions.records import CANDIDATE_ARM

if TYPE_CHECKING:
    from mlplatform.registry.traffic import TrafficPlan
    from mlplatform.serving.loading import LoadedModel, ModelLoader
    from mlplatform.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arms:
    """The rollout a server follows now: its plan and the loaded candidate version."""

    plan: TrafficPlan
    candidate: LoadedModel

    @property
    def routing(self) -> bool:
        return not self.plan.paused


class CandidateSlot:
    """The rollout's candidate, following the registry's traffic plan: loaded completely before it is routed to,
    dropped when the plan ends, kept while the registry is unreachable (like the champion)."""

    def __init__(self, loader: ModelLoader, metrics: ServingMetrics) -> None:
        self.loader = loader
        self.name = loader.name
        self.metrics = metrics
        self.arms: Arms | None = None
        """Read once per request."""
        self._failed_version: str | None = None

    def refresh(self) -> None:
        """One poll: follow the plan (start, change, end a rollout); never raises."""
        try:
            plan = self.loader.traffic_plan()
        except ValueError as error:  # a plan this code cannot read: serve the champion alone rather than guess
            log.warning("ignoring the rollout plan of %s: %s", self.name, error)
            self._install(None)
            return
        except Exception as error:  # registry down: keep routing as before, like the champion's slot
            log.debug("rollout plan of %s not read: %s", self.name, error)
            return
        current = self.arms
        if plan is None:
            self._failed_version = None
            self._install(None)
        elif current is not None and current.candidate.version == plan.candidate_version:
            if current.plan != plan:
                self._install(Arms(plan, current.candidate))
        elif plan.candidate_version != self._failed_version:
            self._load(plan)

    def _load(self, plan: TrafficPlan) -> None:
        try:
            candidate = self.loader.load(self.loader.version_target(plan.candidate_version), cache=False)
        except Exception:  # a candidate that cannot load is never routed to; the champion keeps answering
            log.exception(
                "cannot load candidate %s version %s of rollout %s", self.name, plan.candidate_version, plan.rollout_id
            )
            self._failed_version = plan.candidate_version
            self._install(None)
            return
        self._failed_version = None
        self._install(Arms(plan, candidate))

    def _install(self, arms: Arms | None) -> None:
        previous = self.arms
        self.arms = arms
        if arms == previous:
            return
        self.metrics.set_rollout(self.name, None if arms is None else arms.plan)
        if arms is None:
            log.info("rollout of %s ended here: the champion answers everything", self.name)
        else:
            plan = arms.plan
            log.info(
                "rollout %s of %s: candidate version %s, %s%s",
                plan.rollout_id,
                self.name,
                plan.candidate_version,
                "shadow" if plan.mode == "shadow" else f"split {plan.share:.0%}",
                " (paused)" if plan.paused else "",
            )


def split_rows(plan: TrafficPlan, keys: list[object]) -> list[int]:
    """Positions of the entities the candidate answers under a split plan."""
    return [index for index, key in enumerate(keys) if plan.candidate_answers(key)]


class ShadowRunner:
    """One thread that runs shadow scorings after the answers are sent, from a bounded queue."""

    def __init__(self, size: int, skipped: Callable[[], None]) -> None:
        self._jobs: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=size)
        self._skipped = skipped
        self._thread = threading.Thread(target=self._run, name="rollout-shadow", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._skipped()

    def close(self, timeout: float) -> None:
        """Finish the queued shadow scorings (bounded by ``timeout``), then stop."""
        try:
            self._jobs.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a shadow scoring must never stop the thread
                log.exception("a shadow scoring of the rollout's %s failed", CANDIDATE_ARM)
