"""Which destinations notify refuses (server-side request forgery)."""

from __future__ import annotations

import pytest

from kit.settings import DEFAULT_DENIED_NETWORKS, Settings
from services.notify.destinations import Destinations

DEFAULT = Destinations(DEFAULT_DENIED_NETWORKS)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8001/v1/admin", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:9000/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://[fe80::1]/"])
def test_loopback_link_local_and_unspecified_literals_are_refused(url: str) -> None:
    assert DEFAULT.refusal_of_literal(url) is not None


@pytest.mark.parametrize("url", [
    "https://10.12.0.8/hook", "http://192.168.1.20:8080/hook", "http://172.20.0.1/hook",
    "https://dept.example.gov.cn/hook"])
def test_e_government_private_ranges_and_names_are_allowed_where_given(url: str) -> None:
    assert DEFAULT.refusal_of_literal(url) is None


async def test_a_name_is_refused_by_what_it_resolves_to() -> None:
    refusal = await DEFAULT.refusal("http://localhost:8004/hook")
    assert refusal is not None and refusal.startswith("localhost resolves to ")


async def test_an_empty_list_allows_everything() -> None:
    assert await Destinations([]).refusal("http://127.0.0.1/hook") is None


def test_a_malformed_network_in_the_settings_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        Settings(webhook_denied_networks=["not-a-network"])
