"""The API's pool plans every query for its parameters (oss.app.API_SESSION_SETTINGS: why, there)."""
from __future__ import annotations

from oss.app import create_api_pool
from tests.api_support import dsn_for, fresh_database


async def test_api_sessions_use_custom_plans(stack):
    await fresh_database("backhaul_test_api_pool")
    pool = await create_api_pool(dsn_for("backhaul_test_api_pool"))
    try:
        assert await pool.fetchval("SELECT current_setting('plan_cache_mode')") == "force_custom_plan"
        assert await pool.fetchval("SELECT $1::int + 1", 1) == 2  # decoders still set (jsonb) and queries run
        assert await pool.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}
    finally:
        await pool.close()
