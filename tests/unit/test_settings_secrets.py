"""No development secret outside development: a service on PostgreSQL, or with
FQ_ENVIRONMENT=production, refuses to start while a secret is a built-in default, and says
which; each hotline integration signs with its own secrets."""

from __future__ import annotations

import pytest

from kit.settings import DEV_HASH_SECRET, DEV_HOTLINE_CALLBACK_SECRET, Settings
from services.intake.main import create as create_intake
from services.notify.main import create as create_notify

POSTGRES = "postgresql+asyncpg://fengqiao@db.example/fengqiao"
OWN_HASH = "a-hash-secret-chosen-for-this-centre"
OWN_CALLBACK = "whsec_b3duLWhvdGxpbmUtY2FsbGJhY2stc2VjcmV0"
NEXT_CALLBACK = "whsec_bmV4dC1ob3RsaW5lLWNhbGxiYWNrLXNlY3JldA=="


@pytest.mark.parametrize("place", [{"database_url": POSTGRES},
                                   {"environment": "production"},
                                   {"environment": "staging", "database_url": POSTGRES}])
def test_a_default_secret_stops_a_start_outside_development_naming_it(
        place: dict[str, str], tmp_path: object) -> None:
    with pytest.raises(ValueError, match="FQ_HASH_SECRET") as intake:
        create_intake(Settings(service="intake", var_dir=tmp_path, **place))  # type: ignore[arg-type]
    assert "FQ_HOTLINE_CALLBACK_SECRET" not in str(intake.value)  # intake signs no callbacks
    with pytest.raises(ValueError, match="FQ_HOTLINE_CALLBACK_SECRET") as notify:
        create_notify(Settings(service="notify", var_dir=tmp_path, **place))  # type: ignore[arg-type]
    assert "docs/deploy.md" in str(notify.value)
    with pytest.raises(ValueError, match="FQ_HOTLINE_CALLBACK_SECRETS"):
        create_notify(Settings(service="notify", var_dir=tmp_path, hotline_callback_secret=OWN_CALLBACK,
                               hotline_callback_secrets={"https://h.example": [
                                   DEV_HOTLINE_CALLBACK_SECRET]}, **place))  # type: ignore[arg-type]


def test_own_secrets_start_anywhere_and_the_defaults_start_in_development(
        tmp_path: object) -> None:
    create_intake(Settings(service="intake", var_dir=tmp_path, database_url=POSTGRES,  # type: ignore[arg-type]
                           environment="production", hash_secret=OWN_HASH))
    create_notify(Settings(service="notify", var_dir=tmp_path, database_url=POSTGRES,  # type: ignore[arg-type]
                           hotline_callback_secret=OWN_CALLBACK))
    development = Settings(service="intake", var_dir=tmp_path)  # type: ignore[arg-type]
    assert development.hash_secret == DEV_HASH_SECRET and development.is_development()
    create_intake(development)


def test_each_hotline_signs_with_its_own_secrets_two_during_a_rotation() -> None:
    settings = Settings(hotline_callback_secret=OWN_CALLBACK, hotline_callback_secrets={
        "HTTPS://12345.Zhuji.example:443": [NEXT_CALLBACK, OWN_CALLBACK],
        "http://other.example:8080": [NEXT_CALLBACK]})
    assert settings.hotline_signing_secrets("https://12345.zhuji.example/feedback?x=1") == (
        NEXT_CALLBACK, OWN_CALLBACK)
    assert settings.hotline_signing_secrets("http://other.example:8080/cb") == (NEXT_CALLBACK,)
    assert settings.hotline_signing_secrets("http://other.example/cb") == (OWN_CALLBACK,)
    assert settings.hotline_signing_secrets(None) == (OWN_CALLBACK,)
    with pytest.raises(ValueError, match="origin"):
        Settings(hotline_callback_secrets={"https://h.example/path": [OWN_CALLBACK]})
