"""The local stack's broker count sets where clients connect and how topics are replicated."""
from __future__ import annotations

import pytest

from backhaul.settings import Settings, local_listeners


def _settings(monkeypatch, **env: str) -> Settings:
    for name in ("BACKHAUL_KAFKA", "BACKHAUL_KAFKA_GATEWAY", "BACKHAUL_KAFKA_PORT", "BACKHAUL_KAFKA_GATEWAY_PORT",
                 "BACKHAUL_KAFKA_BROKERS", "BACKHAUL_KAFKA_REPLICATION_FACTOR", "BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_one_broker_is_the_default_with_one_copy(monkeypatch):
    s = _settings(monkeypatch)
    assert s.kafka_bootstrap == "127.0.0.1:29092"
    assert s.kafka_gateway == "127.0.0.1:29094"
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (1, 1)


def test_three_brokers_list_every_node_and_replicate_three_times_with_two_in_sync(monkeypatch):
    s = _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS="3", BACKHAUL_KAFKA_PORT="39092",
                  BACKHAUL_KAFKA_GATEWAY_PORT="39094")
    assert s.kafka_bootstrap == "127.0.0.1:39092,127.0.0.1:39102,127.0.0.1:39112"
    assert s.kafka_gateway == "127.0.0.1:39094,127.0.0.1:39104,127.0.0.1:39114"
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (3, 2)


@pytest.mark.parametrize("brokers, copies, in_sync", [(2, 2, 1), (5, 3, 2)])
def test_copies_follow_the_broker_count_up_to_three(monkeypatch, brokers, copies, in_sync):
    s = _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS=str(brokers))
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (copies, in_sync)


def test_explicit_settings_win(monkeypatch):
    s = _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS="3", BACKHAUL_KAFKA="kafka-0:9092",
                  BACKHAUL_KAFKA_REPLICATION_FACTOR="2", BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS="2")
    assert s.kafka_bootstrap == "kafka-0:9092"
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (2, 2)


def test_local_listeners_step_ten_ports_a_node():
    assert local_listeners("100", 1) == "127.0.0.1:100"
    assert local_listeners("100", 2) == "127.0.0.1:100,127.0.0.1:110"


@pytest.mark.parametrize("in_sync", ["0", "4"])
def test_more_copies_in_sync_than_exist_is_refused_naming_both(monkeypatch, in_sync):
    with pytest.raises(ValueError, match="BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS.*BACKHAUL_KAFKA_REPLICATION_FACTOR"):
        _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS="3", BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS=in_sync)


def test_the_process_reads_its_settings_once():
    from backhaul import settings as settings_module

    settings_module.settings.cache_clear()
    assert settings_module.settings() is settings_module.settings()


@pytest.mark.parametrize("brokers, visible_s", [("1", 0.5), ("3", 15.0)])
def test_frames_are_given_longer_to_become_readable_when_they_are_replicated(monkeypatch, brokers, visible_s):
    monkeypatch.delenv("BACKHAUL_APPEND_VISIBLE_S", raising=False)
    assert _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS=brokers).append_visible_s == visible_s


def test_a_chosen_visibility_allowance_wins_on_a_cluster(monkeypatch):
    monkeypatch.setenv("BACKHAUL_APPEND_VISIBLE_S", "2")
    assert _settings(monkeypatch, BACKHAUL_KAFKA_BROKERS="3").append_visible_s == 2.0
