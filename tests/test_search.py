"""Search: keywords typed outside a flow find handbook entries and announcements (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import timedelta

from models import utcnow
from models.content import load_content, search, tokens

from .flowkit import Chat, verify


def test_typed_keywords_find_the_handbook_answer(demo):
    reply = Chat(demo, "o_s1").text("电梯坏了找谁修")
    assert reply.startswith("为您找到")
    assert reply.index("小区电梯坏了找谁报修") < reply.index("我要求助")
    assert "96333" in reply or "报修电话" in reply


def test_search_prefix_and_empty_query(demo):
    chat = Chat(demo, "o_s2")
    assert "如何申请" not in chat.text("搜索 共享车位怎么申请")
    assert "共享车位怎么申请" in chat.text("搜索 共享车位怎么申请")
    assert "共享车位怎么申请" in chat.text("搜索：车位")
    assert "写上想查的内容" in chat.text("搜索")


def test_nothing_found_and_small_talk_get_the_fallback(demo):
    chat = Chat(demo, "o_s3")
    assert "没有找到相关内容" in chat.text("你好")
    assert "没有找到相关内容" in chat.text("量子计算机")
    assert "没有找到相关内容" in chat.text("😀😀😀")


def test_community_notices_only_reach_their_community(demo):
    xinghu = Chat(demo, "o_s4")
    verify(xinghu)  # 星湖社区
    assert "停水" in xinghu.text("停水")
    # Someone not in 星湖社区 does not see 星湖社区's notice.
    assert "11月28日星湖社区" not in Chat(demo, "o_s5").text("停水")


def test_ranking_prefers_rare_words_and_stays_in_the_database(demo, sessions):
    with sessions() as s:
        found = search(s, "楼上装修噪音", None, utcnow())
        assert found[0].question == "楼上装修噪音太大怎么办？"
        # Unpublished notices (in the future) are not found.
        load_content(s, {"announcements": [{"key": "future", "title": "明年春节联欢会彩排通知",
                                            "published_at": (utcnow() + timedelta(days=3)).isoformat()}]})
        s.commit()
        assert all(getattr(r, "key", "") != "future" for r in search(s, "春节联欢会彩排", None, utcnow()))
        assert [r.key for r in search(s, "春节联欢会彩排", None, utcnow() + timedelta(days=4))] == ["future"]


def test_tokens_drop_stopwords_and_single_characters():
    assert tokens("请问小区电梯坏了怎么办？") == ["小区", "电梯"]
    assert tokens("%_'") == []


def test_help_names_the_words_a_resident_needs(demo):
    reply = Chat(demo, "o_help_words").text("帮助")
    for word in ("求助", "实名认证", "我的诉求", "查询", "搜索"):
        assert word in reply
    assert "核销" not in reply and "登记记录" not in reply  # stewards' commands stay out of it
