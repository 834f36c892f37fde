"""The AZURE_IOT_HUB channel: device-to-cloud messages to an IoT hub over MQTT 3.1.1 (Microsoft's
"Communicate with an IoT hub using the MQTT protocol"), the MQTT channel (`workers.channels.mqtt`)
with IoT Hub's names.

Each message is sent as an IoT Hub device (`backhaul.iot_hub`: identity DEVICE, the Backhaul device's
own id; DEVICE_TYPE, one id for the type): TLS to `HUB.azure-devices.net:8883`, client id the device
id, user name `HUB.azure-devices.net/DEV/?api-version=2021-04-12`, password a SAS token signed with
the connection string's key (`backhaul.sas_token`) for `tokenLifetime` seconds (default 3600). It
is published, QoS 1, never retained, to `devices/DEV/messages/events/` + the property bag: `$.mid`
(IoT Hub's messageId: the stable message id, the same on every retry and replay), `$.ct` (the
body's content type), `$.ce` (utf-8: bodies are UTF-8 text) and `callback-type` (DATA_UPLINK, ...).

A token is reused while its connection lives and renewed (a new connection) once four fifths of its
lifetime have passed; IoT Hub closes a connection whose token expires. Identity DEVICE means one
MQTT connection per device (IoT Hub takes one per device id): each is a TLS socket with its
keep-alive, pooled up to `pool_size` (least recently used closed first; a device whose connection
was closed reconnects on its next message, one TLS handshake). The bulkhead (and circuit) is the
hub with the identity mode: `azure-iot-hub://HOST:PORT/MODE`.

`host`, `port`, `tls` and `caCertificate` override where to connect (the names in the user name and
the token stay the hub's): for tests against a local broker only.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

from paho.mqtt.properties import Properties

from backhaul.iot_hub import TOKEN_LIFETIME_S, Identity, events_topic, identity_of, parse_connection_string
from backhaul.sas_token import sas_token
from backhaul.secretbox import SealedSecretError
from workers.channels.base import Context, Delivery, Request
from workers.channels.mqtt import DEFAULT_PORT, Destination, Mqtt

PROTOCOL = "3.1.1"  # IoT Hub's dialect of MQTT
RENEW_AFTER = 0.8  # of a token's lifetime


def _fingerprint(identity: Identity, lifetime: int) -> str:
    """What a token is made from (its key hashed): the same fingerprint, the token may be reused."""
    return hashlib.sha256(f"{identity.key}\n{identity.policy}\n{lifetime}".encode()).hexdigest()[:16]


class AzureIotHub(Mqtt):
    name = "AZURE_IOT_HUB"

    def destination(self, delivery: Delivery, settings: dict[str, Any]) -> Destination:
        identity = identity_of(settings, delivery["device"])
        tls = settings.get("tls") is not False
        lifetime = int(settings.get("tokenLifetime") or TOKEN_LIFETIME_S)
        base = Destination(settings.get("host") or identity.host, int(settings.get("port") or DEFAULT_PORT[tls]), tls,
                           settings.get("caCertificate"), identity.username, None, PROTOCOL, identity.device_id,
                           credential=_fingerprint(identity, lifetime))
        pooled = self.pooled(base.key)
        now = time.time()
        if pooled is not None and replace(pooled, password=None, renew_at=None) == base \
                and pooled.renew_at is not None and now < pooled.renew_at:
            return pooled  # the open connection's token is still good
        expiry = int(now) + lifetime
        return replace(base, password=sas_token(identity.resource, identity.key, expiry, identity.policy),
                       renew_at=now + lifetime * RENEW_AFTER)

    def message(self, delivery: Delivery, message_id: str, destination: Destination) -> tuple[str, Properties | None]:
        publish = delivery["publish"]
        assert destination.client_id is not None  # pragma: no mutate (the device id: set by `destination`)
        return events_topic(destination.client_id, [("$.mid", message_id), ("$.ct", publish["contentType"]),
                                                    ("$.ce", "utf-8"), ("callback-type", delivery["kind"])]), None

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        cb = context.view.callbacks.get(delivery["callbackId"] or "")
        if not cb:
            return "azure-iot-hub:gone"
        try:
            settings = context.credentials.get(cb).opened.settings_with(cb.get("channel_settings"))
            host = settings.get("host") or parse_connection_string(settings.get("connectionString")).host
        except (SealedSecretError, ValueError):
            return f"azure-iot-hub:{cb['id']}"  # fails at send time, alone in its bulkhead
        tls = settings.get("tls") is not False
        return f"azure-iot-hub://{host.lower()}:{settings.get('port') or DEFAULT_PORT[tls]}/{settings.get('identity')}"

