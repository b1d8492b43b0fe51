"""The Open311 GeoReport v2 API, driven over real HTTP on loopback by the `georeport` client."""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import xmltodict
from georeport import GeoReport
from lxml import etree
from sqlalchemy import func, select
from werkzeug.serving import make_server

from models import Estate, Organisation, OutboxMessage, Resident, ServiceRequest, file_request
from models import apikey
from models import workflow as wf

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).with_suffix(".xsd"))))
W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
STEWARD = wf.Actor("steward", 1, "星湖社区 红管负责人")


class Api:
    """The app served on 127.0.0.1 in a thread, with keys and helpers an outside client would use."""

    def __init__(self, app, sessions):
        """Starts serving the app on a free loopback port."""
        self.app, self.sessions = app, sessions
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.root = f"http://127.0.0.1:{self.server.server_port}/open311/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def key(self, scope="xinghu", rate_limit=60) -> str:
        """A fresh api_key for a community (or the park)."""
        with self.sessions() as s:
            _key, plaintext = apikey.create_key(s, scope, "test client", rate_limit)
            s.commit()
        return plaintext

    def post(self, fmt="xml", headers=None, **form) -> requests.Response:
        """POST requests.{fmt} with form fields, as the spec has it."""
        return requests.post(f"{self.root}/requests.{fmt}", data=form, headers=headers or {}, timeout=10)

    def get(self, path: str, **params) -> requests.Response:
        """GET any path under the endpoint."""
        return requests.get(f"{self.root}/{path}", params=params, timeout=10)

    def close(self):
        """Stops the server."""
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def api(demo, sessions):
    """The demo park served over HTTP."""
    server = Api(demo, sessions)
    yield server
    server.close()


def valid(response: requests.Response) -> etree._Element:
    """Parses an XML answer and checks it against the GeoReport v2 schema of tests/test_open311.xsd."""
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    doc = etree.fromstring(response.content)
    SCHEMA.assertValid(doc)
    return doc


def elevator(api, key, **extra):
    """A valid elevator report from an outside app."""
    form = {"api_key": key, "service_code": "elevator", "attribute[estate]": "xhy",
            "attribute[trapped]": "no", "attribute[building]": "3栋", "lat": "31.3201", "long": "120.7102",
            "description": "3栋电梯停在9楼不动了，按钮没反应"}
    form.update(extra)
    return api.post(**form)


def test_georeport_client_round_trip_in_xml_and_json(api):
    key = api.key()
    for fmt in ("xml", "json"):
        client = GeoReport(api.root, output_format=fmt)
        services = client.get_service_list()
        codes = {s["service_code"]: s for s in services}
        assert codes["elevator"]["service_name"] == "电梯故障"
        assert codes["elevator"]["group"] == "市场服务类"
        assert {s["group"] for s in services} == {"政务类", "民主自治类", "市场服务类", "公益类"}
        definition = client.get_service_definition("elevator")
        attrs = definition["attributes"]["attribute"] if fmt == "xml" else definition["attributes"]
        by_code = {a["code"]: a for a in attrs}
        assert {"estate", "kind", "trapped", "building"} <= set(by_code)
        estate_values = by_code["estate"]["values"]["value"] if fmt == "xml" else by_code["estate"]["values"]
        assert {"key": "xhy", "name": "星湖苑"} in [dict(v) for v in estate_values]

    filed = elevator(api, key)
    assert filed.status_code == 200, filed.text
    doc = valid(filed)
    ref = doc.findtext("request/service_request_id")
    token = doc.findtext("request/token")
    assert re.fullmatch(r"\d{8}", ref)

    for fmt in ("xml", "json"):
        client = GeoReport(api.root, output_format=fmt)
        one = client.get_service_request(ref)
        assert one["service_request_id"] == ref and one["status"] == "open"
        assert one["service_code"] == "elevator" and one["service_name"] == "电梯故障"
        assert one["address"].startswith("星湖苑") and one["address_id"] == "xhy"
        assert "有人被困在电梯里：无人被困" in one["description"]
        assert W3C.match(one["requested_datetime"]) and one["requested_datetime"].endswith("+08:00")
        listed = client.get_service_requests(service_code="elevator", status="open")
        listed = [listed] if isinstance(listed, dict) else listed
        assert [r["service_request_id"] for r in listed] == [ref]
    token_answer = valid(api.get(f"tokens/{token}.xml"))
    assert token_answer.findtext("request/service_request_id") == ref
    assert api.get(f"tokens/{token}.json").json() == [{"service_request_id": ref, "token": token}]


def test_a_filed_request_reaches_the_stewards_and_is_recorded_as_coming_from_the_api(api, sessions):
    ref = valid(elevator(api, api.key())).findtext("request/service_request_id")
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref))
        assert (req.channel, req.kind, req.category, req.estate.code) == ("open311", "help", "电梯故障", "xhy")
        assert req.location["latitude"] == pytest.approx(31.3201)
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "sandbox_steward_xinghu")).all()
        assert [m.payload["purpose"] for m in sent] == ["new_request"]
        assert sent[0].payload["data"]["character_string1"]["value"] == ref


def test_workflow_shows_through_handler_deadline_and_latest_public_reply(api, sessions):
    ref = valid(elevator(api, api.key())).findtext("request/service_request_id")
    now = datetime.now(timezone.utc)
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref))
        wf.classify(s, req, STEWARD, "market_service", "电梯故障", now)
        pm = s.scalar(select(Organisation).where(Organisation.code == "xhy_pm"))
        wf.route(s, req, STEWARD, pm, 3, now, note="内部备注：请物业经理亲自跟进")
        wf.answer(s, req, STEWARD, "维保单位已到场，预计今晚恢复运行。联系电话13912345678", now)
        deadline, handler_name = req.deadline_at, pm.name
        s.commit()
    row = valid(api.get(f"requests/{ref}.xml")).find("request")
    assert row.findtext("agency_responsible") == handler_name
    assert row.findtext("expected_datetime") == deadline.astimezone(
        timezone(timedelta(hours=8))).isoformat(timespec="seconds")
    assert row.findtext("status_notes") == "维保单位已到场，预计今晚恢复运行。联系电话139****5678"
    assert "内部备注" not in api.get(f"requests/{ref}.xml").text
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref))
        wf.resolve(s, req, STEWARD, "电梯已修复并通过检测", now)
        s.commit()
    row = api.get(f"requests/{ref}.json").json()[0]
    assert (row["status"], row["status_notes"]) == ("closed", "电梯已修复并通过检测")
    assert [r["service_request_id"] for r in api.get("requests.json", status="closed").json()] == [ref]
    assert api.get("requests.json", status="open").json() == []


def test_no_personal_data_leaves_and_locations_stop_at_the_estate(api, sessions):
    with sessions() as s:
        estate = s.scalar(select(Estate).where(Estate.code == "lhjy"))
        resident = Resident(openid="o_secret_openid", name="张小芳", mobile="13812345678",
                            id_number="320501199001011234", estate_id=estate.id)
        s.add(resident)
        s.flush()
        file_request(s, kind="help", category="邻里纠纷", resident_id=resident.id, estate_id=estate.id,
                     community_id=estate.community_id,
                     description="我是张小芳，住7栋502室，2026-11-20 发现楼上漏水，电话13812345678，"
                                 "身份证320501199001011234，邮箱zxf@example.com",
                     location={"latitude": 31.31, "longitude": 120.71, "label": "7栋502室"},
                     created_at=datetime.now(timezone.utc))
        s.commit()
    filed = elevator(api, api.key(), first_name="伟", last_name="钱", phone="13700001111",
                     email="qian@example.com")
    assert filed.status_code == 200
    for fmt in ("xml", "json"):
        body = api.get(f"requests.{fmt}").text
        for secret in ("张小芳", "小芳", "13812345678", "320501199001011234", "502", "o_secret_openid",
                       "31.31", "120.71", "31.3201", "13700001111", "qian@example.com", "钱伟"):
            assert secret not in body, (fmt, secret)
        assert "138****5678" in body and "玲珑家园" in body and "2026-11-20 发现楼上漏水" in body
        assert "zxf@example.com" not in body and "邮箱***" in body
    doc = valid(api.get("requests.xml"))
    assert doc.find("request/lat") is None and doc.find("request/long") is None


@pytest.mark.parametrize("form, status, words", [
    ({"api_key": ""}, 403, "api_key"),
    ({"api_key": "rs_nothere_abcdefghijklmnopqrstuvwx"}, 403, "api_key"),
    ({"service_code": "no_such"}, 400, "no_such"),
    ({"lat": "", "long": ""}, 400, "address_string"),
    ({"lat": "95"}, 400, "lat"),
    ({"description": ""}, 400, "description"),
    ({"description": "电" * 4001}, 400, "4000"),
    ({"attribute[estate]": "hlsy"}, 400, "hlsy"),
    ({"attribute[trapped]": ""}, 400, "trapped"),
    ({"attribute[trapped]": "maybe"}, 400, "maybe"),
    ({"attribute[kind]": "complaint"}, 400, "complaint"),
])
def test_bad_submissions_get_the_spec_error_format_and_file_nothing(api, sessions, form, status, words):
    answer = elevator(api, api.key(), **form)
    assert answer.status_code == status
    doc = valid(answer)
    assert doc.findtext("error/code") == str(status)
    assert words in doc.findtext("error/description")
    with sessions() as s:
        assert s.scalar(select(func.count(ServiceRequest.id))) == 0
        assert s.scalar(select(func.count(OutboxMessage.id))) == 0


def test_errors_in_json_are_a_list_of_code_and_description(api):
    answer = api.post("json", service_code="elevator", description="电梯坏了")
    assert answer.status_code == 403
    assert answer.headers["Content-Type"].startswith("application/json")
    [error] = answer.json()
    assert error["code"] == 403 and "api_key" in error["description"]


def test_an_address_naming_the_estate_is_enough_and_lat_long_alone_is_not(api):
    key = api.key()
    by_address = api.post(api_key=key, service_code="cleaning", address_string="星湖苑北区垃圾房",
                          description="垃圾桶满了三天没人清运")
    assert by_address.status_code == 200
    row = api.get(f"requests/{valid(by_address).findtext('request/service_request_id')}.json").json()[0]
    assert row["address_id"] == "xhy" and row["service_code"] == "cleaning"
    nowhere = api.post(api_key=key, service_code="cleaning", lat="31.3", long="120.7",
                       description="垃圾桶满了三天没人清运")
    assert nowhere.status_code == 400 and "attribute[estate]" in valid(nowhere).findtext("error/description")


def test_get_errors_unknown_ids_spans_and_status(api):
    for path, params, status in [
        ("requests/00000000.xml", {}, 404), ("tokens/nope.xml", {}, 404), ("services/nope.xml", {}, 404),
        ("requests.xml", {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-05-01T00:00:00+08:00"}, 400),
        ("requests.xml", {"start_date": "yesterday"}, 400), ("requests.xml", {"status": "pending"}, 400),
        ("services.xml", {"jurisdiction_id": "elsewhere"}, 404),
        ("services.xml", {"jurisdiction_id": "park"}, 200),
        ("requests.xml", {"api_key": "rs_bad_key"}, 403),
    ]:
        answer = api.get(path, **params)
        assert answer.status_code == status, (path, params, answer.text)
        if status != 200:
            assert valid(answer).findtext("error/code") == str(status)
    assert api.get("requests.json", start_date="yesterday").json()[0]["code"] == 400


def test_date_window_and_the_thousand_request_cap(api, sessions):
    now = datetime.now(timezone.utc)
    with sessions() as s:
        estate = s.scalar(select(Estate).where(Estate.code == "xhy"))
        for n in range(1003):
            file_request(s, kind="help", category="环境卫生", description=f"垃圾没人清运 {n}",
                         estate_id=estate.id, community_id=estate.community_id,
                         created_at=now - timedelta(minutes=n))
        old = file_request(s, kind="help", category="环境卫生", description="很久以前的事",
                           estate_id=estate.id, community_id=estate.community_id,
                           created_at=now - timedelta(days=120))
        old_ref = old.ref
        s.commit()
    recent = api.get("requests.json").json()
    assert len(recent) == 1000 and old_ref not in {r["service_request_id"] for r in recent}
    window = {"start_date": (now - timedelta(days=125)).isoformat(), "end_date": (now - timedelta(days=100)).isoformat()}
    assert [r["service_request_id"] for r in api.get("requests.json", **window).json()] == [old_ref]
    by_id = api.get("requests.json", service_request_id=f"{old_ref},{recent[0]['service_request_id']}").json()
    assert {r["service_request_id"] for r in by_id} == {old_ref, recent[0]["service_request_id"]}
    assert all(isinstance(r["service_request_id"], str) for r in by_id)
    valid(api.get("requests.xml", service_code="cleaning", end_date=now.isoformat()))


def test_rate_limit_per_key_and_revoked_keys(api, sessions):
    key = api.key(rate_limit=3)
    codes = [api.get("requests.json", api_key=key).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.get("requests.xml", api_key=key)
    assert limited.status_code == 429 and "3" in valid(limited).findtext("error/description")
    other = api.key()
    assert api.get("requests.json", api_key=other).status_code == 200
    with sessions() as s:
        apikey.revoke(s, other.split("_")[1])
        s.commit()
    assert elevator(api, other).status_code == 403


def test_a_retried_post_with_the_same_idempotency_key_files_once(api, sessions):
    key = api.key()
    first = elevator(api, key, headers={"Idempotency-Key": "app-42"})
    second = elevator(api, key, headers={"Idempotency-Key": "app-42"})
    assert valid(first).findtext("request/service_request_id") == valid(second).findtext(
        "request/service_request_id")
    third = elevator(api, key, headers={"Idempotency-Key": "app-43"})
    assert valid(third).findtext("request/service_request_id") != valid(first).findtext(
        "request/service_request_id")
    with sessions() as s:
        assert s.scalar(select(func.count(ServiceRequest.id))) == 2
        assert s.scalar(select(func.count(OutboxMessage.id))) == 2


def test_a_community_key_files_only_in_its_own_estates(api):
    hanlin = api.key("hanlin")
    refused = elevator(api, hanlin)  # 星湖苑 belongs to 星湖社区
    assert refused.status_code == 400 and "xhy" in valid(refused).findtext("error/description")
    assert elevator(api, hanlin, **{"attribute[estate]": "hlsy"}).status_code == 200
    assert elevator(api, api.key("park"), **{"attribute[estate]": "yhy"}).status_code == 200


def test_discovery_and_services_validate_against_the_schema(api):
    doc = valid(api.get("discovery.xml"))
    assert doc.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"
    assert doc.findtext("endpoints/endpoint/url") == api.app.config["REDSTEWARD"]["app"]["public_url"] \
        .rstrip("/") + "/open311/v2"
    assert [f.text for f in doc.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]
    assert api.get("discovery.json").json()["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    valid(api.get("services.xml"))
    for code in ("elevator", "water_power", "policy"):
        valid(api.get(f"services/{code}.xml"))
    as_dict = xmltodict.parse(api.get("services.xml").content)
    assert all(s["metadata"] == "true" and s["type"] == "realtime" for s in as_dict["services"]["service"])


def test_apikey_cli_creates_a_working_key_and_refuses_unknown_scopes(api):
    runner = api.app.test_cli_runner()
    made = runner.invoke(args=["apikey", "create", "--scope", "xinghu", "--name", "街道网格 App",
                               "--rate-limit", "5"])
    assert made.exit_code == 0, made.output
    plaintext = re.search(r"(rs_\S+)", made.output).group(1)
    assert elevator(api, plaintext).status_code == 200
    listed = runner.invoke(args=["apikey", "list"])
    assert "xinghu" in listed.output and "5/min" in listed.output and plaintext not in listed.output
    refused = runner.invoke(args=["apikey", "create", "--scope", "xhy_pm"])
    assert refused.exit_code != 0 and "xhy_pm" in refused.output
    prefix = plaintext.split("_")[1]
    assert runner.invoke(args=["apikey", "revoke", prefix]).exit_code == 0
    assert elevator(api, plaintext).status_code == 403
    assert "revoked" in runner.invoke(args=["apikey", "list"]).output
