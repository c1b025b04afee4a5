"""`fengqiao keys create --profile hotline`: the scopes a 12345 integration needs, no more."""

from __future__ import annotations

import pytest

from kit.auth import key_scopes


def test_the_hotline_profile_posts_reads_its_cases_and_its_callbacks_only() -> None:
    scopes = key_scopes("hotline", [], ["hotline_12345"])
    assert sorted(scopes) == ["cases:read", "deliveries:read", "hotline:endpoint",
                              "intake:write"]


@pytest.mark.parametrize("profile,scopes,channels,problem", [
    ("hotline", [], [], "--channel"),
    ("hotline", ["admin"], ["hotline_12345"], "do not name --scope"),
    ("grid", [], ["grid"], "unknown profile"),
    (None, [], [], "--scope"),
])
def test_a_key_without_a_clear_set_of_scopes_is_refused_with_what_to_do(
        profile: str | None, scopes: list[str], channels: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        key_scopes(profile, scopes, channels)


def test_named_scopes_pass_through() -> None:
    assert key_scopes(None, ["cases:read"], []) == ["cases:read"]
