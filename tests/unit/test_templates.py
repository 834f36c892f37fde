"""Callback variables and templates: parsing, escaping per place, validation, rendering."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_language.templates import (
    CallbackSpec,
    TemplateError,
    compile_callback,
    compile_template,
    redact_url,
    render_batch,
    render_email,
    render_request,
    validate_callback,
    validate_json_body,
)
from callback_language.variables import EXTENSIONS, OBJECT_VARIABLES, SAMPLES, VARIABLES, allowed, sample

UPLINK = {
    "time": 1764165600, "device": "00AB12CD", "deviceTypeId": "dt1", "data": "0102ff",
    "seqNumber": 123, "snr": 12.3, "rssi": -121.5, "station": "1A2B", "duplicate": False,
    "avgSnr": "N/A", "lat": 43.6, "lng": 1.4,
}
DUPLICATES = [{"bsId": "1A2B", "rssi": -121.5, "snr": 12.3, "nbRep": 3}]
LOCATION = {"lat": 43.6, "lng": 1.4, "radius": 1500, "source": 2, "status": 1}


def tpl(text: str, kind: str = "DATA_UPLINK", field: str = "bodyTemplate", **kw):
    return compile_template(text, kind=kind, field=field, **kw)


def error(fn, *args, **kwargs) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        fn(*args, **kwargs)
    return info.value


def url_spec(**kw) -> CallbackSpec:
    base = {"id": "cb1", "kind": "DATA_UPLINK", "url": "https://example.com/cb"}
    return CallbackSpec(**{**base, **kw})


# --- the variable catalogue ------------------------------------------------------------

def test_catalogue_matches_reference():
    uplink = {"time", "device", "deviceTypeId", "data", "seqNumber", "snr", "rssi", "station",
              "duplicate", "avgSnr", "lat", "lng"}
    assert VARIABLES["DATA_UPLINK"] == uplink
    assert VARIABLES["DATA_BIDIR"] == uplink | {"ack", "longPolling"}
    assert VARIABLES["DATA_ADVANCED"] == {
        "device", "time", "data", "seqNumber", "lqi", "linkQuality", "fixedLat", "fixedLng",
        "operatorName", "countryCode", "duplicates", "computedLocation"}
    assert {"device", "time", "temp", "batt", "seqNumber", "snr", "rssi", "station"} <= VARIABLES["STATUS"]
    assert VARIABLES["ACKNOWLEDGE"] == {"time", "device", "infoCode", "infoMessage", "downlinkAck",
                                        "downlinkOverusage"}
    assert VARIABLES["REPEATER"] == {"time", "device", "batt", "whitelistDevices", "repeatedMsg",
                                     "unwantedDevices", "unwantedMsg", "wrongMsg", "overRegulMsg"}
    assert VARIABLES["ERROR"] == {"time", "device", "info", "severity"}
    assert {"time", "sourceType", "sourceId", "severity", "eventType", "deviceTypeId", "groupId",
            "deviceLastSeqnumber", "deviceMessageSeqnumber"} == VARIABLES["EVENT"]
    assert VARIABLES["RESTORED"] == {"time", "device", "info", "severity", "lastErrorTime"}
    assert OBJECT_VARIABLES == {"duplicates", "computedLocation"}


def test_every_variable_has_a_sample_of_a_json_type():
    for names in VARIABLES.values():
        for name in names:
            assert name in SAMPLES
    assert isinstance(sample("duplicates"), list) and isinstance(sample("computedLocation"), dict)
    assert sample("customData#temp") is not None


@pytest.mark.parametrize("kind", ["DATA_UPLINK", "DATA_BIDIR", "DATA_ADVANCED"])
def test_custom_data_allowed_for_data_kinds(kind):
    assert allowed(kind, "customData#temp")
    assert allowed(kind, "customData#a-b_9")
    assert not allowed(kind, "customData#")
    assert not allowed(kind, "customData#a.b")
    assert not allowed(kind, "customData")


@pytest.mark.parametrize("kind", ["STATUS", "ACKNOWLEDGE", "REPEATER", "ERROR", "EVENT", "RESTORED"])
def test_custom_data_refused_elsewhere(kind):
    assert not allowed(kind, "customData#temp")


def test_allowed_basics():
    assert allowed("DATA_BIDIR", "ack") and not allowed("DATA_UPLINK", "ack")
    assert not allowed("DATA_UPLINK", "SeqNumber")
    assert not allowed("NOPE", "device")


@pytest.mark.parametrize("kind", sorted(VARIABLES))
def test_delivery_id_is_allowed_in_every_kind(kind):
    assert EXTENSIONS == {"deliveryId"} and allowed(kind, "deliveryId")
    assert not allowed(kind, "deliveryid") and isinstance(sample("deliveryId"), str)


@pytest.mark.parametrize("kind", ["DATA_UPLINK", "DATA_ADVANCED", "STATUS"])
def test_delivery_id_renders_in_a_json_body_as_a_string(kind):
    t = tpl('{"id": "{deliveryId}", "bare": {deliveryId}, "d": "{device}"}', kind=kind, json_body=True)
    assert t.variables == {"deliveryId", "device"}
    out = t.render_json({"deliveryId": 'm-1:"x"/cb', "device": "00AB"})
    assert orjson.loads(out) == {"id": 'm-1:"x"/cb', "bare": 'm-1:"x"/cb', "d": "00AB"}


def test_delivery_id_close_name_suggested():
    assert "did you mean 'deliveryId'" in error(tpl, "{deliveryid}", kind="ERROR").reason


# --- parsing ---------------------------------------------------------------------------

def test_literal_text_is_kept_verbatim():
    text = "héllo ✓ \t%20+&=\\\"' {device} tail"
    t = tpl(text, field="message")
    assert t.render_text({"device": "X"}) == "héllo ✓ \t%20+&=\\\"' X tail"
    assert t.variables == {"device"}


def test_unknown_variable_names_field_and_position():
    exc = error(tpl, "device={device}&x={foo}")
    assert (exc.field, exc.position) == ("bodyTemplate", 18)
    assert exc.reason == "unknown variable 'foo' for DATA_UPLINK callbacks"
    assert str(exc) == "bodyTemplate at 18: unknown variable 'foo' for DATA_UPLINK callbacks"


def test_unknown_variable_suggests_close_name():
    exc = error(tpl, "{seqnumber}", field="linePattern")
    assert exc.field == "linePattern" and exc.position == 0
    assert "did you mean 'seqNumber'" in exc.reason


def test_variable_of_another_kind_is_unknown():
    exc = error(tpl, "{ack}", kind="DATA_UPLINK", field="subject")
    assert "unknown variable 'ack' for DATA_UPLINK" in str(exc)
    assert tpl("{ack}", kind="DATA_BIDIR").variables == {"ack"}


@pytest.mark.parametrize("text, position, words", [
    ("a {} b", 2, "empty variable name"),
    ("a { device} b", 2, "unbalanced '{'"),
    ("a } b", 2, "unbalanced '}'"),
    ("tail {", 5, "unbalanced '{'"),
    ("x {device", 2, "not closed"),
    ("x {dev.ice}", 6, "unexpected '.'"),
    ("x {dev ice}", 6, "unexpected ' '"),
    ("{device}}", 8, "unbalanced '}'"),
    ("{1abc}", 0, "invalid variable name"),
    ("{customData#}", 0, "invalid variable name"),
])
def test_brace_errors(text, position, words):
    exc = error(tpl, text, field="url")
    assert exc.field == "url" and exc.position == position and words in exc.reason


def test_custom_data_variables():
    t = tpl("{customData#temp};{customData#hum-1}")
    assert t.variables == {"customData#temp", "customData#hum-1"}
    assert t.render_text({"customData#temp": "-12", "customData#hum-1": 10000}) == "-12;10000"
    exc = error(tpl, "x{customData#temp}", kind="STATUS", field="message")
    assert exc.position == 1 and "only for DATA_UPLINK, DATA_BIDIR and DATA_ADVANCED" in exc.reason


def test_unknown_kind():
    exc = error(tpl, "{device}", kind="GEOLOC")
    assert exc.field == "kind" and "GEOLOC" in exc.reason


def test_json_body_braces_are_structure():
    t = tpl('{"a": {}, "b": {"c": [{device}]}, "s": "{ } {}"}', json_body=True)
    assert t.variables == {"device"}
    assert orjson.loads(t.render_json({"device": "AB"})) == {"a": {}, "b": {"c": ["AB"]}, "s": "{ } {}"}


# --- escaping per place ----------------------------------------------------------------

def test_url_values_percent_encoded():
    t = tpl("https://h/p/{device}?d={data}&x={avgSnr}", field="url")
    out = t.render_url({"device": "a/b c", "data": "&=?#%+é", "avgSnr": "N/A"})
    assert out == "https://h/p/a%2Fb%20c?d=%26%3D%3F%23%25%2B%C3%A9&x=N%2FA"


def test_header_values_plain():
    t = tpl("Bearer {device}-{seqNumber}-{duplicate}", field="headers.Authorization")
    assert t.render_header({"device": "a b;c", "seqNumber": 7, "duplicate": True}) == "Bearer a b;c-7-true"


@pytest.mark.parametrize("bad", ["x\r\nSet-Cookie: a=b", "x\ny", "x\rY", "x\x00"])
def test_header_injection_refused_at_render(bad):
    t = tpl("v={data}", field="headers.X-Data")
    exc = error(t.render_header, {"data": bad})
    assert exc.field == "headers.X-Data" and exc.position is None and "header injection" in exc.reason


def test_form_values_quote_plus():
    t = tpl("device={device}&data={data}")
    body = t.render_form({"device": "a b", "data": "x&y=z+%"})
    assert body == "device=a+b&data=x%26y%3Dz%2B%25"
    assert parse_qs(body) == {"device": ["a b"], "data": ["x&y=z+%"]}


def test_text_rendering():
    t = tpl("{device} {seqNumber} {snr} {duplicate} {lat} {avgSnr}", field="message")
    out = t.render_text({"device": "AB", "seqNumber": 3, "snr": 12.5, "duplicate": False, "lat": None})
    assert out == "AB 3 12.5 false  "


def test_json_inside_string_is_escaped():
    t = tpl('{"d": "pre-{data}-post"}', json_body=True)
    value = 'quote " back \\ nl \n tab \t ctl \x01 é'
    out = t.render_json({"data": value})
    assert orjson.loads(out) == {"d": f"pre-{value}-post"}


def test_json_outside_string_is_a_json_value():
    t = tpl('{"s": {device}, "n": {seqNumber}, "f": {snr}, "b": {duplicate}, "m": {lat}, "a": {avgSnr}}',
            json_body=True)
    out = t.render_json({"device": 'a"b', "seqNumber": 2 ** 40, "snr": -1.5, "duplicate": True, "avgSnr": "N/A"})
    assert orjson.loads(out) == {"s": 'a"b', "n": 2 ** 40, "f": -1.5, "b": True, "m": None, "a": "N/A"}


def test_json_string_state_follows_escapes():
    t = tpl(r'{"a\"{device}": "\\", "b": {seqNumber}, "c": "x\"y{data}"}', json_body=True)
    states = [(name, inside) for _, name, inside in t.segments if name]
    assert states == [("device", True), ("seqNumber", False), ("data", True)]
    out = orjson.loads(t.render_json({"device": "D", "seqNumber": 1, "data": "Z"}))
    assert out == {'a"D': "\\", "b": 1, "c": 'x"yZ'}


def test_object_variables_inserted_as_json():
    variables = {"duplicates": DUPLICATES, "computedLocation": LOCATION, "device": "AB"}
    t = tpl('{"dup": {duplicates}, "loc": {computedLocation}, "s": "{computedLocation}"}',
            kind="DATA_ADVANCED", json_body=True)
    assert orjson.loads(t.render_json(variables)) == {
        "dup": DUPLICATES, "loc": LOCATION, "s": orjson.dumps(LOCATION).decode()}
    text = tpl("{duplicates}", kind="DATA_ADVANCED", field="message").render_text(variables)
    assert orjson.loads(text) == DUPLICATES
    url = tpl("https://h/?d={duplicates}", kind="DATA_ADVANCED", field="url").render_url(variables)
    assert orjson.loads(unquote(url.split("d=", 1)[1])) == DUPLICATES
    form = tpl("loc={computedLocation}", kind="DATA_ADVANCED").render_form(variables)
    assert orjson.loads(parse_qs(form)["loc"][0]) == LOCATION


def test_missing_values_render_empty_or_null():
    t = tpl('{"a": "{lat}", "b": {lng}}', json_body=True)
    assert orjson.loads(t.render_json({})) == {"a": "", "b": None}
    assert tpl("x={lat}").render_form({}) == "x="
    assert tpl("https://h/{lat}", field="url").render_url({}) == "https://h/"


# --- JSON bodies at save time ----------------------------------------------------------

def test_valid_json_body():
    body = '{\n "device": "{device}",\n "n": {seqNumber},\n "list": [{snr}, {rssi}],\n "c": {customData#t}\n}'
    t = validate_json_body(body, "DATA_UPLINK")
    assert t.variables == {"device", "seqNumber", "snr", "rssi", "customData#t"}
    assert validate_json_body("{data}", "DATA_UPLINK").render_json({"data": "01"}) == '"01"'


@pytest.mark.parametrize("body, position", [
    ('{"a": 1,}', None),
    ('{"a" 1}', 5),
    ('{"a": "{device}"', 16),
    ('', 0),
    ('{"a": {seqNumber}', 17),
])
def test_invalid_json_body(body, position):
    exc = error(validate_json_body, body, "DATA_UPLINK")
    assert exc.field == "bodyTemplate"
    assert exc.reason.startswith("body is not valid JSON after substitution: ")
    if position is not None:
        assert exc.position == position


@pytest.mark.parametrize("body, position", [
    ('{"a": {device}{data}}', 6),
    ('{"a": -{seqNumber}}', 7),
    ('{"a": {seqNumber}0}', 6),
    ('[1 {seqNumber}]', 3),
])
def test_json_variable_outside_string_must_stand_alone(body, position):
    exc = error(validate_json_body, body, "DATA_UPLINK")
    assert exc.position == position and "stand alone" in exc.reason


def test_json_variable_after_backslash_refused():
    exc = error(validate_json_body, r'{"a": "\{data}"}', "DATA_UPLINK")
    assert exc.position == 8 and "backslash" in exc.reason


def test_json_body_unknown_variable():
    exc = error(validate_json_body, '{"a": "{foo}"}', "DATA_UPLINK")
    assert str(exc) == "bodyTemplate at 7: unknown variable 'foo' for DATA_UPLINK callbacks"


# --- callback validation ---------------------------------------------------------------

@pytest.mark.parametrize("url, field, words", [
    (None, "url", "required"),
    ("", "url", "required"),
    ("example.com/cb", "url", "absolute"),
    ("ftp://example.com/cb", "url", "scheme must be http or https"),
    ("https:///cb", "url", "host missing"),
    ("https://example.com:99999/", "url", "invalid host or port"),
    ("https://example.com:http/", "url", "invalid host or port"),
    ("https://exa mple.com/", "url", "whitespace"),
    ("https://{device}.example.com/", "url", "not allowed in the credentials or host"),
    ("https://example.com/{nope}", "url", "unknown variable 'nope'"),
])
def test_bad_urls(url, field, words):
    exc = error(validate_callback, url_spec(url=url))
    assert exc.field == field and words in exc.reason


def test_bad_url_never_echoes_credentials():
    exc = error(validate_callback, url_spec(url="https://user:s3cret@example.com:bad/"))
    assert "s3cret" not in str(exc)


def test_method_and_channel_and_content_type():
    assert error(validate_callback, url_spec(http_method="PATCH")).field == "httpMethod"
    assert error(validate_callback, url_spec(channel="SMS")).field == "channel"
    exc = error(validate_callback, url_spec(content_type="application/xml", body_template="x"))
    assert exc.field == "contentType"
    validate_callback(url_spec(content_type="Application/JSON", body_template='{"d":"{data}"}'))


@pytest.mark.parametrize("name", ["Content-Type", "content-length", "HOST", "Transfer-Encoding",
                                  "Connection", "Webhook-Signature"])
def test_forbidden_headers(name):
    exc = error(validate_callback, url_spec(headers={name: "x"}))
    assert exc.field == f"headers.{name}" and "standard header" in exc.reason


def test_header_rules():
    validate_callback(url_spec(headers={"Authorization": "Bearer {device}", "X-Seq": "{seqNumber}"}))
    exc = error(validate_callback, url_spec(headers={"X-{device}": "v"}))
    assert exc.field == "headers" and "cannot contain variables" in exc.reason
    assert "invalid header name" in error(validate_callback, url_spec(headers={"X Bad": "v"})).reason
    assert "invalid header name" in error(validate_callback, url_spec(headers={"X\r\nY": "v"})).reason
    exc = error(validate_callback, url_spec(headers={"X-A": "a\r\nInjected: 1"}))
    assert (exc.field, exc.position) == ("headers.X-A", 1)
    exc = error(validate_callback, url_spec(headers={"X-A": "{foo}"}))
    assert (exc.field, exc.position) == ("headers.X-A", 0) and "unknown variable 'foo'" in exc.reason
    assert "duplicate" in error(validate_callback, url_spec(headers={"X-A": "1", "x-a": "2"})).reason


def test_get_has_no_body():
    compiled = compile_callback(url_spec(http_method="GET", url="https://h/cb?d={data}"))
    req = render_request(compiled, UPLINK)
    assert (req.method, req.url, req.body, req.content_type) == ("GET", "https://h/cb?d=0102ff", None, None)
    exc = error(validate_callback, url_spec(http_method="GET", body_template="d={data}"))
    assert exc.field == "bodyTemplate" and "GET" in exc.reason


def test_json_body_checked_for_json_content_type():
    exc = error(validate_callback, url_spec(content_type="application/json", body_template='{"a": {data}x}'))
    assert exc.field == "bodyTemplate"
    exc = error(validate_callback, url_spec(content_type="application/json", body_template=None))
    assert exc.field == "bodyTemplate" and "not valid JSON" in exc.reason
    exc = error(validate_callback, url_spec(body_template='{"a": "{data}"}'))
    assert exc.field == "bodyTemplate" and "literal braces" in exc.reason


def test_batch_url_rules():
    ok = {"channel": "BATCH_URL", "line_pattern": "{device};{time};{data};"}
    validate_callback(url_spec(**ok))
    assert error(validate_callback, url_spec(channel="BATCH_URL")).field == "linePattern"
    exc = error(validate_callback, url_spec(**ok, url="https://h/{device}?b={batch}"))
    assert (exc.field, exc.position) == ("url", 10) and "only contain {batch}" in exc.reason
    exc = error(validate_callback, url_spec(**ok, http_method="GET"))
    assert exc.field == "url" and "{batch}" in exc.reason
    validate_callback(url_spec(**ok, http_method="GET", url="https://h/b?lines={batch}"))
    exc = error(validate_callback, url_spec(**ok, headers={"X-D": "{device}"}))
    assert exc.field == "headers.X-D" and "cannot contain variables" in exc.reason
    assert error(validate_callback, url_spec(**ok, body_template="x")).field == "bodyTemplate"
    exc = error(validate_callback, url_spec(channel="BATCH_URL", line_pattern="{device}\n{data}"))
    assert (exc.field, exc.position) == ("linePattern", 8)
    exc = error(validate_callback, url_spec(channel="BATCH_URL", line_pattern="{batch}"))
    assert exc.field == "linePattern" and "unknown variable 'batch'" in exc.reason
    assert "unknown variable 'batch'" in error(validate_callback, url_spec(url="https://h/{batch}")).reason


def email_spec(**kw) -> CallbackSpec:
    base = {"id": "e1", "kind": "DATA_UPLINK", "channel": "EMAIL", "recipient": "ops@example.com",
            "subject": "Message from {device}", "message": "data={data} seq={seqNumber}"}
    return CallbackSpec(**{**base, **kw})


def test_email_rules():
    validate_callback(email_spec())
    validate_callback(email_spec(recipient="{device}@devices.example.com"))
    validate_callback(email_spec(recipient="root@localhost"))
    assert error(validate_callback, email_spec(recipient=None)).field == "recipient"
    assert error(validate_callback, email_spec(recipient="not an address")).field == "recipient"
    assert error(validate_callback, email_spec(recipient="a@b.com, c@d.com")).field == "recipient"
    assert error(validate_callback, email_spec(subject="")).field == "subject"
    assert error(validate_callback, email_spec(subject="a\r\nBcc: x@y.z")).field == "subject"
    assert error(validate_callback, email_spec(message=None)).field == "message"
    exc = error(validate_callback, email_spec(message="{foo}"))
    assert (exc.field, exc.position) == ("message", 0)


# --- rendering requests ----------------------------------------------------------------

def test_form_request():
    spec = url_spec(url="https://example.com/cb/{device}", headers={"X-Seq": "{seqNumber}"},
                    body_template="device={device}&data={data}&avg={avgSnr}")
    req = render_request(compile_callback(spec), UPLINK)
    assert req.method == "POST" and req.url == "https://example.com/cb/00AB12CD"
    assert req.headers == {"X-Seq": "123"}
    assert req.content_type == "application/x-www-form-urlencoded"
    assert parse_qs(req.body.decode()) == {"device": ["00AB12CD"], "data": ["0102ff"], "avg": ["N/A"]}
    assert req.basic_auth is None


def test_json_request():
    spec = url_spec(http_method="PUT", content_type="application/json",
                    body_template='{"device": "{device}", "seq": {seqNumber}, "dup": {duplicate}}')
    req = render_request(compile_callback(spec), UPLINK)
    assert req.method == "PUT" and req.content_type == "application/json"
    assert orjson.loads(req.body) == {"device": "00AB12CD", "seq": 123, "dup": False}


def test_text_request():
    spec = url_spec(content_type="text/plain", body_template="{device} sent {data}")
    assert render_request(compile_callback(spec), UPLINK).body == b"00AB12CD sent 0102ff"


def test_header_injection_refused_in_request():
    compiled = compile_callback(url_spec(
        kind="DATA_ADVANCED", headers={"X-Op": "{operatorName}"}, body_template="x"))
    exc = error(render_request, compiled, {"operatorName": "evil\r\nX-Admin: 1"})
    assert exc.field == "headers.X-Op"


def test_credentials_move_to_basic_auth():
    spec = url_spec(url="https://us%40er:p%3Ass@example.com:8443/cb?d={data}", headers={"Authorization": "x"})
    compiled = compile_callback(spec)
    req = render_request(compiled, UPLINK)
    assert req.url == "https://example.com:8443/cb?d=0102ff"
    assert req.basic_auth == ("us@er", "p:ss")
    assert req.headers == {"Authorization": "x"}
    for text in (repr(spec), repr(compiled), repr(req), str(compiled.url)):
        assert "p%3Ass" not in text and "p:ss" not in text
    assert compile_callback(url_spec(url="https://tok@example.com/")).basic_auth == ("tok", "")
    assert compile_callback(url_spec(url="https://@example.com/")).basic_auth is None


def test_credential_error_positions_refer_to_the_original_url():
    exc = error(validate_callback, url_spec(url="https://u:p@example.com/{foo}"))
    assert exc.position == 24


@pytest.mark.parametrize("url, redacted", [
    ("https://user:pass@example.com/x", "https://example.com/x"),
    ("http://user@example.com:80?q=a@b", "http://example.com:80?q=a@b"),
    ("https://a:b@c:d@example.com/", "https://example.com/"),
    ("https://example.com/p@x", "https://example.com/p@x"),
    ("https://example.com", "https://example.com"),
    ("not a url @ all", "not a url @ all"),
    ("https://u:p@h/{device}", "https://h/{device}"),
])
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_render_for_wrong_channel():
    url = compile_callback(url_spec())
    email = compile_callback(email_spec())
    with pytest.raises(ValueError):
        render_email(url, UPLINK)
    with pytest.raises(ValueError):
        render_batch(url, [UPLINK])
    with pytest.raises(ValueError):
        render_request(email, UPLINK)


def test_compiled_variables():
    spec = url_spec(url="https://h/{device}", headers={"X": "{seqNumber}"}, body_template="d={data}")
    assert compile_callback(spec).variables == {"device", "seqNumber", "data"}
    batch = url_spec(channel="BATCH_URL", url="https://h/?b={batch}", line_pattern="{time};{snr}")
    assert compile_callback(batch).variables == {"time", "snr"}


# --- batches and e-mail ----------------------------------------------------------------

def batch_messages() -> list[dict]:
    return [{**UPLINK, "device": "A1", "data": "01"}, {**UPLINK, "device": "B2", "data": "02"},
            {**UPLINK, "device": "C3", "data": "03", "time": 1764165601}]


def test_batch_post_layout():
    spec = url_spec(channel="BATCH_URL", url="https://u:p@example.com/batch",
                    headers={"X-Key": "k"}, line_pattern="{device};{time};{data};")
    req = render_batch(compile_callback(spec), batch_messages())
    assert req.method == "POST" and req.url == "https://example.com/batch"
    assert req.body == b"A1;1764165600;01;\nB2;1764165600;02;\nC3;1764165601;03;"
    assert req.content_type == "text/plain"
    assert req.headers == {"X-Key": "k"} and req.basic_auth == ("u", "p")


def test_batch_get_puts_lines_in_url():
    spec = url_spec(channel="BATCH_URL", http_method="GET", url="https://example.com/b?lines={batch}",
                    line_pattern="{device};{data}")
    req = render_batch(compile_callback(spec), batch_messages())
    assert req.body is None and req.content_type is None
    assert req.url == "https://example.com/b?lines=A1%3B01%0AB2%3B02%0AC3%3B03"
    assert unquote(urlsplit(req.url).query.split("=", 1)[1]) == "A1;01\nB2;02\nC3;03"


def test_batch_post_with_batch_in_url_and_explicit_content_type():
    spec = url_spec(channel="BATCH_URL", url="https://example.com/b/{batch}", line_pattern="{device}",
                    content_type="application/x-www-form-urlencoded")
    req = render_batch(compile_callback(spec), batch_messages()[:2])
    assert req.url == "https://example.com/b/A1%0AB2" and req.body == b"A1\nB2"
    assert req.content_type == "application/x-www-form-urlencoded"


def test_batch_value_line_breaks_become_spaces():
    spec = url_spec(channel="BATCH_URL", line_pattern="{device};{customData#s}")
    req = render_batch(compile_callback(spec), [{"device": "A", "customData#s": "x\r\ny\nz"}, {"device": "B"}])
    assert req.body == b"A;x  y z\nB;"


def test_empty_batch_refused():
    spec = url_spec(channel="BATCH_URL", line_pattern="{device}")
    with pytest.raises(ValueError):
        render_batch(compile_callback(spec), [])


def test_render_email():
    compiled = compile_callback(email_spec(recipient=" {device}@devices.example.com "))
    recipient, subject, body = render_email(compiled, UPLINK)
    assert recipient == "00AB12CD@devices.example.com"
    assert subject == "Message from 00AB12CD"
    assert body == "data=0102ff seq=123"
    exc = error(render_email, compiled, {**UPLINK, "device": "a b"})
    assert exc.field == "recipient"
    compiled = compile_callback(email_spec(kind="DATA_ADVANCED", subject="op {operatorName}"))
    assert error(render_email, compiled, {"operatorName": "x\nBcc: y@z.com"}).field == "subject"


def test_restored_and_error_templates():
    t = tpl("{device} back after {info}; last error {lastErrorTime} ({severity})", kind="RESTORED",
            field="message")
    out = t.render_text({"device": "AB", "info": "x", "lastErrorTime": 1764162000, "severity": "INFO"})
    assert out == "AB back after x; last error 1764162000 (INFO)"
    assert "unknown variable 'lastErrorTime'" in error(tpl, "{lastErrorTime}", kind="ERROR").reason


# --- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
JSON_BODY = validate_json_body(
    '{"a": "{data}", "n": {seqNumber}, "v": {device}, "mix": "<{station}|{data}>", "l": [{snr}, "{rssi}"]}',
    "DATA_UPLINK")


@settings(max_examples=300)
@given(data=st.text(), station=st.text(), seq=st.integers(0, 4095), value=json_values, rssi=st.text())
def test_json_render_round_trips(data, station, seq, value, rssi):
    variables = {"data": data, "station": station, "seqNumber": seq, "device": value, "snr": value,
                 "rssi": rssi}
    parsed = orjson.loads(JSON_BODY.render_json(variables))
    assert parsed == {"a": data, "n": seq, "v": value, "mix": f"<{station}|{data}>", "l": [value, rssi]}


URL = compile_template("https://h.example/p/{device}?d={data}&s={station}", kind="DATA_UPLINK", field="url")


@settings(max_examples=300)
@given(device=st.text(), data=st.text(), station=st.text())
def test_url_render_round_trips(device, data, station):
    parts = urlsplit(URL.render_url({"device": device, "data": data, "station": station}))
    assert parts.netloc == "h.example"
    assert unquote(parts.path[len("/p/"):]) == device
    pairs = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    assert pairs.keys() == {"d", "s"}
    assert (unquote(pairs["d"]), unquote(pairs["s"])) == (data, station)


FORM = compile_template("device={device}&data={data}&n={seqNumber}", kind="DATA_UPLINK", field="bodyTemplate")


@settings(max_examples=300)
@given(device=st.text(), data=st.text(), seq=st.integers())
def test_form_render_round_trips(device, data, seq):
    body = FORM.render_form({"device": device, "data": data, "seqNumber": seq})
    parsed = parse_qs(body, keep_blank_values=True, strict_parsing=True)
    assert parsed == {"device": [device], "data": [data], "n": [str(seq)]}


HEADER = compile_template("Bearer {device}", kind="DATA_UPLINK", field="headers.Authorization")


@given(device=st.text())
def test_header_render_is_verbatim_or_refused(device):
    if any(c in device for c in "\r\n\x00"):
        with pytest.raises(TemplateError):
            HEADER.render_header({"device": device})
    else:
        assert HEADER.render_header({"device": device}) == f"Bearer {device}"


LINES = compile_callback(url_spec(channel="BATCH_URL", url="https://h/?b={batch}", line_pattern="{device};{data}"))


@given(st.lists(st.tuples(st.text(), st.text()), min_size=1, max_size=20))
def test_batch_one_line_per_message(messages):
    req = render_batch(LINES, [{"device": d, "data": x} for d, x in messages])
    lines = req.body.decode().split("\n")
    assert len(lines) == len(messages)
    assert unquote(urlsplit(req.url).query[2:]) == req.body.decode()


# Every refusal reads whole: the field, the position and the reason a user is shown (issue 18) -----

@pytest.mark.parametrize("spec, field, position, reason", [
    (url_spec(url=""), "url", None, "required"),
    (url_spec(url="https://example.com/a b"), "url", 21, "whitespace and control characters are not allowed in a URL"),
    (url_spec(url="example.com/cb"), "url", 0, "must be an absolute http:// or https:// URL"),
    (url_spec(url="//example.com/cb"), "url", 0, "must be an absolute http:// or https:// URL"),
    (url_spec(url="h://x"), "url", 0, "scheme must be http or https, got 'h'"),
    (url_spec(url="ftp://example.com/"), "url", 0, "scheme must be http or https, got 'ftp'"),
    (url_spec(url="https://{device}.example.com/"), "url", 8, "variables are not allowed in the credentials or host"),
    (url_spec(url="https://example.com:99999/"), "url", 8, "invalid host or port"),
    (url_spec(url="https://:80/"), "url", 8, "host missing"),
    (url_spec(http_method="DELETE"), "httpMethod", None, "must be one of GET, POST, PUT, got 'DELETE'"),
    (url_spec(channel="SMS"), "channel", None, "must be one of URL, BATCH_URL, EMAIL, MQTT, KAFKA, AZURE_EVENT_HUBS, AWS_IOT, KINESIS, SQS, AZURE_IOT_HUB, got 'SMS'"),
    (url_spec(kind="NOPE"), "kind", None, "unknown callback kind 'NOPE'; expected one of DATA_UPLINK, DATA_BIDIR, "
                                          "DATA_ADVANCED, STATUS, ACKNOWLEDGE, REPEATER, ERROR, EVENT, RESTORED"),
    (url_spec(headers={"X-{device}": "1"}), "headers", None, "header names cannot contain variables: 'X-{device}'"),
    (url_spec(headers={"X-}": "1"}), "headers", None, "header names cannot contain variables: 'X-}'"),
    (url_spec(headers={"X A": "1"}), "headers", None, "invalid header name 'X A'"),
    (url_spec(headers={"Host": "x"}), "headers.Host", None, "Host is a standard header and cannot be set by a callback"),
    (url_spec(headers={"X-A": "1", "x-a": "2"}), "headers.x-a", None, "duplicate header (names are case-insensitive)"),
    (url_spec(headers={"X-A": 1}), "headers.X-A", None, "value must be a string"),
    (url_spec(headers={"X-A": "a\r\nb"}), "headers.X-A", 1, "CR, LF and NUL are not allowed in header values"),
    (url_spec(channel="BATCH_URL", http_method="POST", line_pattern="{device}", headers={"X-A": "ab{device}"}),
     "headers.X-A", 2, "BATCH_URL header values cannot contain variables (one request carries many messages)"),
    (url_spec(channel="BATCH_URL", http_method="POST", line_pattern="{device}", url="https://example.com/{device}"),
     "url", 20, "a BATCH_URL URL may only contain {batch}, not {device}"),
    (url_spec(channel="BATCH_URL", http_method="POST", line_pattern="{device}", body_template="x"),
     "bodyTemplate", None, "BATCH_URL callbacks send their lines as the body; use linePattern"),
    (url_spec(channel="BATCH_URL", http_method="POST"), "linePattern", None, "required for BATCH_URL callbacks"),
    (url_spec(channel="BATCH_URL", http_method="GET", line_pattern="{device}"), "url", None,
     "a GET BATCH_URL callback must carry {batch} in its URL"),
    (url_spec(http_method="GET", body_template="x"), "bodyTemplate", None, "GET requests have no body; use POST or PUT"),
    (url_spec(http_method="POST", content_type="text/html"), "contentType", None,
     "must be one of application/x-www-form-urlencoded, application/json, text/plain, got 'text/html'"),
    (url_spec(channel="EMAIL", subject="s", message="m"), "recipient", None, "required for EMAIL callbacks"),
    (url_spec(channel="EMAIL", recipient="nobody", subject="s", message="m"), "recipient", None,
     "not an e-mail address: 'nobody'"),
    (url_spec(channel="EMAIL", recipient="{nope}", subject="s", message="m"), "recipient", 0,
     "unknown variable 'nope' for DATA_UPLINK callbacks"),
    (url_spec(channel="EMAIL", recipient="a@b.example", message="m"), "subject", None, "required for EMAIL callbacks"),
    (url_spec(channel="EMAIL", recipient="a@b.example", subject="a\rb", message="m"), "subject", 1,
     "CR, LF and NUL are not allowed in a subject"),
    (url_spec(channel="EMAIL", recipient="a@b.example", subject="s"), "message", None, "required for EMAIL callbacks"),
    (url_spec(http_method="POST", content_type="application/json", body_template='{"a": }'), "bodyTemplate", 6,
     "body is not valid JSON after substitution: unexpected character, expected a JSON value"),
    (url_spec(http_method="POST", content_type="application/json", body_template='{"a": x{device}}'),
     "bodyTemplate", 7, "variable {device} outside a JSON string must stand alone as a JSON value"),
])
def test_a_refused_callback_says_which_field_where_and_why(spec, field, position, reason):
    e = error(compile_callback, spec)
    assert (e.field, e.position) == (field, position)
    assert e.reason == reason
    assert str(e) == (field if position is None else f"{field} at {position}") + ": " + e.reason


def test_reprs_for_logs_hold_no_credentials_nor_bodies():
    spec = url_spec(url="https://user:pw@example.com/cb?d={device}", http_method="POST", body_template="d={device}",
                    content_type="text/plain", headers={"X-B": "1", "X-A": "2"})
    assert repr(spec) == ("CallbackSpec(id='cb1', kind='DATA_UPLINK', channel='URL', "
                          "url='https://example.com/cb?d={device}', http_method='POST', headers=['X-A', 'X-B'])")
    assert "url=None" in repr(url_spec(url=""))
    request = render_request(compile_callback(spec), {"device": "AB"})
    assert repr(request) == ("RenderedRequest(method='POST', url='https://example.com/cb?d=AB', headers=['X-A', 'X-B'], "
                             "body_bytes=4, content_type='text/plain', basic_auth=set)")
    plain = render_request(compile_callback(url_spec(http_method="GET")), {})
    assert repr(plain).endswith("headers=[], body_bytes=None, content_type=None, basic_auth=None)")


def test_rendering_for_the_wrong_channel_names_the_channel():
    email = compile_callback(url_spec(channel="EMAIL", recipient="a@b.example", subject="s", message="m"))
    with pytest.raises(ValueError, match="render_request is for URL callbacks, not EMAIL"):
        render_request(email, {})
    with pytest.raises(ValueError, match="render_email is for EMAIL callbacks, not URL"):
        render_email(compile_callback(url_spec()), {})
    with pytest.raises(TemplateError, match="recipient: rendered recipient is not an e-mail address"):
        render_email(compile_callback(url_spec(channel="EMAIL", recipient="{device}@b.example", subject="s",
                                               message="m")), {"device": "a b"})


@pytest.mark.parametrize("text, kind, json_body, position, reason", [
    ("a}b", "DATA_UPLINK", False, 1, "unbalanced '}' (literal braces are only allowed in application/json bodies)"),
    ("a { b", "DATA_UPLINK", False, 2,
     "unbalanced '{' (a variable is written {name}) (literal braces are only allowed in application/json bodies)"),
    ("a{b", "DATA_UPLINK", False, 1, "variable '{b' is not closed with '}'"),
    ("{}", "DATA_UPLINK", False, 0, "empty variable name"),
    ("{dev ice}", "DATA_UPLINK", False, 4, "unexpected ' ' in variable name"),
    ("{devcie}", "DATA_UPLINK", False, 0, "unknown variable 'devcie' for DATA_UPLINK callbacks (did you mean 'device'?)"),
    ("{customData#x}", "STATUS", False, 0,
     "customData variables exist only for DATA_UPLINK, DATA_BIDIR and DATA_ADVANCED callbacks, not STATUS"),
    ('"\\{device}"', "DATA_UPLINK", True, 2, "a variable cannot follow a backslash inside a JSON string"),
])
def test_a_refused_template_says_where_and_why(text, kind, json_body, position, reason):
    e = error(tpl, text, kind=kind, json_body=json_body)
    assert (e.field, e.position, e.reason) == ("bodyTemplate", position, reason)


def test_a_line_pattern_is_one_line_and_a_batch_holds_a_message():
    spec = url_spec(channel="BATCH_URL", http_method="POST", line_pattern="a\nb")
    e = error(compile_callback, spec)
    assert (e.field, e.position, e.reason) == ("linePattern", 1, "a line pattern is one line; CR and LF are not allowed")
    batch = compile_callback(url_spec(channel="BATCH_URL", http_method="POST", line_pattern="{device}"))
    with pytest.raises(ValueError) as empty:
        render_batch(batch, [])
    assert str(empty.value) == "a batch holds at least one message"


def test_a_header_that_would_inject_says_so():
    e = error(tpl("x: {device}", field="headers.X").render_header, {"device": "a\nb"})
    assert (e.field, e.position, e.reason) == ("headers.X", None,
                                               "rendered value contains CR, LF or NUL; header injection refused")


def test_values_of_any_type_render_as_text_or_json():
    from decimal import Decimal

    body = tpl('{"v": {data}, "s": "{data}"}', json_body=True)
    assert body.render_json({"data": Decimal("1.5")}) == '{"v": "1.5", "s": "1.5"}'
    assert body.render_json({"data": {1: Decimal("2.5")}}) == '{"v": {"1":"2.5"}, "s": "{\\"1\\":\\"2.5\\"}"}'
    assert body.render_json({"data": [True, None]}) == '{"v": [true,null], "s": "[true,null]"}'
    assert tpl("{data}").render_text({"data": {2: Decimal("3")}}) == '{"2":"3"}'
