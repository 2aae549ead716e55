"""The platform DB's users, tokens and audit log: one contract, run against every backend (sqlite in tests/unit,
PostgreSQL in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlplatform.store import PlatformStore
from mlplatform.store.audit import MAX_LIMIT, MAX_REFUSAL_ROWS, AuditLog, DeploymentRecords
from mlplatform.store.auth import AuthRepository, AuthStoreError, hash_token
from mlplatform.store.models import ApiTokenRow
from tests.support.api_world import cheap_hash


def check_auth_contract(url: str) -> None:
    store = PlatformStore.migrated(url)
    try:
        auth = AuthRepository(store, cheap_hash())
        assert auth.count_users() == 0
        alice = auth.create_user("alice", "approver", "correct horse battery")
        with pytest.raises(AuthStoreError, match="already exists"):
            auth.create_user("alice", "viewer", None)
        with pytest.raises(AuthStoreError, match="role"):
            auth.create_user("bob", "root", None)
        with pytest.raises(AuthStoreError, match="password"):
            auth.create_user("bob", "viewer", "short")
        assert auth.verify_password("alice", "correct horse battery") == alice
        assert auth.verify_password("alice", "wrong") is None
        assert auth.verify_password("nobody", "whatever") is None
        issued = auth.create_token("alice", "ci", ttl_days=1, role="viewer")
        assert issued.secret.startswith("mlp_") and len(issued.secret) > 40
        identity = auth.authenticate_token(issued.secret)
        assert identity is not None and identity.user.username == "alice" and identity.role == "viewer"
        assert auth.list_tokens("alice")[0].last_used_at is not None
        # Only the hash is stored.
        with store.session() as session:
            row = session.get(ApiTokenRow, issued.token.id)
            assert row is not None and row.token_hash == hash_token(issued.secret)
            assert issued.secret not in {row.token_hash, row.prefix}
        auth.revoke_token(issued.token.id)
        assert auth.authenticate_token(issued.secret) is None
        expired = auth.create_token("alice", "old", ttl_days=1)
        with store.session() as session, session.begin():
            row = session.get(ApiTokenRow, expired.token.id)
            assert row is not None
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        assert auth.authenticate_token(expired.secret) is None
        live = auth.create_token("alice", "live", ttl_days=1)
        auth.update_user("alice", active=False)
        assert auth.authenticate_token(live.secret) is None
        assert auth.verify_password("alice", "correct horse battery") is None
        assert [user.username for user in auth.list_users()] == ["alice"]
    finally:
        store.dispose()


def check_audit_contract(url: str) -> None:
    store = PlatformStore.migrated(url)
    try:
        audit = AuditLog(store)
        first = audit.record(
            actor="alice",
            action="model.promote",
            target="m/v2",
            result="ok",
            from_value="1",
            to_value="2",
            reason="better",
            client="127.0.0.1",
            detail={"gate": ["x"]},
        )
        audit.record(actor="bob", action="model.promote", target="m/v3", result="denied")
        audit.record(actor="bob", action="user.create", target="mx", result="ok")
        assert first.created_at.tzinfo is not None
        events = audit.query()
        assert [event.target for event in events] == ["mx", "m/v3", "m/v2"]
        assert [event.target for event in audit.query(target="m")] == ["m/v3", "m/v2"]
        assert [event.actor for event in audit.query(result="denied")] == ["bob"]
        assert audit.query(before_id=events[1].id)[0].detail == {"gate": ["x"]}
        check_refusals_are_bounded(audit)
        deployments = DeploymentRecords(store)
        deployments.upsert(model="m", backend="kserve", url="http://x", deployed_by="alice")
        deployments.upsert(model="m", backend="bentoml", url="http://x", deployed_by="bob")
        assert deployments.set_canary("m", 25) is not None
        [record] = deployments.list()
        assert (record.backend, record.deployed_by, record.canary_percent) == ("bentoml", "bob", 25)
        assert deployments.remove("m") and not deployments.remove("m")
        assert deployments.set_canary("m", 5) is None
    finally:
        store.dispose()


def check_refusals_are_bounded(audit: AuditLog) -> None:
    """Anyone can cause refusals: a repeated one is counted on its row, and a client's new refusal rows per window
    are capped, the rest counted on its latest row.  Successes are always appended."""
    before = len(audit.query(limit=MAX_LIMIT))
    for _ in range(50):
        audit.record(
            actor="anonymous", action="model.rollback", target="m", result="unauthenticated", client="10.9.9.9"
        )
    [repeated] = audit.query(actor="anonymous", action="model.rollback")
    assert repeated.detail == {"repeats": 49}

    for index in range(100):
        audit.record(
            actor=f"guess{index}", action="session.login", target=f"guess{index}", result="denied", client="10.9.9.9"
        )
    from_client = [event for event in audit.query(limit=MAX_LIMIT) if event.client == "10.9.9.9"]
    assert len(from_client) == MAX_REFUSAL_ROWS
    assert from_client[0].detail == {"suppressed": 100 - (MAX_REFUSAL_ROWS - 1)}

    audit.record(actor="carol", action="session.login", target="carol", result="denied", client="10.8.8.8")
    for _ in range(3):
        audit.record(actor="carol", action="model.promote", target="m/v4", result="ok", client="10.9.9.9")
    assert len(audit.query(limit=MAX_LIMIT)) == before + MAX_REFUSAL_ROWS + 1 + 3
