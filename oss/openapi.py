"""Our OpenAPI document: built here, stored as schemas/openapi.json, served at /v2/openapi.json.

`python -m oss.openapi` rewrites the file; a test keeps the file, this
builder and the application's routes in step. Request bodies are validated
against these schemas (oss.validate), so the document is what the API accepts.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from aiohttp import web

from oss.coverage_answers import DEFAULT_RADIUS_M, MAX_BULK_LOCATIONS, MAX_LOCATIONS, MAX_RADIUS_M
from oss.coverage_kmz import KMZ_CONTENT_TYPE, MAX_KMZ_TILES
from oss.coverage_tiles import INSTALLATIONS, MAX_KMZ_ZOOM, MAX_TILE_ZOOM, VIEWS
from oss.errors import JSON
from oss.params import FIRST_YEAR, LAST_YEAR
from oss.profiles import PROFILES
from radio import station_rows as st
from radio.link_budget import INSTALLATION_LOSS_DB, UPLINK_CLASS_STEP_DB
from radio.path_loss import ENVIRONMENTS

routes = web.RouteTableDef()
INT32 = 2**31 - 1
MAX_MS = 2**53


def S(lo: int = 0, hi: int | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", **kw}
    if lo:
        out["minLength"] = lo
    if hi is not None:
        out["maxLength"] = hi
    return out


def patterned(regex: str, message: str) -> dict[str, Any]:
    """A string matching `regex`; `message` is what oss.validate answers when it does not."""
    extra: dict[str, Any] = {"x-pattern-message": message}
    return S(pattern=regex, **extra)


def I(lo: int = -INT32 - 1, hi: int = INT32, **kw: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi, **kw}


def E(*values: int, **kw: Any) -> dict[str, Any]:
    return {"type": "integer", "enum": list(values), **kw}


def N(lo: float, hi: float, **kw: Any) -> dict[str, Any]:
    return {"type": "number", "minimum": lo, "maximum": hi, **kw}


def A(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **kw}


def O(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    """An object schema of `props`. A text `description=` describes the object itself; a property
    named description is given as a schema (a dict), like every other property."""
    described = props.pop("description") if isinstance(props.get("description"), str) else None
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if described is not None:
        out["description"] = described
    return out


def R(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


B = {"type": "boolean"}
MS = I(0, MAX_MS, description="epoch milliseconds")
OID = patterned("^[0-9a-f]{24}$", "must be 24 hexadecimal characters")
DEVICE_ID = patterned("^[0-9A-Fa-f]{1,8}$", "must be 1 to 8 hexadecimal characters")
PAC = patterned("^[0-9A-Fa-f]{16}$", "must be 16 hexadecimal characters")
TZ = S(1, 64, format="timezone")
EMAIL = S(3, 250, format="email")
LAT, LNG = N(-90, 90), N(-180, 180)
GROUP_TYPES = E(0, 2, 5, 6, 7, 8, 9, 10, 11, description="0 SO, 2 Basic, 5 SVNO, 6 Partners, 7 NIP, 8 DIST, "
                                                      "9 Channel, 10 Starter, 11 Partner")
MIN_GROUP = O(id=S(), name=S(), type=I(), level=I())
PROFILE_ID = S(enum=sorted(PROFILES), description="; ".join(f"{p.id} {p.name}" for p in PROFILES.values()))
USER_ROLE_REF = O(("groupId", "profileId"), groupId=OID, profileId=PROFILE_ID)
CERT = O(key=nullable(S(0, 100, description='null or "" unsets the certificate')))
CALLBACK_COMMON: dict[str, Any] = dict(channel=S(enum=["URL", "BATCH_URL", "EMAIL", "MQTT", "KAFKA",
                                                           "AZURE_EVENT_HUBS", "AWS_IOT", "KINESIS", "SQS",
                                                           "AZURE_IOT_HUB"]),
                       callbackType=E(0, 1, 2, 3, description="0 DATA, 1 SERVICE, 2 ERROR, 3 EVENT (Backhaul)"),
                       callbackSubtype=E(0, 1, 2, 3, 4, 5, 6, description=(
                           "DATA: 2 UPLINK, 3 BIDIR; SERVICE: 0 STATUS, 4 ACKNOWLEDGE, 5 REPEATER, "
                           "6 DATA_ADVANCED (1 GEOLOC is deprecated); none for ERROR and EVENT")),
                       payloadConfig=S(0, 2000), enabled=B)
SECRETS_NOTE = ("Secrets are write-only (oss.secret_fields): URL credentials (user:password@), secret headers "
                "(Authorization, Cookie, names holding auth, key, token, secret, signature, password, passwd, "
                "credential, session or cookie) and the signing secret are sealed at rest and read back masked "
                "(********) by callers that may write callbacks, not at all by the others.")
SIGNING = S(0, 200, description='Standard Webhooks secret: whsec_ + base64 of 24 to 64 random bytes, or "generate" '
                                "(the answer shows the generated secret once). Write-only.")
HTTP = dict(url=S(1, 2000, description="may carry user:password@ (sent as Basic auth; write-only)"),
            httpMethod=S(enum=["GET", "PUT", "POST"]),
            headers=O(**{}) | {"additionalProperties": S(0, 1000), "description": SECRETS_NOTE},
            signingSecret=SIGNING)
CHANNEL_SETTINGS = O() | {"additionalProperties": True, "description": (
    "The channel's settings, checked per channel (oss.channel_settings; README, Channels). MQTT: host, port, tls, "
    "caCertificate, username, password, topic (template), qos 0|1, protocol 3.1.1|5. KAFKA: bootstrapServers, "
    "topic (template), tls, sasl {mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512, username, password}. "
    "AZURE_EVENT_HUBS: connectionString, topic (template; default the string's EntityPath), bootstrapServers and "
    "tls (overrides, for tests). AWS_IOT, KINESIS, SQS: region, accessKeyId, secretAccessKey, sessionToken, endpointUrl; "
    "AWS_IOT topic (template), qos 0|1; KINESIS streamName or streamArn, partitionKey (template; default the device); "
    "SQS queueUrl. AZURE_IOT_HUB: connectionString (the hub's or a device's), identity "
    "DEVICE|DEVICE_TYPE, deviceId, tokenLifetime (s), host, port, tls, caCertificate (overrides, for tests). Secret members (password, sasl.password, connectionString, secretAccessKey, sessionToken) are write-only, sealed at rest, read back as ******** by writers, left "
    "out for readers; on update ******** or leaving them out keeps them (on the same destination), null removes "
    "them.")}
# On update a secret member's null removes it (elsewhere in channelSettings null means "unset"): declared nullable.
CHANNEL_SETTINGS_UPDATE = CHANNEL_SETTINGS | O(password=nullable(S(0, 1000)),
                                              secretAccessKey=nullable(S(0, 1000)), sessionToken=nullable(S(0, 4000)),
                                              sasl=O(password=nullable(S(0, 1000))) | {"additionalProperties": True})
SETTINGS_CALLBACK = dict(channelSettings=CHANNEL_SETTINGS, bodyTemplate=S(1, 10000),
                         contentType=S(0, 100, description="text/plain (default) or application/json (checked)"))
DEVICE_EDIT: dict[str, Any] = dict(name=S(1, 100), activable=B, automaticRenewal=B, lat=nullable(LAT), lng=nullable(LNG),
                   productCertificate=nullable(CERT), prototype=B)
# The operator's registry of base stations (Backhaul; radio.station_rows holds the ranges, the CSV import's too).
STATION_ID = patterned("^[0-9A-Fa-f]{4}$", "must be 4 hexadecimal digits")
STATION_EDIT: dict[str, Any] = dict(
    name=S(1, st.NAME_MAX), position=O(("lat", "lng"), lat=N(*st.LAT_RANGE), lng=N(*st.LNG_RANGE)),
    antennaHeight=N(*st.HEIGHT_RANGE, description="antenna height above ground, metres (default 30)"),
    antennaGain=N(*st.GAIN_RANGE, description="antenna gain, dBi (default 6)"),
    cableLoss=N(*st.CABLE_RANGE, description="cable and connector loss, dB (default 2)"),
    environment=S(enum=list(ENVIRONMENTS), description="picks the path-loss model (radio/path_loss.py; default urban)"),
    state=S(enum=list(st.STATES), description="enabled: serves the network; disabled: its frames are refused; "
                                              "planned: not built yet, shown in coverage forecasts (default enabled)"))
RADIO_CONFIGURATION = I(0, 7, description="0 RC1, 1 RC2, 2 RC3, 3 RC101, 4 RC4, 5 RC5, 6 RC6, 7 RC7")
# The registry's certificates (oss.registry), as the API shows them.
CERTIFICATE: dict[str, Any] = dict(
    id=S(), name=S(), status=I(description="0 ongoing, 1 finalized"), key=S(),
    manufacturer=O(id=S(), name=S(description="with fields=manufacturer(name)")), version=S(), description=S(),
    modes=A(I(), description="0 uplink only, 1 uplink and downlink"), inputSensitivity=I())
OPERATOR_SETTINGS: dict[str, Any] = dict(
    transmitterPower=I(0, 1000, description="mW"), minDb=I(-170, 0, description="dBm, at most maxDb"),
    maxDb=I(-170, 0, description="dBm"), alertTime=I(300, 86400, description="seconds"),
    requestTrackerBaseUrl=patterned("^https?://[^\\s]{1,2000}$", "must be an http or https URL"),
    telecommunicationStandard=O(("id",), id=S(1, 100), name=S(0, 100)), antenna=O(model=S(0, 100)))
# Coverage (oss/api/coverage.py, oss.coverage_answers)
RADIUS = N(0, MAX_RADIUS_M, description=f"metres (default {DEFAULT_RADIUS_M:g}): the area whose predictions are "
                                        "averaged, sampled on 19 points (0: the location alone)")
SITUATION = S(enum=list(INSTALLATION_LOSS_DB))
SITUATION_NOTE = ", ".join(f"{k} {v:g} dB of extra loss" for k, v in INSTALLATION_LOSS_DB.items())
DEVICE_CLASS = I(0, len(UPLINK_CLASS_STEP_DB) - 1, description="uplink class 0U..3U")
MARGINS_NOTE = ("whole dB above the stations' sensitivity, best station first (redundancy 1, 2, 3), averaged over "
                "the area; 0 where there is no such station")
JOB_ERROR = O(entity=S(), row=I(description="line (CSV) or 1-based index (JSON) of the row"), field=S(),
              message=S(), type=I(description="0 ENTITY, 1 SYSTEM"))

DOWNLINK_ANSWER_STATUS = O(
    baseStation=O(id=S(), name=S()) | {"description": "the station chosen to transmit the downlink"},
    data=S(description="the downlink, 8 bytes in hex"),
    infoCode=E(0, 1, 2, 3, 4, 5, 6, 7, 8, description=(
        "Backhaul extension: the ACKNOWLEDGE outcome. 0 ACKED, 1 NO_ANSWER, 2 INVALID_PAYLOAD, 3 OVERRUN_ERROR, "
        "4 NETWORK_ERROR (also: the uplink came too late for a downlink), 5 PENDING (granted, not transmitted "
        "yet; never sent as an ACKNOWLEDGE), 6 NO_DOWNLINK_CONTRACT, 7 TOO_MANY_REQUESTS (its receive window "
        "overlaps one of a downlink already granted to the device), 8 INVALID_CONFIGURATION")),
    infoMessage=S(description="Backhaul extension: the ACKNOWLEDGE infoMessage"),
    downlinkAck=B, downlinkOverusage=B) | {"description": (
        "The downlink the uplink received, and (Backhaul extension, as the ACKNOWLEDGE callback carries them) "
        "infoCode, infoMessage, downlinkAck, downlinkOverusage. Present once the downlink was granted or "
        "decided; plannedPower, operator and country are not known to Backhaul and left out.")}

END_MS = I(0, MAX_MS, description="epoch milliseconds; 0 = no limit")
# Every field of the reference's contract model, always in the answer (README "API v2 compatibility").
CONTRACT: dict[str, Any] = dict(
    id=S(), name=S(), group=MIN_GROUP, order=O(id=S(), name=S(description="the contract's name when the order has "
                                                                         "none")),
    contractId=S(description="the external id; the contract's id when it has none"),
    userId=S(description="the BSS user who created it; the creating API user when none was given"),
    pricingModel=I(), subscriptionPlan=I(), startTime=MS, activationEndTime=END_MS, communicationEndTime=END_MS,
    timezone=S(), tokenDuration=I(), maxTokens=I(), tokensInUse=I(), tokensUsed=I(), bidir=B, highPriorityDownlink=B,
    maxUplinkFrames=I(), maxDownlinkFrames=I(), automaticRenewal=B, renewalDuration=I(), options=A(O()),
    blacklistedTerritories=A(MIN_GROUP), createdBy=S(description='"" when created outside the API'),
    creationTime=MS, lastEditionTime=MS, lastEditedBy=S(description="createdBy until the first edition"))
CONTRACT_FIELDS = tuple(CONTRACT)

NAME_ID = O(("id", "name"), id=S(), name=S())
DEVICE_CERTIFICATE = O(id=S(), key=S(), description="left empty ({}) when the device has no certificate")
# Every field of the reference's device model, always in the answer; defaults where Backhaul has no
# concept (README "API v2 compatibility").
DEVICE: dict[str, Any] = dict(
    id=S(), name=S(description="the id when the device has no name"), deviceType=O(id=S(), name=S()),
    group=MIN_GROUP, contract=O(id=S(), name=S(), description=(
        "the device's contract, else its device type's (absent only for a device registered outside the API "
        "whose device type has no contract)")),
    pac=S(), satelliteCapable=B | {"description": "always false"}, repeater=B | {"description": "always false"},
    messageModulo=I(description="4096: sequence numbers are 12-bit"), prototype=B,
    productCertificate=DEVICE_CERTIFICATE, modemCertificate=DEVICE_CERTIFICATE,
    location=O(lat=LAT, lng=LNG, description="the fixed position; lat 0, lng 0 when it has none"),
    lastComputedLocation=O(lat={"type": "number"}, lng={"type": "number"}, radius=I(), sourceCode=I(),
                           description="left out until a message was located"),
    sequenceNumber=I(description="0 until the first message"),
    trashSequenceNumber=I(description="0 until a message is trashed"), lastCom=I(0, MAX_MS, description=(
        "epoch milliseconds; 0 until the first message")),
    lqi=I(description="0 LIMIT, 1 AVERAGE, 2 GOOD, 3 EXCELLENT, 4 NA"),
    activationTime=MS, creationTime=MS, state=I(description="0 OK, 1 DEAD, 2 OFF_CONTRACT, 3 DISABLED, 4 WARN, "
                                                            "5 DELETED, 6 SUSPENDED, 7 NOT_ACTIVABLE"),
    comState=I(description="0 NO, 1 OK, 2 WARN, 3 KO, 4 NA, 5 NOT_SEEN"), comStateMissedPeriods=I(),
    token=O(state=I(description="0 OK, 1 OFF_CONTRACT (also: no token)"), detailMessage=S(), end=MS),
    unsubscriptionTime=MS, createdBy=S(description='"" when registered outside the API'),
    lastEditionTime=MS, lastEditedBy=S(description="createdBy until the first edition"), automaticRenewal=B,
    automaticRenewalStatus=I(description="0 ALLOWED, 1 NOT_ALLOWED, 3 ENDED (2 RENEWED: never)"), activable=B)
DEVICE_FIELDS = tuple(k for k in DEVICE if k not in ("lastComputedLocation", "activationTime", "comStateMissedPeriods",
                                                     "unsubscriptionTime", "contract"))
LIVE_DECIMAL = patterned(r"^-?[0-9]+\.[0-9]{2}$", "must be a decimal string with two decimals") | {
    "description": 'a decimal string with two decimals, e.g. "-126.00": the live service\'s form (the published '
                   "document says number; README \"API v2 compatibility\")"}
MESSAGE: dict[str, Any] = dict(
    device=NAME_ID, time=MS, data=S(), seqNumber=I(), nbFrames=I(), lqi=I(description="4 NA until the message's "
                                                                                       "window closes"),
    ackRequired=B, oob=B | {"description": "with fields=oob"},
    computedLocation=A(O(lat={"type": "number"}, lng={"type": "number"}, radius=I(), source=I()),
                       description="left out when the message could not be located"),
    rinfos=A(O(baseStation=O(id=S(), name=S()), rssi=LIVE_DECIMAL, snr=LIVE_DECIMAL, freq={"type": "number"},
               lat=LIVE_DECIMAL, lng=LIVE_DECIMAL, rep=I(),
               repetitions=A(O(nseq=I(), repeated=B), description="one entry per repetition heard"),
               cbStatus=A(O(status=I(), info=S(), cbDef=S(description="the callback's id"), time=MS),
                          description="every attempt of every callback, on the first reception")),
             description="one entry per receiving station"),
    downlinkAnswerStatus=DOWNLINK_ANSWER_STATUS)
MESSAGE_FIELDS = ("device", "time", "data", "seqNumber", "nbFrames", "lqi", "ackRequired", "rinfos")

SCHEMAS: dict[str, Any] = {
    "ErrorContent": O(message=S(), errors=A(O(type=S(enum=["body", "query", "path"]), field=S(), message=S()))),
    "Message": O(message=S()),
    "MethodNotAllowed": O(message=S(), allowedMethods=A(S())),
    "paging": O(next=S(description=(
        "full URL of the next page; absent on the last page. Entity lists: the same query with the next "
        "offset, on a stable order. Time-ordered lists (messages, locations, undelivered callbacks, newest "
        "first): before = the time of the page's last item and pageId = an opaque token of its tie-breaker "
        "(Backhaul; the live service gives before only), so nothing written while a client pages makes an "
        "item repeat or go missing"))),
    "createResponse": O(id=S()),
    "apiUserCreated": O(id=S(), accessToken=S(description="shown once; stored hashed")),
    "accessToken": O(accessToken=S()),
    "jobStarted": O(total=I(), jobId=S()),
    "groupCreate": O(("name", "parentId"), name=S(3, 100), description=S(0, 300), type=GROUP_TYPES, timezone=TZ,
                     parentId=OID),
    "groupUpdate": O(name=S(3, 100), description=nullable(S(0, 300)), type=GROUP_TYPES, timezone=TZ,
                     parentId=OID | {"description": "Backhaul: move the group and its sub-groups under this group "
                                                    "of the caller's subtree (not the caller's own group, not under "
                                                    "itself); 409 when devices would be left on device types of "
                                                    "groups no longer above them"}),
    "group": O(id=S(), name=S(), nameCI=S(), description=S(), type=I(), timezone=S(), parentId=S(),
               path=A(MIN_GROUP, description="ancestors visible to the caller, nearest first"), level=I(), leaf=B,
               createdBy=S(), creationTime=MS),
    "apiUserCreation": O(("groupId", "name", "profileIds"), groupId=OID, name=S(1, 100), timezone=TZ,
                         profileIds=A(PROFILE_ID, minItems=1)),
    "apiUserEdition": O(name=S(1, 100), timezone=TZ, profileId=A(PROFILE_ID),
                        profileIds=A(PROFILE_ID, description="the same as profileId (the reference's examples' "
                                                             "name); both may be sent")),
    "profileIds": O(profileId=A(PROFILE_ID, minItems=1), profileIds=A(
        PROFILE_ID, minItems=1, description="the same as profileId (the reference's examples' name); one of the two "
                                            "is required, both may be sent")),
    "apiUser": O(id=S(), name=S(), timezone=S(), group=MIN_GROUP, creationTime=MS,
                 profiles=A(O(id=S(), name=S(), roles=A(O())))),
    "userCreation": O(("firstName", "lastName", "email", "userRoles"), firstName=S(1, 100), lastName=S(1, 100),
                      email=EMAIL, timezone=TZ, userRoles=A(USER_ROLE_REF, minItems=1)),
    "userUpdate": O(firstName=S(1, 100), lastName=S(1, 100), timezone=TZ, userRoles=A(USER_ROLE_REF),
                    locked=B | {"description": "Backhaul: lock (true) or unlock (false) the user's console login; "
                                               "a locked user's sessions end at once"}),
    "userRoles": O(("userRoles",), userRoles=A(USER_ROLE_REF, minItems=1)),
    "user": O(id=S(), firstName=S(), lastName=S(), email=S(), timezone=S(), locked=B, creationTime=MS,
              lastLoginTime=MS, userRoles=A(O(group=MIN_GROUP, profile=O(id=S(), name=S())))),
    "profile": O(id=S(), name=S(), group=MIN_GROUP,
                 roles=A(O(id=S(), name=S(), perms=A(O(code=I(), name=S()))))),
    "contractInfoCreate": O(
        ("name", "groupId"), name=S(1, 100), groupId=OID, orderId=S(1, 100), orderName=S(0, 100),
        contractId=S(0, 100), userId=S(0, 100), pricingModel=E(1, 2, 3), subscriptionPlan=I(0, 10), startTime=MS,
        activationEndTime=END_MS, communicationEndTime=END_MS, timezone=TZ,
        tokenDuration=I(0, 1200, description="months, 0 = unlimited"),
        maxTokens=I(0, INT32, description="0 = unlimited"), bidir=B, highPriorityDownlink=B,
        maxUplinkFrames=I(0, INT32), maxDownlinkFrames=I(0, INT32), automaticRenewal=B,
        renewalDuration=I(0, 1200), options=A(O(("id",), id=S(1, 100), parameters=O() | {
            "additionalProperties": S(0, 1000)})), blacklistedTerritories=A(OID)),
    "contractInfoUpdate": O(
        name=S(1, 100), orderName=nullable(S(0, 100)), activationEndTime=nullable(END_MS),
        communicationEndTime=nullable(END_MS),
        maxTokens=I(0, INT32), bidir=B, highPriorityDownlink=B, maxUplinkFrames=I(0, INT32),
        maxDownlinkFrames=I(0, INT32), automaticRenewal=B, renewalDuration=I(0, 1200),
        options=A(O(("id",), id=S(1, 100), parameters=O() | {"additionalProperties": S(0, 1000)})),
        blacklistedTerritories=A(OID)),
    "contractInfo": O(CONTRACT_FIELDS, **CONTRACT),
    "deviceTypeCreate": O(
        ("name", "groupId"), name=S(1, 100), description=S(0, 300), groupId=OID,
        contractId=OID, contracts=A(O(("id",), id=OID), maxItems=1),
        keepAlive=I(0, INT32, description="seconds; 0 = off, else at least the configured minimum (1800 s)"),
        alertEmail=EMAIL, downlinkMode=E(0, 1, 2, 3, description="0 DIRECT, 1 CALLBACK, 2 NONE, 3 MANAGED"),
        downlinkDataString=S(0, 100, description="8 bytes in hex; may hold {tapId}, {rssi}, {time}"),
        payloadType=E(2, 3, 4, 5, description="2 regular, 3 custom grammar, 4 geolocation, 5 ASCII"),
        payloadConfig=S(0, 2000, description="custom grammar, required when payloadType is 3"),
        automaticRenewal=B),
    "deviceTypeUpdate": O(
        name=S(1, 100), description=nullable(S(0, 300)), contractId=OID,
        contracts=A(O(("id",), id=OID), maxItems=1), keepAlive=I(0, INT32), alertEmail=nullable(EMAIL),
        downlinkMode=E(0, 1, 2, 3), downlinkDataString=nullable(S(0, 100)), payloadType=E(2, 3, 4, 5),
        payloadConfig=nullable(S(0, 2000)), automaticRenewal=B),
    "deviceType": O(id=S(), name=S(), description=S(), group=MIN_GROUP, contract=O(id=S(), name=S()),
                    contracts=A(O(id=S(), name=S())), keepAlive=I(), alertEmail=S(), downlinkMode=I(),
                    downlinkDataString=S(), payloadType=I(), payloadConfig=S(), automaticRenewal=B,
                    creationTime=MS, createdBy=S(), lastEditionTime=MS, lastEditedBy=S()),
    "replayUndelivered": O(deviceId=DEVICE_ID, since=MS, before=MS),
    "replayed": O(("replayed",), replayed=I(0, INT32, description="how many undelivered callbacks were sent again")),
    "callbackTest": O(("sent", "durationMs", "request"), sent=B, status=I(100, 599, description="the HTTP answer's"),
                      durationMs=I(0, INT32), request=S(description="method and URL sent, without credentials"),
                      answer=S(description="the answer's first 200 bytes"),
                      error=S(description="why no answer came (destination refused, timeout, not sent)")),
    "createUrlCallback": O(("channel", "callbackType", "enabled", "url", "httpMethod"), **CALLBACK_COMMON, **HTTP,
                           sendSni=B, bodyTemplate=S(0, 10000), contentType=S(0, 100)),
    "createBatchUrlCallback": O(("channel", "callbackType", "enabled", "url", "httpMethod"), **CALLBACK_COMMON,
                                **HTTP, linePattern=S(0, 2000)),
    "createEmailCallback": O(("channel", "callbackType", "enabled", "recipient"), **CALLBACK_COMMON,
                             recipient=S(1, 500), subject=S(0, 500), message=S(0, 10000)),
    "createMqttCallback": O(("channel", "callbackType", "enabled", "channelSettings", "bodyTemplate"),
                            **CALLBACK_COMMON, **SETTINGS_CALLBACK),
    "createKafkaCallback": O(("channel", "callbackType", "enabled", "channelSettings", "bodyTemplate"),
                             **CALLBACK_COMMON, **SETTINGS_CALLBACK),
    "createAzureEventHubsCallback": O(("channel", "callbackType", "enabled", "channelSettings", "bodyTemplate"),
                                      **CALLBACK_COMMON, **SETTINGS_CALLBACK),
    **{f"create{name}Callback": O(("channel", "callbackType", "enabled", "channelSettings", "bodyTemplate"),
                                  **CALLBACK_COMMON, **SETTINGS_CALLBACK) for name in ("AwsIot", "Kinesis", "Sqs", "AzureIotHub")},
    "createCallback": {"oneOf": [R("createUrlCallback"), R("createBatchUrlCallback"), R("createEmailCallback"),
                                 R("createMqttCallback"), R("createKafkaCallback"),
                                 R("createAzureEventHubsCallback"), R("createAwsIotCallback"),
                                 R("createKinesisCallback"), R("createSqsCallback"), R("createAzureIotHubCallback")],
                       "discriminator": {"propertyName": "channel", "mapping": {
                           "URL": "#/components/schemas/createUrlCallback",
                           "BATCH_URL": "#/components/schemas/createBatchUrlCallback",
                           "EMAIL": "#/components/schemas/createEmailCallback",
                           "MQTT": "#/components/schemas/createMqttCallback",
                           "KAFKA": "#/components/schemas/createKafkaCallback",
                           "AZURE_EVENT_HUBS": "#/components/schemas/createAzureEventHubsCallback",
                           "AWS_IOT": "#/components/schemas/createAwsIotCallback",
                           "KINESIS": "#/components/schemas/createKinesisCallback",
                           "SQS": "#/components/schemas/createSqsCallback",
                           "AZURE_IOT_HUB": "#/components/schemas/createAzureIotHubCallback"}}},
    "updateCallback": O(**{**CALLBACK_COMMON, "payloadConfig": nullable(S(0, 2000))},
                        url=S(1, 2000, description="credentials left out are kept on the same host; ********@ keeps "
                                                   "them too"),
                        urlCredentials=nullable(S(enum=["********"], description=(
                            "null removes the URL's credentials; ******** keeps them"))),
                        signingSecret=nullable(S(0, 200, description=(
                            'null removes it, whsec_******** keeps it, "generate" makes a new one (answered '
                            "once, status 200), or a whsec_ secret"))),
                        httpMethod=S(enum=["GET", "PUT", "POST"]),
                        headers=nullable(O() | {"additionalProperties": nullable(S(0, 1000)), "description": (
                            "replaces the clear headers; a secret header left out is kept, ******** keeps it, "
                            "null removes it; headers: null removes every header")}), sendSni=B,
                        bodyTemplate=nullable(S(0, 10000)), contentType=nullable(S(0, 100)),
                        linePattern=nullable(S(0, 2000)), recipient=S(1, 500), subject=nullable(S(0, 500)),
                        message=nullable(S(0, 10000)), channelSettings=nullable(CHANNEL_SETTINGS_UPDATE)),
    "callback": O(id=S(), channel=S(), callbackType=I(), callbackSubtype=I(), payloadConfig=S(), enabled=B,
                  dead=B, url=S(description="credentials shown as ********@ to writers, left out for readers"),
                  httpMethod=S(), downlinkHook=B, headers=O(description=SECRETS_NOTE), sendSni=B,
                  bodyTemplate=S(), contentType=S(), linePattern=S(), recipient=S(), subject=S(), message=S(),
                  signingSecret=S(description="whsec_******** when the callback signs (writers only)"),
                  channelSettings=CHANNEL_SETTINGS),
    "callbackCreated": O(id=S(), signingSecret=S(description='the secret made for "generate", shown this once')),
    "signingSecretCreated": O(signingSecret=S(description="the new secret, shown this once")),
    "deviceCreationJob": O(("id", "name", "pac", "deviceTypeId"), id=DEVICE_ID, name=S(1, 100), pac=PAC,
                           deviceTypeId=OID, activable=B, automaticRenewal=B, lat=LAT, lng=LNG,
                           productCertificate=CERT, prototype=B),
    "deviceUpdateJob": O(**DEVICE_EDIT),
    "tokenUnsubscribe": O(unsubscriptionTime=MS),
    "device": O(DEVICE_FIELDS, **DEVICE),
    "deviceMessage": O(MESSAGE_FIELDS, **MESSAGE),
    "messageMetric": O(lastDay=I(), lastWeek=I(), lastMonth=I()),
    "deviceCount": O(("count",), count=I(0), description="Backhaul extension: devices matching the filters"),
    "deletedDevice": O(id=S(), group=MIN_GROUP, creationTime=MS, deletionTime=MS,
                       description="Backhaul extension: a deleted device (its history is purged)"),
    "deviceEvent": {**O(("id", "type", "time"), id=S(), type=S(), time=MS,
                        description="Backhaul extension: a device event, with the fields of its type "
                                    "(schemas/device_events.py)"), "additionalProperties": True},
    "deviceLocation": O(lat={"type": "number"}, lng={"type": "number"}, radius=I(), source=I(), time=MS, valid=B),
    "deviceConsumption": O(
        id=S(description="<device>_<year>, or <device>_<year>_<month>: a string, as the reference's example and the "
                         "live service have it (its schema says integer)"),
        deviceConsumptions=A(O(frameCount=I(description="uplink messages that UTC day"),
                               downlinkFrameCount=I(description="downlinks a station transmitted that UTC day"),
                               roamingFrameCount=I(description="always 0: Backhaul has no roaming"),
                               roamingDownlinkFrameCount=I(description="always 0"),
                               roamingDetails=A(O(territory=S(), operator=S(), territoryRoamingFrameCount=I(),
                                                  territoryRoamingDownlinkFrameCount=I()),
                                                description="always empty")),
                             description="one entry per day of the year or month, the first day first")),
    "modemCertificate": O(("name",), **CERTIFICATE, repeaterFunction=B,
                          radioConfigurations=A(O(("id",), id=RADIO_CONFIGURATION, outputPower={"type": "number"},
                                                  balancedLinkBudget=B))),
    "productCertificate": O(("name",), **CERTIFICATE, devKit=B,
                            radioConfigurations=A(R("productCertificateRadioConfiguration"))),
    "productCertificateRadioConfiguration": O(("id",), id=RADIO_CONFIGURATION, uplinkClass=I(),
                                              maxEirp={"type": "number"}),
    "productCertificateWithPacResponse": O(
        ("name",), **{k: v for k, v in CERTIFICATE.items() if k != "modes"}, externalId=S(), certificateCode=I(),
        certificateIndex=I(), qualificationTime=MS, reportNumber=S(), encryptionPayload=B, devKit=B,
        modes=A(I(), description="[1] (DOWNLINK) for a certificate with downlink, else []"),
        standards=A(O(("id",), id=RADIO_CONFIGURATION)), standardCfgs=A(R("productCertificateRadioConfiguration"))),
    "geolocPayload": O(id=S(), name=S()),
    "operator": O(id=S(description="the id of the operator's group (a group of type 0, SO)"), autoCloseCampaign=B,
                  **OPERATOR_SETTINGS, warrantyMode=I(description="0 MANUFACTURER, 1 PROVISIONING"),
                  networkType=I(description="0 SNO_PUBLIC, 1 SNO_PRIVATE, 2 PILOT_PUBLIC, 3 PILOT_PRIVATE"),
                  actions=A(S(), description="with authorizations=true: read, and update for callers that may "
                                             "write groups")),
    "operatorUpdate": O((), **{k: nullable(v) for k, v in OPERATOR_SETTINGS.items()}),
    "baseStationCreate": O(("id", "name", "position"), id=STATION_ID, **STATION_EDIT),
    "baseStationUpdate": O((), **STATION_EDIT),
    "baseStation": O(id=S(description="4 hexadecimal digits, upper case: the station id of its frames"),
                     name=S(), position=O(lat=N(*st.LAT_RANGE), lng=N(*st.LNG_RANGE)),
                     **{k: v for k, v in STATION_EDIT.items() if k not in ("name", "position")},
                     creationTime=MS, createdBy=S(description="the API user who created it (none: a file import)"),
                     lastEditionTime=MS, lastEditedBy=S()),
    "errorMessages": O(deviceId=S(), deviceTypeId=S(), device=S(), deviceType=S(), time=MS, data=S(), snr=S(),
                       status=S(), message=S(), callbackId=S(), callback=O(), parameters=O()),
    "bulkCreateRow": O(("id", "pac"), id=DEVICE_ID, pac=PAC, name=S(1, 100), lat=LAT, lng=LNG,
                       automaticRenewal=B, activable=B),
    "asynchronousDeviceCreationJob": O(("deviceTypeId", "data"), deviceTypeId=OID, productCertificate=CERT,
                                       prototype=B, prefix=S(0, 40), data=A(R("bulkCreateRow"))),
    "deviceEditionBulk": O(("id",), id=DEVICE_ID, **DEVICE_EDIT),
    "asynchronousDeviceEditionJob": O(("data",), data=A(R("deviceEditionBulk"))),
    "bulkTransferRow": O(("id",), id=DEVICE_ID, keepHistory=B, activable=B),
    "asynchronousDeviceTransferJob": O(("deviceTypeId", "data"), deviceTypeId=OID, data=A(R("bulkTransferRow"))),
    "bulkReplaceRow": O(("deviceId", "targetDeviceId"), deviceId=DEVICE_ID, targetDeviceId=DEVICE_ID),
    "asynchronousDeviceReplacementJob": O(("data",), data=A(R("bulkReplaceRow"))),
    "deviceActionRow": O(("id",), id=DEVICE_ID),
    "deviceActionJob": O(("data",), data=A(DEVICE_ID)),
    "bulkUnsubscribeRow": O(("id",), id=DEVICE_ID, unsubscriptionTime=MS),
    "bulkUnsubscribe": O(("data",), data=A(R("bulkUnsubscribeRow"))),
    "bulkReport": O(total=I(), dryRun=B, status=O(success=I(), errors=A(JOB_ERROR)),
                    accepted=A(O(row=I(description="line (CSV) or 1-based index (JSON) of the row"),
                                 entity=S(description="the device id")),
                               description="dry run only: the rows that would succeed")),
    "registrationJobStatus": O(jobDone=B, total=I(), kind=S(), processed=I(description="rows handled so far"),
                               status=O(success=I(), errors=A(JOB_ERROR))),
    "actionJob": O(jobDone=B, status=O(total=I(), nbSuccess=I(), nbErrors=I(), errors=A(JOB_ERROR))),
    "globalCoverageRequest": O(
        ("locations",), locations=A(O(("lat", "lng"), lat=LAT, lng=LNG), minItems=1, description=(
            f"at most {MAX_LOCATIONS:,} locations (POST /coverages/global/predictions) or "
            f"{MAX_BULK_LOCATIONS:,} (its /bulk job)")),
        radius=RADIUS, groupId=OID | {"description": "one of the caller's groups; Backhaul runs one network, so it "
                                                     "changes nothing"},
        deviceSituation=SITUATION | {"description": "Backhaul extension (default OUTDOOR): " + SITUATION_NOTE},
        deviceClassId=DEVICE_CLASS | {"description": "Backhaul extension (default 0)"}),
    "coverageMargins": O(locationCovered=B, margins=A(I(), description=MARGINS_NOTE)),
    "coverageLocation": O(lat={"type": "number"}, lng={"type": "number"}, locationCovered=B,
                          margins=A(I(), description=MARGINS_NOTE)),
    "globalCoverageResponse": O(data=A(R("coverageLocation"), description="one per location, in the order asked")),
    "globalCoverageJob": O(jobId=S()),
    "globalCoverageBulkResponse": O(
        jobDone=B, time=MS | {"description": "when the job finished (ms), or when it was created while it runs"},
        results=A(R("coverageLocation"), description="one per location, in the order asked; empty until done"),
        message=S(description="Backhaul: why a job that failed stopped (done, without results)")),
    "latLng": O(lat=LAT, lng=LNG),
    "bounds": O(sw=R("latLng"), ne=R("latLng"), description="Geographic bounds"),
    "tilesResponse": O(
        baseImgUrl=S(description="where the tiles are"),
        tmsTemplateUrl=S(description="the tiles' URL template ({z}/{x}/{y}.png), with the layer asked"),
        bounds=R("bounds") | {"description": "the box around every station's range (absent without stations)"},
        description="Defines tiles reference to display on web map"),
    "redundancyResponse": O(redundancy=I(0, 3, description="stations that hear the device: 0, 1, 2, 3 or more")),
}

MESSAGE = {"application/json": {"schema": R("Message")}}
ERROR_RESPONSES = {
    "400": {"description": "Bad request: every bad field named", "content": {"application/json": {
        "schema": R("ErrorContent")}}},
    "401": {"description": "Missing or wrong credentials", "content": MESSAGE},
    "403": {"description": "The caller's profiles do not allow this", "content": MESSAGE},
    "404": {"description": "Not found (or outside the caller's groups)", "content": MESSAGE},
    "405": {"description": "Method not allowed", "content": {"application/json": {"schema": R("MethodNotAllowed")}}},
    "429": {"description": "Too many requests", "headers": {"Retry-After": {"schema": I(1)}}, "content": MESSAGE},
}


ERRORS = {code: {"$ref": f"#/components/responses/E{code}"} for code in ERROR_RESPONSES}


def q(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    out = {"name": name, "in": "query", "schema": schema, "required": required}
    if description:
        out["description"] = description
    return out


def path(name: str, schema: dict[str, Any] = OID) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def fields_param(*allowed: str) -> dict[str, Any]:
    return q("fields", S(0, 500), "linked objects to expand, e.g. " + ", ".join(allowed))


PAGE = [q("limit", I(1, 100), "1..100, default 100"), q("offset", I(0, INT32), "items to skip")]
# The time filter and the cursor of a time-ordered list (oss.paging).
WINDOW = [q("since", MS, "from this time (ms), inclusive"),
          q("before", MS, "until this time (ms), exclusive; with pageId, the items of this very time that "
                          "come after the one pageId names are listed too"),
          q("pageId", S(1, 200), "opaque token from paging.next (Backhaul): where the page starts among the "
                                 "items of time `before`; needs `before`")]
ID, DEV = path("id"), path("id", DEVICE_ID)
DEVICE_SORTS = ("id", "-id", "name", "-name", "lastCom", "-lastCom", "creationTime", "-creationTime")
DEVICE_FILTER = [
    q("id", DEVICE_ID), q("groupIds", S(0, 2000)), q("deep", B), q("deviceTypeId", OID),
    q("minId", DEVICE_ID), q("maxId", DEVICE_ID),
    q("name", S(0, 100), "Backhaul extension: the name contains this text (case-insensitive)"),
    q("state", S(0, 100), "Backhaul extension: comma list of device states (0 to 7) to keep"),
    q("lastComSince", MS, "Backhaul extension: last heard from this time (ms), inclusive"),
    q("lastComBefore", MS, "Backhaul extension: last heard before this time (ms), exclusive")]
YEAR = I(FIRST_YEAR, LAST_YEAR)
POSITION = [q("lat", LAT, required=True), q("lng", LNG, required=True)]
TILE_LAYER = [q("installation", S(enum=list(INSTALLATIONS)),
                "Backhaul extension (default outdoor; case-insensitive): " + SITUATION_NOTE.lower()),
              q("view", S(enum=list(VIEWS)), "Backhaul extension: coverage (link quality classes, default) or "
                                             "redundancy (1, 2, 3+ stations)"),
              q("forecast", B, "Backhaul extension: true switches the planned stations on")]
OPERATOR_QUERY = [fields_param("telecommunicationStandard(name)", "hardwareConfigurations(hardware(name))",
                               "currentRuntimes(hardware(name),runtime(name))", "upgradeStatus(runtime(name))"),
                  q("authorizations", B, "true: list the actions the caller may take (actions)")]
CSV_NOTE = ("JSON, or a CSV upload (Content-Type text/csv; `;`-separated, one device per line) in the format: ")


def ok(status: int, schema: dict[str, Any] | None, description: str = "Success") -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return {str(status): out}


def listing(item: str) -> dict[str, Any]:
    return ok(200, O(data=A(R(item)), paging=R("paging")))


def op(summary: str, responses: dict[str, Any], params: Sequence[dict[str, Any]] = (), body: str | None = None,
       csv: str | None = None, tag: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "tags": [tag] if tag else [], "parameters": list(params),
                           "responses": {**responses, **ERRORS}}
    if body:
        content = {"application/json": {"schema": R(body)}}
        if csv:
            content["text/csv"] = {"schema": {"type": "string"}}
            out["description"] = CSV_NOTE + f"`{csv}`"
        out["requestBody"] = {"required": True, "content": content}
    return out


def paths() -> dict[str, Any]:
    no = ok(204, None, "Done")
    created = ok(201, R("createResponse"))
    undelivered = listing("errorMessages")
    g, u, a, c, t, cb, d, b = ("groups", "users", "api-users", "contract-infos", "device-types", "callbacks",
                               "devices", "bulk")
    cov = "coverages"
    bulk_action = {}
    for kind, csv in (("restart", "id"), ("suspend", "id"), ("resume", "id"), ("delete", "id"),
                      ("unsubscribe", "id[;unsubscriptionTime]")):
        body = "bulkUnsubscribe" if kind == "unsubscribe" else "deviceActionJob"
        bulk_action[f"/devices/bulk/{kind}"] = {"post": op(
            f"Bulk {kind}" + (" (Backhaul's 'Delete series')" if kind == "delete" else ""),
            {**ok(201, R("jobStarted")), **ok(200, R("bulkReport"), "Dry run report")},
            [q("dryRun", B, "check every row, write nothing, answer the report")], body, csv, b)}
        bulk_action[f"/devices/bulk/{kind}/{{jobId}}"] = {"get": op(
            f"Status of a bulk {kind} job", ok(200, R("actionJob")), [path("jobId")], tag=b)}
    return {
        "/openapi.json": {"get": {"summary": "This document", "security": [], "tags": ["meta"],
                                  "responses": ok(200, {"type": "object"})}},
        "/groups/": {
            "get": op("List groups", listing("group"), [
                q("parentIds", S(0, 2000), "comma-separated parent ids"), q("deep", B, "all sub-groups"),
                q("name", S(0, 100)), q("types", S(0, 100), "comma-separated group types"),
                q("sort", S(enum=["id", "-id", "name", "-name"])), fields_param("path(name,type,level)"), *PAGE],
                tag=g),
            "post": op("Create a group", created, body="groupCreate", tag=g)},
        "/groups/{id}": {
            "get": op("A group", ok(200, R("group")), [ID, fields_param("path(name,type,level)")], tag=g),
            "put": op("Update a group", no, [ID], "groupUpdate", tag=g),
            "delete": op("Delete an empty group", {**no, "409": {"description": "Not empty", "content": MESSAGE}},
                         [ID], tag=g)},
        "/groups/{id}/callbacks-not-delivered": {"get": op(
            "Undelivered callbacks of the group and its sub-groups", undelivered, [ID, *WINDOW, *PAGE], tag=g)},
        "/groups/{id}/geoloc-payloads": {"get": op(
            "Geolocation payload formats the group may use (from the operator's registry)", listing("geolocPayload"),
            [ID, *PAGE], tag=g)},
        "/operators/": {"get": op("List the operators of the caller's groups (Backhaul): groups of type 0 (SO)",
                                  listing("operator"), [*OPERATOR_QUERY, *PAGE], tag="operators")},
        "/operators/{id}": {
            "get": op("An operator (a group of type 0, SO) and its settings", ok(200, R("operator")),
                      [ID, *OPERATOR_QUERY], tag="operators"),
            "put": op("Update an operator's settings (null unsets one)", no, [ID], "operatorUpdate",
                      tag="operators")},
        "/base-stations/": {
            "get": op("List the base stations (Backhaul; operator groups only, base-stations:read)",
                      listing("baseStation"), [
                          q("state", S(0, 100), "comma list of states to keep: enabled, disabled, planned"),
                          q("name", S(0, 100), "the name contains this text (case-insensitive)"), *PAGE],
                      tag="base-stations"),
            "post": op("Register a base station (Backhaul; operator groups only, base-stations:write)", {
                **created, "409": {"description": "A station with this id exists", "content": MESSAGE}},
                body="baseStationCreate", tag="base-stations")},
        "/base-stations/{id}": {
            "get": op("A base station", ok(200, R("baseStation")), [path("id", STATION_ID)], tag="base-stations"),
            "put": op("Update a base station (partial: what is left out is kept)", no, [path("id", STATION_ID)],
                      "baseStationUpdate", tag="base-stations"),
            "delete": op("Delete a base station nothing was stored from", {**no, "409": {
                "description": "Messages or downlinks it relayed are stored: disable it instead",
                "content": MESSAGE}}, [path("id", STATION_ID)], tag="base-stations")},
        "/profiles/": {"get": op("Predefined profiles available on a group", listing("profile"), [
            q("groupId", OID, required=True), q("inherit", B), fields_param("group(name,type,level)", "roles(name)"),
            *PAGE], tag="profiles")},
        "/profiles/{id}": {"get": op("A profile", ok(200, R("profile")), [ID, fields_param("roles(name)")],
                                     tag="profiles")},
        "/users/": {
            "get": op("List users", listing("user"), [
                q("text", S(0, 100)), q("profileId", OID), q("groupIds", S(0, 2000)), q("deep", B),
                q("sort", S(enum=["id", "-id", "name", "-name", "email", "-email"])),
                fields_param("userRoles(group(name,type,level))"), *PAGE], tag=u),
            "post": op("Create a user", created, body="userCreation", tag=u)},
        "/users/{id}": {
            "get": op("A user", ok(200, R("user")), [ID, fields_param("userRoles(group(name,type,level))")], tag=u),
            "put": op("Update a user (userRoles replaces the roles in the caller's groups)", no, [ID], "userUpdate",
                      tag=u),
            "delete": op("Remove the user from the caller's groups", no, [ID], tag=u)},
        "/users/{id}/profiles": {"put": op("Add user roles", no, [ID], "userRoles", tag=u)},
        "/users/{id}/profiles/{profileId}": {"delete": op("Remove a profile from a user", no, [
            ID, path("profileId"), q("groupId", OID)], tag=u)},
        "/api-users/": {
            "get": op("List API users", listing("apiUser"), [
                q("profileId", OID), q("groupIds", S(0, 2000)), fields_param("group(name,type,level)",
                                                                             "profiles(name,roles(name))"), *PAGE],
                tag=a),
            "post": op("Create an API user; the answer holds its access token, shown only once",
                       ok(201, R("apiUserCreated")), body="apiUserCreation", tag=a)},
        "/api-users/{id}": {
            "get": op("An API user", ok(200, R("apiUser")), [ID, fields_param("group(name,type,level)")], tag=a),
            "put": op("Update an API user", no, [ID], "apiUserEdition", tag=a),
            "delete": op("Delete an API user", no, [ID], tag=a)},
        "/api-users/{id}/profiles": {"put": op("Add profiles to an API user", no, [ID], "profileIds", tag=a)},
        "/api-users/{id}/profiles/{profileId}": {"delete": op("Remove a profile from an API user", no, [
            ID, path("profileId")], tag=a)},
        "/api-users/{id}/renew-credential": {"put": op("Issue a new access token; the old one stops working",
                                                       ok(200, R("accessToken")), [ID], tag=a)},
        "/contract-infos/": {
            "get": op("List contracts (of the caller's groups and of the groups above)", listing("contractInfo"), [
                q("name", S(0, 100)), q("groupId", OID), q("deep", B), q("up", B), q("orderIds", S(0, 2000)),
                q("contractIds", S(0, 2000)), q("fromTime", MS), q("toTime", MS), q("tokenDuration", I(0, INT32)),
                fields_param("group(name,type,level)", "order(name)"), *PAGE], tag=c),
            "post": op("Create a contract (Backhaul; needs contracts:write)", created, body="contractInfoCreate",
                       tag=c)},
        "/contract-infos/{id}": {
            "get": op("A contract", ok(200, R("contractInfo")), [ID, fields_param("group(name,type,level)")], tag=c),
            "put": op("Update a contract (Backhaul)", no, [ID], "contractInfoUpdate", tag=c),
            "delete": op("Delete an unused contract (Backhaul)", {**no, "409": {"description": "In use",
                                                                               "content": MESSAGE}}, [ID], tag=c)},
        "/contract-infos/{id}/devices": {"get": op("Devices holding a token of the contract", listing("device"), [
            ID, q("deviceTypeId", OID), fields_param("deviceType(name)"), *PAGE], tag=c)},
        "/device-types/": {
            "get": op("List device types", listing("deviceType"), [
                q("name", S(0, 100)), q("groupIds", S(0, 2000)), q("deep", B), q("contractId", OID),
                q("payloadType", I()), q("sort", S(enum=["id", "-id", "name", "-name"])),
                fields_param("group(name,type,level)", "contract(name)"), *PAGE], tag=t),
            "post": op("Create a device type", created, body="deviceTypeCreate", tag=t)},
        "/device-types/{id}": {
            "get": op("A device type", ok(200, R("deviceType")), [ID, fields_param("group(name)", "contract(name)")],
                      tag=t),
            "put": op("Update a device type (its contract cannot change)", no, [ID], "deviceTypeUpdate", tag=t),
            "delete": op("Delete a device type without devices", {**no, "409": {"description": "Has devices",
                                                                               "content": MESSAGE}}, [ID], tag=t)},
        "/device-types/{id}/messages": {"get": op("Messages of the device type's devices", listing("deviceMessage"),
                                                  [ID, fields_param("device(name)", "rinfos(rep,baseStation(name))",
                                                                    "downlinkAnswerStatus(baseStation(name))"),
                                                   *WINDOW, *PAGE], tag=t)},
        "/device-types/{id}/callbacks-not-delivered": {"get": op("Undelivered callbacks of the device type",
                                                                 undelivered, [ID, *WINDOW, *PAGE], tag=t)},
        "/device-types/{id}/disengage": {"put": op("Disengage the sequence number check of its devices", no, [ID],
                                                   tag=t)},
        "/device-types/{id}/callbacks": {
            "get": op("Callbacks of a device type", ok(200, O(data=A(R("callback")))), [ID], tag=cb),
            "post": op("Create a callback", ok(201, R("callbackCreated")), [ID], "createCallback", tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}": {
            "put": op("Update a callback", {**no, **ok(200, R("signingSecretCreated"), 'signingSecret "generate"')},
                      [ID, path("callbackId")], "updateCallback", tag=cb),
            "delete": op("Delete a callback", no, [ID, path("callbackId")], tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}/enable": {"put": op(
            "Enable or disable a callback (enabling clears `dead`)", no,
            [ID, path("callbackId"), q("enabled", B, required=True)], tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}/downlink": {"put": op(
            "Make this BIDIR callback the downlink callback", no, [ID, path("callbackId")], tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered": {"get": op(
            "Undelivered callbacks of one callback: a list, as the live service answers (the published document "
            "shows one object; README \"API v2 compatibility\")", undelivered,
            [ID, path("callbackId"), *WINDOW, *PAGE], tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay": {"post": op(
            "Backhaul extension: send this callback's undelivered callbacks again (those of deviceId and of since <= "
            "time < before when given; each once)", ok(200, R("replayed")), [ID, path("callbackId")],
            "replayUndelivered", tag=cb)},
        "/device-types/{id}/callbacks/{callbackId}/test": {"post": op(
            "Backhaul extension: send the callback once now with sample values through the destination rule; "
            "EMAIL is rendered, not sent", ok(200, R("callbackTest")), [ID, path("callbackId")], tag=cb)},
        "/devices/": {
            "get": op("List devices (50 requests / 10 s)", listing("device"), [
                *DEVICE_FILTER, q("sort", S(enum=list(DEVICE_SORTS))),
                fields_param("deviceType(name)", "group(name,type,level)", "contract(name)"), *PAGE], tag=d),
            "post": op("Create a device (it takes a token from its device type's contract when activable)",
                       {**created, "409": {"description": "Exists", "content": MESSAGE}}, body="deviceCreationJob",
                       tag=d)},
        "/devices/count": {"get": op(
            "Backhaul extension: how many devices GET /devices/ lists over all its pages with the same filters",
            ok(200, R("deviceCount")), DEVICE_FILTER, tag=d)},
        "/deleted-devices/": {"get": op(
            "Backhaul extension: devices deleted from the caller's groups, the last deleted first",
            listing("deletedDevice"), [q("id", DEVICE_ID), *PAGE], tag=d)},
        "/devices/{id}/events": {"get": op(
            "Backhaul extension: the device's events (keep-alive ERROR and RESTORED, sequence breaks, service "
            "frames, ACKNOWLEDGE), newest first", listing("deviceEvent"),
            [DEV, q("type", S(0, 200), "comma list of event types to keep"), *WINDOW, *PAGE], tag=d)},
        "/devices/{id}": {
            "get": op("A device", ok(200, R("device")), [DEV, fields_param("deviceType(name)", "group(name)")],
                      tag=d),
            "put": op("Update a device", no, [DEV], "deviceUpdateJob", tag=d),
            "delete": op("Delete a device", no, [DEV], tag=d)},
        "/devices/{id}/messages": {"get": op(
            "Messages of a device, newest first, with each callback attempt in rinfos[0].cbStatus "
            "(1 request / s per device)", listing("deviceMessage"),
            [DEV, fields_param("oob", "ackRequired", "device(name)", "rinfos(rep,repetitions,baseStation(name))",
                               "downlinkAnswerStatus(baseStation(name))"),
             *WINDOW, *PAGE], tag=d)},
        "/devices/{id}/messages/metric": {"get": op("Message counts over the last day, week and month",
                                                    ok(200, R("messageMetric")), [DEV], tag=d)},
        "/devices/{id}/locations": {"get": op("Computed locations", listing("deviceLocation"), [
            DEV, q("oob", B), *WINDOW, *PAGE], tag=d)},
        "/devices/{id}/callbacks-not-delivered": {"get": op("Undelivered callbacks of a device", undelivered,
                                                            [DEV, *WINDOW, *PAGE], tag=d)},
        "/devices/{id}/disengage": {"post": op("Accept the next sequence number whatever it is", no, [DEV], tag=d)},
        "/devices/{id}/unsubscribe": {"put": op("End the device's token at a time (default now)", no, [DEV],
                                                "tokenUnsubscribe", tag=d)},
        "/devices/{id}/certificate/product": {"get": op(
            "The device's product certificate (the one its productCertificate.key names, else the one declared for "
            "its id and PAC in the operator's registry)", ok(200, R("productCertificate")),
            [DEV, fields_param("manufacturer(name)")], tag=d)},
        "/devices/{id}/certificate/modem": {"get": op(
            "The modem certificate of the device's product certificate", ok(200, R("modemCertificate")),
            [DEV, fields_param("manufacturer(name)")], tag=d)},
        "/devices/{id}/product-certificate": {"get": op(
            "The product certificate declared for a device id and PAC, before the device is registered "
            "(a device registered in another group is not found)", ok(200, R("productCertificateWithPacResponse")),
            [DEV, q("pac", PAC, "the device's PAC", required=True)], tag=d)},
        "/devices/{id}/consumption/{year}": {"get": op(
            "Uplinks and transmitted downlinks per UTC day of a year", ok(200, R("deviceConsumption")),
            [DEV, path("year", YEAR)], tag=d)},
        "/devices/{id}/consumption/{year}/{month}": {"get": op(
            "Uplinks and transmitted downlinks per UTC day of a month", ok(200, R("deviceConsumption")),
            [DEV, path("year", YEAR), path("month", I(1, 12))], tag=d)},
        "/devices/bulk": {
            "post": op("Bulk create (5 requests / 10 min)", {**ok(200, R("jobStarted")),
                                                            **ok(200, R("bulkReport"), "Dry run report")},
                       [q("dryRun", B), q("deviceTypeId", OID, "CSV uploads: the device type"),
                        q("prefix", S(0, 40), "CSV uploads: name prefix"), q("prototype", B)],
                       "asynchronousDeviceCreationJob", "id;pac[;name[;lat;lng]]", b),
            "put": op("Bulk edit", {**ok(201, R("jobStarted")), **ok(200, R("bulkReport"), "Dry run report")},
                      [q("dryRun", B), q("activable", B, "CSV uploads: set on every row"),
                       q("automaticRenewal", B, "CSV uploads: set on every row"),
                       q("prototype", B, "CSV uploads: set on every row")],
                      "asynchronousDeviceEditionJob", "id;name[;lat;lng]", b)},
        "/devices/bulk/{jobId}": {"get": op("Status and per-row errors of any bulk job",
                                            ok(200, R("registrationJobStatus")), [path("jobId")], tag=b)},
        "/devices/bulk/transfer": {"post": op(
            "Bulk transfer to another device type (token rules: same contract keeps, same order moves, "
            "other order loses)", {**ok(200, R("jobStarted"))},
            [q("dryRun", B), q("deviceTypeId", OID, "CSV uploads: the target device type"), q("keepHistory", B),
             q("activable", B)], "asynchronousDeviceTransferJob", "id", b)},
        "/devices/bulk/replace": {"post": op("Bulk replace: move tokens from devices to others (synchronous)",
                                             ok(200, R("bulkReport")), [q("dryRun", B)],
                                             "asynchronousDeviceReplacementJob", "oldId;newId", b)},
        **bulk_action,
        "/coverages/global/predictions": {
            "get": op("Coverage margins (dB) for redundancy 1, 2 and 3 of the area of `radius` around a location",
                      ok(200, R("coverageMargins")), [*POSITION, q("radius", RADIUS), q("groupId", OID),
                                                      q("deviceSituation", SITUATION, "Backhaul extension (default "
                                                        "OUTDOOR): " + SITUATION_NOTE),
                                                      q("deviceClassId", DEVICE_CLASS, "Backhaul extension (default "
                                                        "0)")], tag=cov),
            "post": op(f"Coverage margins of up to {MAX_LOCATIONS:,} locations", ok(200, R("globalCoverageResponse")),
                       body="globalCoverageRequest", tag=cov)},
        "/coverages/global/predictions/bulk": {"post": op(
            f"Start a job predicting up to {MAX_BULK_LOCATIONS:,} locations (jobs are kept 7 days)",
            ok(201, R("globalCoverageJob")), body="globalCoverageRequest", tag=cov)},
        "/coverages/global/predictions/bulk/{jobId}": {"get": op(
            "A coverage job's status and, once done, its results (jobs of the caller's groups)",
            ok(200, R("globalCoverageBulkResponse")), [path("jobId")], tag=cov)},
        "/coverages/operators/redundancy": {"get": op(
            "How many stations hear a device at a location (3: three or more)", ok(200, R("redundancyResponse")),
            [*POSITION, q("operatorId", OID, "an operator (group of type 0) at, below or above the caller's group; "
                                             "default: the nearest at or above it. Backhaul runs one network, so "
                                             "it changes nothing"),
             q("deviceSituation", SITUATION, "default INDOOR: " + SITUATION_NOTE),
             q("deviceClassId", DEVICE_CLASS, "default 0")], tag=cov)},
        "/tiles/public-coverage": {"get": op(
            "Where the public coverage tiles are and the box they cover", ok(200, R("tilesResponse")), TILE_LAYER,
            tag="tiles")},
        "/tiles/public-coverage/{z}/{x}/{y}.png": {"get": op(
            "One 256 px web-mercator tile of the public coverage (PNG, transparent where no station hears; ETag, "
            "304 on If-None-Match; cached until a station or a calibration changes)",
            {"200": {"description": "PNG", "content": {"image/png": {"schema": S(format="binary")}},
                     "headers": {"ETag": {"schema": S()}, "Cache-Control": {"schema": S()}}},
             "304": {"description": "Not modified (If-None-Match holds the tile's ETag)"}},
            [path("z", I(0, MAX_TILE_ZOOM)), path("x", I(0, 2**MAX_TILE_ZOOM - 1, description="0 .. 2^z - 1")),
             path("y", I(0, 2**MAX_TILE_ZOOM - 1, description="0 .. 2^z - 1")), *TILE_LAYER], tag="tiles")},
        "/tiles/public-coverage/kmz/tiles.kmz": {"get": op(
            f"The public coverage of a box as a KMZ of tiles (doc.kml of GroundOverlays and the PNGs; at most "
            f"{MAX_KMZ_TILES} tiles)",
            {"200": {"description": "A KMZ file", "content": {KMZ_CONTENT_TYPE: {"schema": S(format="binary")}}}},
            [q("zoom", I(0, MAX_KMZ_ZOOM), required=True), q("north", LAT, required=True),
             q("south", LAT, required=True), q("west", LNG, required=True), q("east", LNG, required=True),
             *TILE_LAYER], tag="tiles")},
        "/device-types/{id}/bulk/restart": {"post": op("Restart every device of the device type",
                                                       ok(201, R("jobStarted")), [ID], tag=b)},
        "/device-types/bulk/restart/{jobId}": {"get": op("Status of a device type restart job",
                                                         ok(200, R("actionJob")), [path("jobId")], tag=b)},
        "/contract-infos/{id}/bulk/restart": {"post": op("Restart every device holding a token of the contract",
                                                         ok(201, R("jobStarted")), [ID], tag=b)},
        "/contract-infos/bulk/restart/{jobId}": {"get": op("Status of a contract restart job",
                                                           ok(200, R("actionJob")), [path("jobId")], tag=b)},
    }


def build() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Backhaul API", "version": "2.0",
                 "description": "Sigfox API v2 compatible operations support API of Backhaul. HTTP Basic auth "
                                "with an API user's id and access token; every request sees the caller's group "
                                "and its sub-groups only. Errors: 400 {message, errors[{type, field, message}]}, "
                                "401, 403, 404, 405, 409, 429 with Retry-After, and 503 with Retry-After "
                                "while the database cannot be reached."},
        "servers": [{"url": "/v2"}],
        "security": [{"basicAuth": []}],
        "paths": paths(),
        "components": {"securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}}, "schemas": SCHEMAS,
                       "responses": {f"E{code}": r for code, r in ERROR_RESPONSES.items()}},
    }


@functools.lru_cache(maxsize=1)
def _raw() -> bytes:
    return (resources.files("schemas") / "openapi.json").read_bytes()


def document() -> dict[str, Any]:
    return _parsed()


@functools.lru_cache(maxsize=1)
def _parsed() -> dict[str, Any]:
    return json.loads(_raw())


@routes.get("/v2/openapi.json")
async def serve_document(request: web.Request) -> web.Response:
    return web.Response(body=_raw(), content_type=JSON)


if __name__ == "__main__":
    target = resources.files("schemas") / "openapi.json"
    with open(str(target), "w") as out:
        json.dump(build(), out, indent=1)
        out.write("\n")
    print(f"wrote {target}")
