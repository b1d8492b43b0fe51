"""`flask activity posters`: QR tickets asked of the (sandbox) WeChat API over HTTP, posters drawn."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import select
from werkzeug.serving import make_server

from models import SandboxCall

from .test_activities_support import build_park, publish
from .wechat_standin import free_port


@pytest.fixture
def served(make_app):
    """The sandbox app on a real loopback port, so the API client reaches its stand-in over HTTP."""
    port = free_port()
    app = make_app(app={"public_url": f"http://127.0.0.1:{port}"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    server.shutdown()


def test_posters_for_check_in_and_out_with_temporary_codes(served, tmp_path):
    sessions = served.extensions["redsteward.sessions"]
    with sessions() as s:
        build_park(s)
        act = publish(s, starts_in=timedelta(days=2), hours=3)
        far = publish(s, title="新春联欢", starts_in=timedelta(days=60))
    result = served.test_cli_runner().invoke(args=["activity", "posters", str(act.id), str(tmp_path)])
    assert result.exit_code == 0, result.output
    for direction in ("in", "out"):
        image = Image.open(tmp_path / f"act_{act.id}_{direction}.png")
        assert image.size == (900, 1200)
        # The QR code sits in the middle: about half its modules dark, the margins white.
        box = image.convert("L").crop((140, 370, 760, 990))
        dark = box.point(lambda v: 255 if v < 128 else 0).histogram()[255] / (620 * 620)
        assert 0.25 < dark < 0.75
        assert image.getpixel((10, 10)) == (192, 0, 0) and image.getpixel((10, 1190)) == (255, 255, 255)
    assert served.test_cli_runner().invoke(
        args=["activity", "posters", str(far.id), str(tmp_path)]).exit_code == 0
    with sessions() as s:
        calls = [c.payload for c in s.scalars(select(SandboxCall).where(SandboxCall.endpoint == "qrcode/create")
                                               .order_by(SandboxCall.id))]
    scenes = [c["action_info"]["scene"]["scene_str"] for c in calls]
    assert scenes == [f"act_{act.id}_in", f"act_{act.id}_out", f"act_{far.id}_in", f"act_{far.id}_out"]
    # Within 30 days: temporary codes that outlive check-out; beyond: permanent ones.
    assert [c["action_name"] for c in calls] == ["QR_STR_SCENE"] * 2 + ["QR_LIMIT_STR_SCENE"] * 2
    assert 2 * 86400 + 3 * 3600 < calls[0]["expire_seconds"] <= 2 * 86400 + 6 * 3600


def test_no_posters_for_an_unknown_activity(served, tmp_path):
    result = served.test_cli_runner().invoke(args=["activity", "posters", "404", str(tmp_path)])
    assert result.exit_code != 0 and "no activity 404" in result.output
