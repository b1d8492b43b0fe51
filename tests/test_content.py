"""Announcements and the handbook: loaded from YAML by the CLI, shown as 红管发布 / 便民资讯 news replies."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.content import EXAMPLE
from models import Announcement, HandbookEntry

from .flowkit import Chat, verify


def _count(sessions, model):
    with sessions() as s:
        return s.scalar(select(func.count(model.id)))


def test_cli_loads_the_example_and_reloading_updates_by_key(app, sessions, tmp_path):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0  # the park, and the example content
    handbook, news = _count(sessions, HandbookEntry), _count(sessions, Announcement)
    assert handbook >= 10 and news >= 8
    result = runner.invoke(args=["content", "load", str(EXAMPLE)])
    assert result.exit_code == 0 and f"{handbook} handbook entries" in result.output
    assert (_count(sessions, HandbookEntry), _count(sessions, Announcement)) == (handbook, news)
    changed = tmp_path / "more.yaml"
    changed.write_text("handbook:\n  - key: faq-noise\n    question: 楼上装修噪音太大怎么办？\n"
                       "    answer: 先联系物业劝阻，晚上十点后仍有噪音可拨打110。\n", encoding="utf-8")
    assert runner.invoke(args=["content", "load", str(changed)]).exit_code == 0
    with sessions() as s:
        entry = s.scalar(select(HandbookEntry).where(HandbookEntry.key == "faq-noise"))
        assert "110" in entry.answer and " 110 " in entry.search_text


def test_a_bad_file_names_the_entry_and_stores_nothing(app, sessions, tmp_path):
    runner = app.test_cli_runner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("handbook:\n  - key: ok\n    question: 好的问题\n    answer: 好的回答\n"
                   "announcements:\n  - key: a1\n    title: 通知\n    channel: weibo\n", encoding="utf-8")
    result = runner.invoke(args=["content", "load", str(bad)])
    assert result.exit_code == 1 and "announcement #1 (a1): channel" in result.output
    assert _count(sessions, HandbookEntry) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("handbook:\n  - key: x\n    question: [unclosed\n", encoding="utf-8")
    result = runner.invoke(args=["content", "load", str(broken)])
    assert result.exit_code == 1 and "broken.yaml:" in result.output and "YAML syntax" in result.output
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("announcements:\n  - key: a2\n    title: 通知\n    community: nowhere\n", encoding="utf-8")
    result = runner.invoke(args=["content", "load", str(unknown)])
    assert result.exit_code == 1 and "no community 'nowhere'" in result.output


def test_news_button_shows_the_latest_cards(demo):
    chat = Chat(demo, "o_news")
    verify(chat)  # 星湖社区: sees park-wide notices and its own
    reply = chat.news(key="NEWS_LATEST")
    assert reply["MsgType"] == "news"
    items = reply["Articles"]["item"]
    titles = [i["Title"] for i in (items if isinstance(items, list) else [items])]
    assert titles[0] == "11月28日星湖社区部分小区计划停水通知"  # newest first
    assert "冬季消防安全提醒：楼道禁止停放电动车" in titles
    assert "翰林社区召开小区停车问题议事会" not in titles  # another community's notice
    assert 1 < len(titles) <= 8


def test_typed_keyword_gets_one_card_and_info_is_its_own_channel(demo):
    chat = Chat(demo, "o_info")
    typed = chat.news(text="便民资讯")
    # WeChat shows one card in answer to a typed message.
    assert typed["MsgType"] == "news" and typed["ArticleCount"] == "1"
    assert typed["Articles"]["item"]["Title"] == "社区巴士线路调整"
    clicked = chat.news(key="NEWS_INFO")
    titles = [i["Title"] for i in clicked["Articles"]["item"]]
    assert "社区卫生服务站冬季门诊时间" in titles and "冬季消防安全提醒：楼道禁止停放电动车" not in titles


def test_no_announcements_yet(app):
    assert "暂时没有新的通知" in Chat(app, "o_empty").click("NEWS_LATEST")
