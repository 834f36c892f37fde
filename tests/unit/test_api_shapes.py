"""The API v2 shapes as clients of the live service decode them (issue 16): messages, devices,
contracts, and the requests the reference allows (`null` as "unset", `profileIds`, `{"key": null}`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from oss.api.api_users import profile_ids_of
from oss.api.contracts import contract_body, end_times
from oss.api.devices import device_body
from oss.api.messages import message_body
from oss.device_operations import certificate_key
from oss.shape import decimal_string
from oss.validate import field_errors, unset_nulls, validated

STATIONS = {"1A2B": {"id": "1A2B", "name": "Roof", "lat": 43.6047, "lng": 1.4442}}
NOW = 1_764_165_600_000
CREATED = datetime(2025, 11, 1, tzinfo=timezone.utc)


def message_row(**changes: Any) -> dict[str, Any]:
    return {"id": "m1", "device_id": "BEEF", "time": NOW, "data": "c0ffee", "seq_number": 7, "nb_frames": 1,
            "lqi": None, "ack_required": False, "oob": False, "computed_location": None,
            "rinfos": [{"baseStation": "1A2B", "rssi": -126, "snr": 8.456, "freq": 868_130_000, "rep": 1}],
            **changes}


def test_decimal_strings_have_two_decimals_and_no_negative_zero():
    assert [decimal_string(v) for v in (-126, -126.004, 8.456, 43.6047, -0.001, 0, None)] == \
        ["-126.00", "-126.00", "8.46", "43.60", "0.00", "0.00", None]


def test_a_message_carries_every_field_clients_of_the_live_service_decode():
    attempts = [{"status": 200, "info": "success", "cbDef": "cb1", "time": NOW + 50}]
    body = message_body(message_row(), cb_status=attempts, device_name=None, stations=STATIONS, expand={})
    assert body == {
        "device": {"id": "BEEF", "name": "BEEF"}, "time": NOW, "data": "c0ffee", "seqNumber": 7, "nbFrames": 1,
        "lqi": 4, "ackRequired": False,
        "rinfos": [{"baseStation": {"id": "1A2B", "name": "Roof"}, "rssi": "-126.00", "snr": "8.46",
                    "freq": 868_130_000, "lat": "43.60", "lng": "1.44", "rep": 1,
                    "repetitions": [{"repeated": False}], "cbStatus": attempts}]}, \
        "no name: the id; no aggregate yet: lqi NA; not located: no computedLocation; no downlink: none shown"


def test_a_located_aggregated_message_with_a_downlink():
    row = message_row(lqi=3, nb_frames=4, ack_required=True,
                      computed_location={"lat": 43.61, "lng": 1.45, "radius": 1000, "source": 2, "status": 1},
                      rinfos=[{"baseStation": "1A2B", "rssi": -101.5, "snr": 12.0, "freq": 1, "rep": 3},
                              {"baseStation": "9999", "rssi": -120.25, "snr": 3.0, "freq": 1, "rep": 1,
                               "lat": 44.0, "lng": 2.0}])
    downlink = {"station": "1A2B", "data": "0011223344556677", "info_code": 0, "info_message": "Acked",
                "downlink_ack": True, "downlink_overusage": False}
    body = message_body(row, cb_status=[], device_name="meter", stations=STATIONS, downlink=downlink,
                        expand={"oob": {}, "downlinkAnswerStatus": {"baseStation": {"name": {}}}})
    assert body["device"] == {"id": "BEEF", "name": "meter"} and body["lqi"] == 3 and body["oob"] is False
    assert body["computedLocation"] == [{"lat": 43.61, "lng": 1.45, "radius": 1000, "source": 2}]
    first, second = body["rinfos"]
    assert first["cbStatus"] == [] and "cbStatus" not in second, "attempts belong to the first reception"
    assert len(first["repetitions"]) == 3 and (first["rssi"], first["snr"]) == ("-101.50", "12.00")
    assert second["baseStation"] == {"id": "9999"} and (second["lat"], second["lng"]) == ("44.00", "2.00"), \
        "a station no longer registered: no name; its position from the reception"
    assert body["downlinkAnswerStatus"] == {"baseStation": {"id": "1A2B", "name": "Roof"},
                                            "data": "0011223344556677", "infoCode": 0, "infoMessage": "Acked",
                                            "downlinkAck": True, "downlinkOverusage": False}
    unlocated = message_body(message_row(computed_location={"source": 2, "status": 20}), cb_status=[],
                             device_name="m", stations=STATIONS, expand={})
    assert "computedLocation" not in unlocated


def device_row(**changes: Any) -> dict[str, Any]:
    return {"id": "BEEF", "name": None, "device_type_id": "t" * 24, "group_id": "g" * 24, "contract_id": None,
            "type_contract_id": "c" * 24, "pac": "0123456789ABCDEF", "prototype": False, "product_certificate": None,
            "lat": None, "lng": None, "last_computed_location": None, "sequence_number": None,
            "trash_sequence_number": None, "last_com": None, "com_state": None, "lqi": None, "keep_alive": 0,
            "activation_time": None, "created_at": CREATED, "updated_at": CREATED, "state": 7, "token_state": -1,
            "token_end": None, "unsubscription_time": None, "created_by": None, "last_edited_by": None,
            "automatic_renewal": True, "activable": False, **changes}


REFERENCE_DEVICE_FIELDS = {
    "id", "name", "pac", "satelliteCapable", "repeater", "messageModulo", "automaticRenewal",
    "automaticRenewalStatus", "createdBy", "creationTime", "lastEditedBy", "lastEditionTime", "activable",
    "modemCertificate", "productCertificate", "prototype", "location", "lqi", "comState", "sequenceNumber",
    "trashSequenceNumber", "lastCom", "state", "token", "contract", "group", "deviceType"}


def test_a_device_never_heard_and_without_token_still_carries_every_field():
    body = device_body(device_row(), NOW)
    assert REFERENCE_DEVICE_FIELDS <= set(body), REFERENCE_DEVICE_FIELDS - set(body)
    assert {k: body[k] for k in ("name", "satelliteCapable", "repeater", "messageModulo", "location",
                                 "sequenceNumber", "trashSequenceNumber", "lastCom", "lqi", "comState", "token",
                                 "contract", "productCertificate", "modemCertificate", "createdBy",
                                 "lastEditedBy", "automaticRenewalStatus")} == {
        "name": "BEEF", "satelliteCapable": False, "repeater": False, "messageModulo": 4096,
        "location": {"lat": 0.0, "lng": 0.0}, "sequenceNumber": 0, "trashSequenceNumber": 0, "lastCom": 0,
        "lqi": 4, "comState": 4, "token": {"state": 1, "detailMessage": "Off Contract"},
        "contract": {"id": "c" * 24}, "productCertificate": {}, "modemCertificate": {}, "createdBy": "",
        "lastEditedBy": "", "automaticRenewalStatus": 0}


def test_a_device_with_its_token_its_position_and_its_history():
    body = device_body(device_row(contract_id="d" * 24, lat=43.6, lng=1.44, product_certificate="P_0001",
                                  sequence_number=12, trash_sequence_number=9, last_com=NOW - 1000, com_state=1,
                                  keep_alive=3600, lqi=2, token_state=0, token_end=NOW + 1000, state=0,
                                  created_by="u" * 24, automatic_renewal=False,
                                  last_computed_location={"lat": 43.0, "lng": 1.0, "radius": 900, "source": 2,
                                                          "status": 1}), NOW)
    assert body["contract"] == {"id": "d" * 24} and body["location"] == {"lat": 43.6, "lng": 1.44}
    assert body["token"] == {"state": 0, "end": NOW + 1000, "detailMessage": "Valid"}
    assert (body["sequenceNumber"], body["trashSequenceNumber"], body["comState"]) == (12, 9, 1)
    assert body["lastComputedLocation"] == {"lat": 43.0, "lng": 1.0, "radius": 900, "sourceCode": 2}
    assert (body["createdBy"], body["lastEditedBy"], body["automaticRenewalStatus"]) == ("u" * 24, "u" * 24, 1)
    assert body["productCertificate"] == {"key": "P_0001"}
    ended = device_body(device_row(token_state=0, token_end=NOW - 1, state=0), NOW)
    assert (ended["token"]["state"], ended["automaticRenewalStatus"], ended["state"]) == (1, 3, 2)


def test_a_contract_carries_every_field_with_the_reference_defaults():
    row = {"id": "c" * 24, "name": "Gold", "group_id": "g" * 24, "order_id": "o" * 24, "order_name": None,
           "contract_id": None, "user_id": None, "pricing_model": 2, "subscription_plan": 0, "start_time": 1,
           "activation_end_time": None, "communication_end_time": 5, "timezone": "UTC", "token_duration": 0,
           "max_tokens": 0, "tokens_in_use": 0, "tokens_used": 0, "bidir": False, "high_priority_downlink": False,
           "max_uplink_frames": 140, "max_downlink_frames": 4, "automatic_renewal": True, "renewal_duration": 0,
           "options": [], "blacklisted_territories": [], "created_by": "u" * 24, "created_at": CREATED,
           "updated_at": CREATED, "last_edited_by": None}
    body = contract_body(row)
    assert {k: body[k] for k in ("order", "contractId", "userId", "activationEndTime", "communicationEndTime",
                                 "lastEditedBy")} == {
        "order": {"id": "o" * 24, "name": "Gold"}, "contractId": "c" * 24, "userId": "u" * 24,
        "activationEndTime": 0, "communicationEndTime": 5, "lastEditedBy": "u" * 24}
    assert end_times({"activation_end_time": 0, "communication_end_time": None, "name": "x"}) == {
        "activation_end_time": None, "communication_end_time": None, "name": "x"}, "0 is no limit"


def test_null_means_unset():
    update = {"name": None, "lat": None, "productCertificate": {"key": None}, "activable": None, "unknown": None}
    assert unset_nulls(update, "deviceUpdateJob") == {"lat": None, "productCertificate": {"key": None}}, \
        "a property that can be cleared keeps its null; the others are as if not sent"
    assert validated({"id": "00ff", "name": "d", "pac": "0" * 16, "deviceTypeId": "a" * 24, "lat": None,
                      "productCertificate": {"key": None}, "prototype": None}, "deviceCreationJob") == \
        {"id": "00ff", "name": "d", "pac": "0" * 16, "deviceTypeId": "a" * 24, "productCertificate": {"key": None}}
    callback = unset_nulls({"channel": "URL", "url": None, "headers": {"X-Api-Key": None}, "signingSecret": None,
                            "bodyTemplate": None}, "updateCallback")
    assert callback == {"channel": "URL", "headers": {"X-Api-Key": None}, "signingSecret": None,
                        "bodyTemplate": None}, "callbacks: the nulls that remove a secret or a template stay"
    for channel in ({}, [], None, 3, "FAX"):  # not a kind: left to validation to refuse, nothing removed
        assert unset_nulls({"channel": channel, "url": None}, "createCallback") == {"channel": channel, "url": None}
    assert [e.field for e in field_errors(unset_nulls({"name": None, "parentId": "a" * 24}, "groupCreate"),
                                          "groupCreate")] == ["name"], "a required property sent as null is missing"
    assert certificate_key({"key": None}) is None and certificate_key({"key": ""}) is None
    assert certificate_key({}, "P_1") == "P_1" and certificate_key(None, "P_1") is None


@pytest.mark.parametrize("body, named", [
    ({"profileId": ["a"]}, (["a"], "profileId")),
    ({"profileIds": ["b"]}, (["b"], "profileIds")),
    ({"profileId": ["a"], "profileIds": ["b"]}, (["a", "b"], "profileId")),
    ({"name": "x"}, None),
])
def test_profile_ids_under_either_name(body, named):
    assert profile_ids_of(body) == named
