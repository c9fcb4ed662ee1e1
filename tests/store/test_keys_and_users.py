"""API keys are stored hashed and shown once; admin passwords are argon2 hashes."""

import pytest
from argon2 import PasswordHasher

from approvalrules.errors import DirectoryError
from approvalrules.store import services
from approvalrules.store.services import (
    create_admin_user,
    create_api_key,
    find_api_key,
    revoke_api_key,
    verify_admin_password,
)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """Production argon2 parameters are slow on purpose; the tests need not be."""
    monkeypatch.setattr(
        services,
        "_password_hasher",
        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


def test_api_key_round_trip(session, tenant):
    key, plain = create_api_key(session, tenant, name="storefront")
    assert plain.startswith(f"ar_{key.prefix}_")
    assert plain.split("_", 2)[2] not in key.hash
    assert find_api_key(session, plain) is key
    assert find_api_key(session, plain + "x") is None
    assert find_api_key(session, "garbage") is None
    revoke_api_key(session, key)
    assert find_api_key(session, plain) is None


def test_admin_password(session, tenant):
    user = create_admin_user(session, tenant, "owner@acme.test", "correct horse", role="owner")
    assert user.password_hash.startswith("$argon2")
    assert verify_admin_password(user, "correct horse")
    assert not verify_admin_password(user, "wrong")


def test_admin_role_is_checked(session, tenant):
    with pytest.raises(DirectoryError) as info:
        create_admin_user(session, tenant, "x", "y", role="god")
    assert info.value.code == "invalid_role"
