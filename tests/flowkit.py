"""Scripted conversations: a resident chatting through the real webhook, and their flow state."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from wechatpy import parse_message

from handlers import dispatch
from models import Conversation, Resident

from .wechat import WeChatSim


class Chat:
    """One resident's side of the chat; every message goes through POST /wechat."""

    def __init__(self, app, openid: str, sim: WeChatSim | None = None):
        self.app = app
        self.openid = openid
        self.sim = sim or WeChatSim(app, app.test_client())
        self.sessions = app.extensions["redsteward.sessions"]

    def text(self, content: str) -> str:
        """Types a message; returns the reply text."""
        return self.sim.text(self.openid, content)

    def click(self, key: str) -> str:
        """Clicks a menu button; returns the reply text."""
        return self.sim.click(self.openid, key)

    def news(self, key: str | None = None, text: str | None = None) -> dict:
        """Clicks a button (or types) expecting a news reply; returns the raw reply."""
        if key is not None:
            return self.sim.send(self.openid, "event", Event="CLICK", EventKey=key)
        return self.sim.send(self.openid, "text", Content=text)

    def image(self, media_id: str = "m1") -> str:
        """Sends a photo."""
        return self.sim.send(self.openid, "image", PicUrl=f"http://mmbiz.example/{media_id}",
                             MediaId=media_id).get("Content", "")

    def location(self, lat: float, lng: float, label: str = "") -> str:
        """Shares a location."""
        return self.sim.send(self.openid, "location", Location_X=str(lat), Location_Y=str(lng),
                             Scale="15", Label=label).get("Content", "")

    def voice(self, recognition: str) -> str:
        """Sends a voice note with WeChat's speech recognition."""
        return self.sim.send(self.openid, "voice", MediaId="v1", Format="amr",
                             Recognition=recognition).get("Content", "")

    @property
    def state(self) -> tuple[str | None, str | None]:
        """(flow, step) of the resident's conversation as stored."""
        with self.sessions() as s:
            conv = s.scalar(select(Conversation).join(Resident, Resident.id == Conversation.resident_id)
                            .where(Resident.openid == self.openid))
            return (conv.flow, conv.step) if conv else (None, None)

    @property
    def answers(self) -> dict:
        """The answers collected so far."""
        with self.sessions() as s:
            conv = s.scalar(select(Conversation).join(Resident, Resident.id == Conversation.resident_id)
                            .where(Resident.openid == self.openid))
            return dict(conv.data) if conv else {}

    def at(self, now: datetime, content: str) -> str:
        """Types a message that the dispatcher handles as if it arrived at `now`."""
        msg = parse_message(self.sim.xml(self.openid, "text", Content=content))
        services = self.app.extensions["redsteward.services"]
        with self.sessions() as s:
            reply, _ = dispatch.handle(s, msg, services, now=now)
        return getattr(reply, "content", "")

    def resident(self, session) -> Resident:
        """The resident row, in the caller's session."""
        return session.scalar(select(Resident).where(Resident.openid == self.openid))


def verify(chat: Chat, name: str = "张小芳", mobile: str = "13812345678") -> str:
    """Runs the verification flow to the end in 星湖社区 · 星湖苑 (demo data)."""
    chat.click("FLOW_VERIFY")
    chat.text(name)
    chat.text(mobile)
    chat.text("星湖社区")
    chat.text("星湖苑")
    chat.text("3栋2单元")
    chat.text("不是")
    return chat.text("确认")
