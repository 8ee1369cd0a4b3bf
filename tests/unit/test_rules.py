from shared.auth import Permission, Role, allowed
from shared.auth.keys import generate_key, hash_key


def test_role_rules():
    assert allowed(Role.READER, Permission.READ)
    assert not allowed(Role.READER, Permission.INGEST)
    assert allowed(Role.UPLOADER, Permission.INGEST) and not allowed(Role.UPLOADER, Permission.ANNOTATE)
    assert allowed(Role.ANNOTATOR, Permission.ANNOTATE) and not allowed(Role.ANNOTATOR, Permission.MANAGE_LABELS)
    assert all(allowed(Role.ADMIN, p) for p in Permission)
    assert not any(allowed(r, Permission.MANAGE_USERS) for r in (Role.READER, Role.UPLOADER, Role.ANNOTATOR))


def test_keys_are_random_and_stored_hashed():
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith("ick_") and len(a) > 40
    assert hash_key(a) != a and len(hash_key(a)) == 64 and hash_key(a) == hash_key(a)
