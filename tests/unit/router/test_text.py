"""Reading report text: normalisation, numerals, negation, deaths, threats, word boundaries."""

from __future__ import annotations

import cn2an
import pytest

from services.router.domain import RoutingRules
from services.router.domain.numerals import parse_number, read_quantities
from services.router.domain.reading import read
from services.router.domain.text import Lexicon, WordList, normalise, word_boundaries


def test_full_width_becomes_half_width_and_traditional_becomes_simplified() -> None:
    assert normalise("鄰居裝修，ＡＢＣ１２３　噪音") == "邻居装修,ABC123噪音"


def test_thousands_separators_are_dropped() -> None:
    assert normalise("欠款１,２００元，共3,500,000元") == "欠款1200元,共3500000元"


@pytest.mark.parametrize(("numeral", "value"), [
    ("8000", 8000), ("六万", 60_000), ("十八万", 180_000), ("一百二十万", 1_200_000),
    ("3.5万", 35_000), ("八万八千", 88_000), ("9600", 9600), ("65万", 650_000),
    ("两千五", 2500), ("三万五", 35_000), ("一百零五", 105), ("二〇二四", 2024),
    ("壹拾万", 100_000), ("十五", 15), ("七八", 7), ("十几", 11), ("几十", 20), ("1万2千", 12_000),
])
def test_numerals_read_as_their_value(numeral: str, value: float) -> None:
    assert parse_number(numeral) == value


def test_numerals_agree_with_cn2an_across_a_range() -> None:
    samples = [*range(0, 3000), 10_000, 10_010, 12_345, 99_999, 100_000, 305_000, 3_050_000,
               12_000_000, 100_000_000, 120_000_000]
    wrong = [n for n in samples if parse_number(cn2an.an2cn(n)) != n]
    assert wrong == []


@pytest.mark.parametrize(("text", "amount"), [
    ("拖欠工资共计9600元", 9600), ("借款六万元", 60_000), ("欠我十八万", 180_000),
    ("标的一百二十万元", 1_200_000), ("损失3.5万", 35_000), ("交了一万多元学费", 10_000),
    ("彩礼八万八千元", 88_000), ("借款65万元逾期未还", 650_000), ("三十多万元", 300_000),
    ("欠款5万余元", 50_000), ("五千块钱", 5000), ("十几万", 110_000),
])
def test_money_in_text(text: str, amount: float) -> None:
    assert read_quantities(normalise(text)).largest_amount == amount


@pytest.mark.parametrize("text", ["千万不要相信", "万一出事谁负责", "承包了两万亩山林",
                                  "2024年3月5日", "工作了十年"])
def test_numbers_that_are_not_money(text: str) -> None:
    assert read_quantities(normalise(text)).amounts == []


@pytest.mark.parametrize(("text", "people"), [
    ("20多名工人", 20), ("十几人", 11), ("上百名游客", 100), ("30多户村民", 30),
    ("十五名工人", 15), ("数十名村民", 20), ("七八个人", 7), ("二十多个业主", 20),
])
def test_head_counts(text: str, people: int, rules: RoutingRules) -> None:
    assert read_quantities(normalise(text), rules.text.people_nouns).largest_head_count == people


def test_a_rank_is_not_a_head_count() -> None:
    assert read_quantities("考了第三名").head_counts == []


@pytest.mark.parametrize("text", ["两车追尾，无人员受伤", "推搡中无人受伤", "经询问均未受伤",
                                  "未造成人员伤亡", "没有人受伤"])
def test_negated_injuries_are_not_injuries(text: str, rules: RoutingRules) -> None:
    assert "injury" not in read(text, rules).signals


@pytest.mark.parametrize("text", ["左手被机器压伤", "头部擦伤", "被打伤鼻子", "腿部骨折",
                                  "膝盖缝了五针"])
def test_injuries(text: str, rules: RoutingRules) -> None:
    assert "injury" in read(text, rules).signals


@pytest.mark.parametrize("text", ["养殖场病死猪随意丢弃", "鱼塘里的鱼大量死亡",
                                  "排放的废水导致鱼苗死亡", "父亲去世后留下两间老房子",
                                  "未造成人员死亡"])
def test_dead_animals_and_old_deaths_are_not_a_death(text: str, rules: RoutingRules) -> None:
    assert "death" not in read(text, rules).signals


@pytest.mark.parametrize("text", ["行人经抢救无效死亡", "一名工人当场身亡",
                                  "我父亲在火灾中去世，邻居拒绝赔偿"])
def test_a_persons_death(text: str, rules: RoutingRules) -> None:
    assert "death" in read(text, rules).signals


@pytest.mark.parametrize("text", ["独居老人", "四岁孩子在幼儿园", "残疾人王某", "未成年人",
                                  "七十八岁的母亲", "婆婆八十五了", "两岁的外孙"])
def test_vulnerable_parties(text: str, rules: RoutingRules) -> None:
    assert "vulnerable" in read(text, rules).signals


def test_an_adult_age_is_not_vulnerable(rules: RoutingRules) -> None:
    assert "vulnerable" not in read("二十五岁的女儿", rules).signals


@pytest.mark.parametrize("text", ["扬言要泼硫酸报复我", "说要找人打断我的腿", "称不给钱就跳下去",
                                  "扬言要把李家房子烧了", "喝农药", "要跟我同歸於盡", "不想活了",
                                  "带着汽油去指挥部", "拿出菜刀威胁"])
def test_threats_and_extreme_acts(text: str, rules: RoutingRules) -> None:
    assert "threat" in read(text, rules).signals


@pytest.mark.parametrize("text", ["商场打着跳楼价的旗号清仓", "报复性消费", "每天拼命工作",
                                  "扬言如果不处理就去北京上访"])
def test_words_that_only_look_like_threats(text: str, rules: RoutingRules) -> None:
    assert "threat" not in read(text, rules).signals


@pytest.mark.parametrize("text", ["准备联名去市里信访", "说再不解决就去县里上访"])
def test_petition_intent(text: str, rules: RoutingRules) -> None:
    assert "petition" in read(text, rules).signals


def test_collective_words_and_a_crowd_at_play(rules: RoutingRules) -> None:
    assert "collective" in read("村民准备联名反映", rules).signals
    assert "collective" not in read("有人聚集打牌", rules).signals


def test_lexicon_finds_overlapping_terms_of_different_lists() -> None:
    lexicon = Lexicon([WordList("collective", {"集体上访": 1}), WordList("petition", {"上访": 1})])
    hits = lexicon.find("村民集体上访")
    assert [h.term for h in hits["collective"]] == ["集体上访"]
    assert [h.term for h in hits["petition"]] == ["上访"]


def test_whole_words_need_a_word_boundary() -> None:
    lexicon = Lexicon([WordList("campus", {"学生": 3}, whole_words=frozenset({"学生"}))])
    assert "campus" in lexicon.find("学生在学校被欺负")
    assert "campus" not in lexicon.find("医学生实习期间")
    assert word_boundaries("学生") == frozenset({0, 2})
