"""A replicated Kafka cluster of the tests' own: three KRaft nodes started by deploy/local/kafka.sh
(BACKHAUL_KAFKA_BROKERS=3) in a state folder and on ports of their own, beside the test run's broker."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backhaul.settings import PROJECT_ROOT, local_listeners, settings
from program import supervised

BROKERS = 3
KAFKA_SH = PROJECT_ROOT / "deploy" / "local" / "kafka.sh"


def free_port_block() -> int:
    """A first port P with P..P+2 free for each node (node I on P + 10 (I - 1)), out of the ephemeral range."""
    return supervised.free_port_block([10 * node + kind for node in range(BROKERS) for kind in range(3)])


@dataclass
class KafkaCluster:
    state_dir: Path
    port: int

    @property
    def script_env(self) -> dict[str, str]:
        """The environment deploy/local/kafka.sh needs to act on this cluster."""
        libs = os.environ.get("BACKHAUL_KAFKA_LIBS") or str(settings().state_dir / "kafka" / "libs")
        env = {k: v for k, v in os.environ.items()
               if k not in ("BACKHAUL_KAFKA", "BACKHAUL_KAFKA_GATEWAY", "BACKHAUL_KAFKA_PASSWORD")}
        return {**env, "BACKHAUL_STATE_DIR": str(self.state_dir), "BACKHAUL_KAFKA_LIBS": libs,
                "BACKHAUL_KAFKA_BROKERS": str(BROKERS), "BACKHAUL_KAFKA_PORT": str(self.port),
                "BACKHAUL_KAFKA_CONTROLLER_PORT": str(self.port + 1),
                "BACKHAUL_KAFKA_GATEWAY_PORT": str(self.port + 2)}

    @property
    def client_env(self) -> dict[str, str]:
        """What points Backhaul's processes (and this one) at the cluster, with three copies of each write."""
        password = (self.state_dir / "kafka" / "internal.password").read_text().strip()
        return {"BACKHAUL_KAFKA": local_listeners(str(self.port), BROKERS),
                "BACKHAUL_KAFKA_GATEWAY": local_listeners(str(self.port + 2), BROKERS),
                "BACKHAUL_KAFKA_PASSWORD": password,
                "BACKHAUL_KAFKA_REPLICATION_FACTOR": "3", "BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS": "2"}

    def kafka_sh(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(["bash", str(KAFKA_SH), *args], env=self.script_env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"kafka.sh {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout + result.stderr

    def start(self) -> "KafkaCluster":
        self.kafka_sh("start")
        return self

    @classmethod
    def started(cls, state_dir: Path, attempts: int = 3) -> "KafkaCluster":
        """A running cluster in state_dir; a port taken between the check and Kafka's bind (kafka.sh stops
        the nodes and says 'failed to bind') moves it to another block."""
        for _ in range(attempts - 1):
            try:
                return cls(state_dir, free_port_block()).start()
            except AssertionError as refused:
                if "failed to bind" not in str(refused):
                    raise
                shutil.rmtree(state_dir / "kafka-cluster", ignore_errors=True)
        return cls(state_dir, free_port_block()).start()

    def stop(self) -> None:
        self.kafka_sh("stop")
