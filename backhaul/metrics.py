"""Every Prometheus metric Backhaul exports, defined once.

Label values never carry device ids (or any other unbounded value): only
reasons, callback types, channels, outcomes, topics and partitions.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

# Ingest
FRAMES_IN = Counter("backhaul_frames_in", "Frames read from the frames topic")
FRAMES_REJECTED = Counter("backhaul_frames_rejected", "Frames refused, by reason", ["reason"])
MESSAGES = Counter("backhaul_messages", "Messages created from first frames", ["kind"])
DUPLICATE_FRAMES = Counter("backhaul_duplicate_frames", "Frames merged into an open message window", ["source"])
LATE_FRAMES = Counter("backhaul_late_frames", "Frames that arrived after their message window closed")
LATE_FRAME_LATENESS = Histogram("backhaul_late_frame_lateness_seconds", "How long after the window closed a late frame came",
                                buckets=LATENESS_BUCKETS)
TRASHED_FRAMES = Counter("backhaul_trashed_frames", "Frames whose seqNumber is not newer than the last accepted one")
OVER_QUOTA = Counter("backhaul_over_quota_messages", "Messages beyond the device's daily uplink quota")
WINDOWS_OPEN = Gauge("backhaul_windows_open", "DATA_ADVANCED windows open in this worker")
ADVANCED_EMITTED = Counter("backhaul_advanced_emitted", "DATA_ADVANCED records emitted")
ADVANCED_LATENESS = Histogram("backhaul_advanced_lateness_seconds", "DATA_ADVANCED emission time after its deadline",
                              buckets=LATENCY_BUCKETS)
DEVICE_EVENTS = Counter("backhaul_device_events", "Device events emitted, by type", ["type"])
KEEPALIVE_DEADLINES = Gauge("backhaul_keepalive_deadlines", "Keep-alive deadlines tracked by this worker")
INGEST_BATCH = Histogram("backhaul_ingest_batch_size", "Frames per ingest batch",
                         buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
STATE_RESTORED = Counter("backhaul_state_records_restored", "Device state records restored from the changelog")

# Router
ROUTED = Counter("backhaul_routed_deliveries", "Deliveries rendered by the router", ["type", "channel"])
ROUTE_ERRORS = Counter("backhaul_route_errors", "Records the router could not render, by reason", ["reason"])

# Delivery
DELIVERIES = Counter("backhaul_deliveries", "Delivery attempts by channel and outcome", ["channel", "outcome"])
DELIVERY_RETRIES = Counter("backhaul_delivery_retries", "Retries scheduled", ["channel"])
DELIVERIES_PARKED = Counter("backhaul_deliveries_parked", "Deliveries parked in the retry store without being "
                            "tried, by why they wait (rate limited, circuit open, backlog)", ["reason"])
DELIVERY_DEAD = Counter("backhaul_delivery_dead", "Deliveries whose retries are exhausted", ["channel"])
DELIVERY_LATENCY = Histogram("backhaul_delivery_request_seconds", "Request duration to the customer endpoint",
                             ["channel"], buckets=LATENCY_BUCKETS)
E2E_LATENCY = Histogram("backhaul_e2e_latency_seconds", "From the first frame to the callback answer",
                        ["type"], buckets=LATENCY_BUCKETS)
DELIVERIES_IN_FLIGHT = Gauge("backhaul_deliveries_in_flight", "Deliveries being sent now")
CIRCUITS = Gauge("backhaul_circuits", "Endpoint circuit breakers by state", ["state"])
RETRIES_WAITING = Gauge("backhaul_retries_waiting", "Deliveries waiting for their next retry")
DELIVERY_COPIES = Counter("backhaul_delivery_copies_skipped", "Deliveries read again from Kafka (a rebalance, "
                          "a record published twice upstream) and not sent again")
DOWNLINKS = Counter("backhaul_downlinks", "Downlink outcomes by ACKNOWLEDGE infoCode", ["info_code"])

# Store
STORED = Counter("backhaul_stored_rows", "Rows written to PostgreSQL, by table", ["table"])
STORE_BATCH_SECONDS = Histogram("backhaul_store_batch_seconds", "Time to write one batch to PostgreSQL",
                                buckets=LATENCY_BUCKETS)

# Configuration view
CONFIG_RECORDS = Counter("backhaul_config_records", "Configuration records applied to the local view", ["entity"])
CONFIG_PROPAGATION = Histogram("backhaul_config_propagation_seconds", "From the database change to the worker's view",
                               buckets=LATENCY_BUCKETS)

# Every stage
DEAD_LETTERS = Counter("backhaul_dead_letters", "Records a stage could not handle, moved to dead-letters", ["stage"])

# Kafka and PostgreSQL, seen from each process
INFRA_UP = Gauge("backhaul_infrastructure_up", "1 when this process reached the dependency at its last check "
                 "(every 2 s), 0 when it could not", ["dependency"])
INFRA_ERRORS = Counter("backhaul_infrastructure_errors", "Steps that failed because Kafka or PostgreSQL was "
                       "unreachable (each is waited out and tried again), by stage and dependency",
                       ["stage", "dependency"])

# Kafka
CONSUMER_LAG = Gauge("backhaul_consumer_lag", "Records behind the end of the partition", ["group", "topic", "partition"])

# API
API_REQUESTS = Counter("backhaul_api_requests", "API requests by route and status", ["method", "route", "status"])
API_LATENCY = Histogram("backhaul_api_request_seconds", "API request duration", ["method", "route"],
                        buckets=LATENCY_BUCKETS)
API_RATE_LIMITED = Counter("backhaul_api_rate_limited", "API requests answered 429", ["route"])
API_LOGIN_FAILURES = Counter("backhaul_api_login_failures", "Logins refused for a wrong secret or an unknown login")
API_LOGIN_LOCKOUTS = Counter("backhaul_api_login_lockouts", "Logins or client addresses locked after failed logins",
                             ["scope"])
API_LOGIN_LOCKED = Gauge("backhaul_api_login_locked", "Logins or client addresses locked now", ["scope"])
