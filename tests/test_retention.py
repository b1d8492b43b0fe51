"""Retention under a frozen clock: voice notes and photos go after their period, requests lose identity after theirs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import time_machine
from sqlalchemy import func, select

from bot import voice as voice_web
from handlers.retention import retention
from models import MediaFile, Resident, ServiceRequest, utcnow

from .test_mydata import ALICE, BOB, file_text_request, fresh, verify
from .test_voice import live, speak  # noqa: F401  (live is a fixture)
from .wechat import WeChatSim

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def by_community(sessions) -> list[tuple]:
    """Requests per community and kind: the figures retention must not move."""
    with sessions() as s:
        return s.execute(select(ServiceRequest.community_id, ServiceRequest.kind, func.count())
                         .group_by(ServiceRequest.community_id, ServiceRequest.kind)
                         .order_by(ServiceRequest.community_id, ServiceRequest.kind)).all()


def test_media_then_requests_age_out_on_schedule(live):
    app, _ = live
    alice, bob = fresh(ALICE), fresh(BOB)
    wx = WeChatSim(app, app.test_client())
    sessions = app.extensions["redsteward.sessions"]
    settings = app.config["REDSTEWARD"]
    media_dir = Path(settings["app"]["media_dir"])

    def run(days: int) -> dict:
        """The daily job, run at T0 + days."""
        with time_machine.travel(T0 + timedelta(days=days)):
            return retention(sessions, settings, utcnow())

    with time_machine.travel(T0):
        verify(wx, alice)
        wx.click(alice["openid"], "FLOW_HELP")
        for answer in ("1", "1", f"我是{alice['name']}，电话{alice['mobile']}，门口路灯坏了", "跳过"):
            wx.text(alice["openid"], answer)
        wx.send(alice["openid"], "image", PicUrl="http://mmbiz.example/p1.jpg", MediaId="photo-old-1")
        wx.text(alice["openid"], "完成")
        old_ref = wx.text(alice["openid"], "1").split("编号")[1][:9].strip(" 。，")
        speak(wx, alice["openid"], "sandbox-voice-old")
        wx.text(alice["openid"], "1")
        assert voice_web.download_job(app)["downloaded"] == 2  # the photo and the voice note
    with time_machine.travel(T0 + timedelta(days=100)):
        verify(wx, bob)
        later_ref = file_text_request(wx, bob, "小区北门的路灯也坏了")
    with sessions() as s:
        files = [Path(p) for m in s.scalars(select(MediaFile)) for p in {m.path, m.playable_path}]
    assert len(files) == 3 and all(p.exists() for p in files)  # photo, AMR and its MP3
    assert all(media_dir.resolve() in p.parents for p in files)
    figures = by_community(sessions)

    assert run(179) == {"media_deleted": 0, "photos_deleted": 0, "requests_anonymised": 0}
    assert run(181) == {"media_deleted": 2, "photos_deleted": 1, "requests_anonymised": 0}
    assert not any(p.exists() for p in files)
    with sessions() as s:
        assert set(s.scalars(select(MediaFile.status))) == {"deleted"}
        old = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == old_ref))
        assert old.photos is None and old.resident_id is not None  # the request itself is still whole
    assert run(182)["media_deleted"] == 0  # nothing twice

    assert run(1094)["requests_anonymised"] == 0
    assert run(1096)["requests_anonymised"] == 2
    with sessions() as s:
        old = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == old_ref))
        assert old.resident_id is None and old.location is None
        assert alice["name"] not in old.description and alice["mobile"] not in old.description
        assert "门口路灯坏了" in old.description and old.category and old.community_id
        later = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == later_ref))
        assert later.resident_id is not None  # filed 100 days later: not yet due
        # The account itself is the resident's to delete; only old requests lose their link.
        assert s.scalar(select(Resident).where(Resident.openid == alice["openid"])).name == alice["name"]
    assert run(1097) == {"media_deleted": 0, "photos_deleted": 0, "requests_anonymised": 0}
    assert run(1196)["requests_anonymised"] == 1
    assert by_community(sessions) == figures
