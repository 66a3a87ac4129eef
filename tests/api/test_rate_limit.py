"""A tenant over its request rate gets 429 with Retry-After; other tenants are unaffected."""

from __future__ import annotations

from ponder import config


def test_a_tenant_over_its_rate_gets_429_with_retry_after(api, tenant, other_tenant, monkeypatch):
    monkeypatch.setenv("PONDER_LIMITS__TENANT_RATE_PER_S", "0.5")
    monkeypatch.setenv("PONDER_LIMITS__TENANT_BURST", "3")
    config.get_settings.cache_clear()
    try:
        codes = [api.get("/v1/jobs", headers=tenant.headers).status_code for _ in range(4)]
        limited = api.get("/v1/jobs", headers=tenant.headers)
        other = api.get("/v1/jobs", headers=other_tenant.headers)
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert "too many requests" in limited.json()["error"]
    assert other.status_code == 200
