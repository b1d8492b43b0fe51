"""Property-based hostile input for the flow engine: random residents' inputs through the real webhook.

Each example is a new verified resident who opens a form and then types, taps and sends whatever
hypothesis chooses. Whatever the sequence: no handler error, the conversation always points at a
step that exists, nothing is filed except on the answer to the summary, and 取消 files nothing.
"""
from __future__ import annotations

import itertools
import logging

import pytest

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from handlers.flows import CANCEL_WORDS, CONFIRM, YES_WORDS
from models import Estate, FormSubmission, OutboxMessage, Resident, ServiceRequest, utcnow

from .flowkit import Chat

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
BUTTONS = ["FLOW_HELP", "FLOW_VERIFY", "FLOW_PET", "FLOW_PARKING"]
WORDS = ["取消", "退出", "返回", "上一步", "跳过", "没有", "完成", "确认", "提交", "修改", "否", "是", "好",
         "帮助", "我的诉求", "求助", "0", "-1", "99", "１", "一", "三", "1.5", " 1 ", "",
         "张小芳", "13812345678", "+86 138 1234 5678", "1381234567", "3栋2单元", "星湖苑",
         "3栋楼道灯坏了一周了，晚上很黑", "物业服务", "公共设施"]
JUNK = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)

# A plausible answer to whatever is asked, so sequences reach the summary and the confirmation.
PLAUSIBLE = {"choice": "1", "text": "3栋2单元", "phone": "13812345678", "images": "完成", "location": "跳过",
             "voice_or_text": "3栋楼道灯坏了一周了，晚上很黑", CONFIRM: "1"}
DISRUPTION = st.one_of(
    st.integers(0, 12).map(lambda n: ("text", str(n))),
    st.sampled_from(WORDS).map(lambda w: ("text", w)),
    JUNK.map(lambda t: ("text", t)),
    st.integers(200, 700).map(lambda n: ("text", "很长的描述" * (n // 5))),
    st.just(("image", "")),
    st.sampled_from([(31.32, 120.71, "星湖街"), (39.9, 116.4, "天安门"), (0.0, 0.0, "")])
      .map(lambda p: ("location", p)),
    st.sampled_from(["", "楼道灯坏了", "取消", "1"]).map(lambda r: ("voice", r)),
    st.sampled_from(BUTTONS + ["ACTION_HELP"]).map(lambda k: ("click", k)),
)
# Three in four inputs answer sensibly, so most sequences get as far as the summary.
INPUT = st.one_of(st.just(("answer", None)), st.just(("answer", None)), st.just(("answer", None)), DISRUPTION)
_openids = itertools.count()


class _Errors(logging.Handler):
    """Collects errors the dispatcher logs when a handler raised (it answers kindly and rolls back)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        """Keeps the record."""
        self.records.append(record)


def _verified_resident(app, openid: str) -> None:
    """A resident who completed 实名认证, so every form may be opened."""
    with app.extensions["redsteward.sessions"]() as s:
        estate = s.scalar(select(Estate).where(Estate.code == "xhy"))
        s.add(Resident(openid=openid, estate_id=estate.id, name="张小芳", mobile="13812345678",
                       verified_at=utcnow()))
        s.commit()


def _filed(app, openid: str) -> tuple[int, int, int]:
    """What the resident has filed so far: requests, forms, outgoing messages."""
    with app.extensions["redsteward.sessions"]() as s:
        rid = s.scalar(select(Resident.id).where(Resident.openid == openid))
        return (s.scalar(select(func.count()).select_from(ServiceRequest)
                         .where(ServiceRequest.resident_id == rid)),
                s.scalar(select(func.count()).select_from(FormSubmission)
                         .where(FormSubmission.resident_id == rid)),
                s.scalar(select(func.count()).select_from(OutboxMessage)))


def _plausible(flows, state) -> str:
    """A sensible answer to the question the resident is at (or a greeting outside a flow)."""
    flow, step = state
    if flow is None:
        return "你好"
    return PLAUSIBLE[CONFIRM] if step == CONFIRM else PLAUSIBLE.get(flows[flow].step(step).type, "好的")


def _send(chat: Chat, kind: str, value) -> str:
    """Sends one input of any kind through POST /wechat; returns the reply text."""
    if kind == "text":
        return chat.text(value)
    if kind == "click":
        return chat.click(value)
    if kind == "image":
        return chat.image()
    if kind == "location":
        return chat.location(*value)
    return chat.voice(value)


@pytest.fixture
def demo(make_app):
    """The demo park, with the rate limit off: one resident here types faster than any person."""
    from bot import demo as demo_data
    app = make_app(app={"rate_limit_per_minute": 0})
    with app.extensions["redsteward.sessions"]() as s:
        demo_data.load(s)
    return app


def test_random_inputs_never_break_a_flow_or_file_without_confirmation(demo):
    flows = demo.extensions["redsteward.services"].menus.flows
    errors = _Errors()
    logging.getLogger("handlers").addHandler(errors)
    try:
        @PROPERTY
        @given(st.sampled_from(BUTTONS), st.lists(INPUT, min_size=4, max_size=20))
        def check(button, inputs):
            openid = f"o_hostile_{next(_openids)}"
            _verified_resident(demo, openid)
            chat = Chat(demo, openid)
            history = [("click", button)]
            chat.click(button)
            for kind, value in inputs:
                before_state, before_filed = chat.state, _filed(demo, openid)
                if kind == "answer":
                    kind, value = "text", _plausible(flows, before_state)
                reply = _send(chat, kind, value)
                history.append((kind, value))
                flow, step = after_state = chat.state
                assert not errors.records, (history, errors.records[0].getMessage())
                assert reply.strip(), history
                if flow is not None:
                    assert flow in flows, history
                    assert step == CONFIRM or step in {s.id for s in flows[flow].steps}, (history, after_state)
                confirmed = before_state[1] == CONFIRM and kind == "text" and value.strip() in YES_WORDS
                if not confirmed:
                    assert _filed(demo, openid) == before_filed, (history, before_state)
                elif _filed(demo, openid) != before_filed:
                    event(f"filed {before_state[0]}")
                if before_state[0] and kind == "text" and value in CANCEL_WORDS:
                    assert after_state == (None, None), history

        check()
    finally:
        logging.getLogger("handlers").removeHandler(errors)


def test_cancel_at_any_point_files_nothing(demo):
    """Some answers, then 取消: the flow is left and nothing reaches the stewards."""
    answers = ["1", "1", "3栋楼道灯坏了一周了，晚上很黑", "跳过", "完成"]

    @settings(PROPERTY, max_examples=30)
    @given(st.sampled_from(BUTTONS), st.integers(0, len(answers)), st.sampled_from(sorted(CANCEL_WORDS)))
    def check(button, upto, word):
        openid = f"o_cancel_{next(_openids)}"
        _verified_resident(demo, openid)
        chat = Chat(demo, openid)
        chat.click(button)
        for text in answers[:upto]:
            chat.text(text)
        before = _filed(demo, openid)
        assert chat.text(word).strip()
        assert chat.state == (None, None)
        assert _filed(demo, openid) == before
        # Whatever the resident types next is not taken as an answer to the abandoned form.
        chat.text("1")
        assert _filed(demo, openid) == before

    check()
