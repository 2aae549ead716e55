"""The traffic plan of a rollout: what every model server replica reads to route between the champion and a
candidate version, published by the platform as a tag on the registered model.

Why a registry tag: every server already asks the registry which version holds its alias at each poll, in every
deployment (local processes, BentoML Deployments, KServe RawDeployment or Serverless); the plan rides on the same
call, so servers need no credential for the platform DB and no Knative or Istio to split traffic.  The platform DB
keeps the rollout itself (``mlplatform.store.rollouts``); this tag is only its routing, written by the platform
when a rollout starts, pauses, resumes, switches to a split or ends (the tag is then removed).

Assignment is a stable hash of the entity key salted with the rollout: one customer always sees one arm during a
rollout, and the next rollout draws its candidates afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

Mode = Literal["shadow", "split"]
_SCALE = float(2**64)


@dataclass(frozen=True)
class TrafficPlan:
    """How a server routes during a rollout; immutable, swapped as a whole (like the served model)."""

    TAG: ClassVar[str] = "mlplatform.rollout"
    """The registered-model tag holding the plan as JSON."""

    rollout_id: int
    candidate_version: str
    mode: Mode
    share: float
    """split: the share of entities the candidate answers (shadow: unused, the champion answers all)."""
    paused: bool = False
    """Paused: the champion answers and nothing is shadowed; the candidate stays loaded for a quick resume."""

    def __post_init__(self) -> None:
        if self.mode not in ("shadow", "split"):
            raise ValueError(f"mode must be shadow or split, got {self.mode!r}")
        if not (math.isfinite(self.share) and 0.0 <= self.share <= 1.0):
            raise ValueError(f"share must be between 0 and 1, got {self.share!r}")
        if not self.candidate_version.isdigit():
            raise ValueError(f"candidate_version must be a registry version number, got {self.candidate_version!r}")

    @property
    def salt(self) -> bytes:
        return f"rollout-{self.rollout_id}\x1f".encode()

    def candidate_answers(self, key: object) -> bool:
        """Whether the candidate answers the entity with this key (split mode): a 64-bit hash of the salted key
        below ``share`` of its range.  About a microsecond; the same answer in every replica and every request."""
        digest = hashlib.blake2b(self.salt + str(key).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / _SCALE < self.share

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_tag(cls, raw: str) -> TrafficPlan:
        """The plan of a tag's JSON; ``ValueError`` naming the problem for a tag this code cannot read."""
        try:
            data: Any = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"the {cls.TAG} tag is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"the {cls.TAG} tag must be a JSON object")
        try:
            return cls(
                rollout_id=int(data["rollout_id"]),
                candidate_version=str(data["candidate_version"]),
                mode=data["mode"],
                share=float(data["share"]),
                paused=bool(data.get("paused", False)),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"the {cls.TAG} tag lacks or mistypes a field: {error}") from None
