"""The bench's floor (bench/floor.py) does the database work it claims, so its figure means something."""
from __future__ import annotations

from sqlalchemy import func, select

from bench import floor
from handlers import dispatch
from models import Conversation, ProcessedMessage, Resident


def test_the_floor_stores_each_delivery_once_and_answers_a_retry_alike(app, wx, sessions, monkeypatch):
    monkeypatch.setattr(dispatch, "handle", floor.handle)
    first = wx.send("o_floor", "text", Content="张三", MsgId=9001, CreateTime=1_700_000_001)
    again = wx.send("o_floor", "text", Content="张三", MsgId=9001, CreateTime=1_700_000_001)  # WeChat's retry
    wx.send("o_floor", "text", Content="李四", MsgId=9002, CreateTime=1_700_000_002)
    assert first["Content"] == again["Content"] == floor.REPLY.content
    with sessions() as s:
        assert s.scalar(select(func.count(Resident.id))) == 1
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 2
        conv = s.scalars(select(Conversation)).one()
        assert conv.version == 2 and conv.data == {"seen": 1_700_000_002}
