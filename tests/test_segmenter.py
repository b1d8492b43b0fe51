"""Word segmentation over the reduced jieba dictionary: the product's words cut as before, in a
fraction of the memory, built once."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from handlers import triage
from models import segmenter, utcnow
from models.content import Announcement, load_content, search, tokens


@pytest.fixture(scope="module")
def full():
    """jieba over its own full dictionary, to compare with."""
    import jieba
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


def test_residents_phrases_are_cut_into_their_words():
    cut = segmenter.tokenizer().lcut
    assert cut("小区电梯坏了三天了，物业一直不来修") == [
        "小区", "电梯", "坏", "了", "三天", "了", "，", "物业", "一直", "不来", "修"]
    assert cut("楼道灯坏了")[0] == "楼道"
    assert cut("物业") == ["物业"]
    assert cut("垃圾分类") == ["垃圾", "分类"]
    assert cut("物业费怎么交") == ["物业费", "怎么", "交"]
    assert tokens("垃圾分类点太臭了，物业也不管") == ["垃圾", "分类", "点太臭", "物业", "不管"]
    assert triage.words("12号楼电梯困人了，希望尽快处理") == ["号楼", "电梯", "困人"]


def test_the_products_own_vocabulary_is_cut_exactly_as_the_full_dictionary_cuts_it(full):
    reduced = segmenter.tokenizer()
    terms = segmenter.vocabulary()
    assert {"电梯故障", "物业费", "充电桩", "星湖苑"} <= terms  # triage, menus and the directory
    for term in sorted(terms):
        assert reduced.lcut(term) == full.lcut(term), term
        assert list(reduced.cut_for_search(term)) == list(full.cut_for_search(term)), term
    # Kept words weigh what they weighed: the total is the full dictionary's.
    assert reduced.total == full.total
    assert reduced.FREQ["物业费"] == full.FREQ["物业费"] < segmenter.MIN_FREQ
    assert len(reduced.FREQ) < len(full.FREQ) / 5


def test_the_reduced_dictionary_is_built_once_and_then_read_from_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(segmenter, "_tokenizer", None)
    monkeypatch.setattr(segmenter, "_cache_dir", None)
    segmenter.configure(tmp_path)
    first = segmenter.tokenizer()
    built = sorted(p.suffix for p in tmp_path.iterdir())
    assert built == [".cache", ".dict"]
    monkeypatch.setattr(segmenter, "_tokenizer", None)
    monkeypatch.setattr(segmenter, "build", lambda *a, **k: pytest.fail("built a second time"))
    again = segmenter.tokenizer()
    assert again.FREQ == first.FREQ and again.lcut("楼道灯坏了") == first.lcut("楼道灯坏了")


def test_reindex_cuts_stored_search_words_again(app, sessions):
    with sessions() as s:
        load_content(s, {"announcements": [{"key": "fire", "title": "冬季消防安全检查通知"}]})
        # As stored by a build whose dictionary kept 消防安全 as one word.
        s.execute(update(Announcement).values(search_text=" 冬季 消防安全 检查 通知 "))
        s.commit()
        assert [r.key for r in search(s, "消防 安全", None, utcnow())] == []
    result = app.test_cli_runner().invoke(args=["content", "reindex"])
    assert result.exit_code == 0, result.output
    assert "1 announcements" in result.output
    with sessions() as s:
        assert [r.key for r in search(s, "消防 安全", None, utcnow())] == ["fire"]
