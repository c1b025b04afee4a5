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


# --- threats said as an intent, and what only looks like one -------------------------------

@pytest.mark.parametrize("text", [
    "他扬言要砍死对方全家", "说再不给钱就去把他家房子点了", "要是敢强拆就拿汽油把自己点了",
    "扬言要捅他几刀", "他说大不了跟他们拼了", "扬言要从楼顶跳下来", "声称要死在镇政府门口",
    "放话要让他全家不得安宁", "要一把火烧了他的店", "他要把煤气罐点了", "跟她鱼死网破",
    "扬言要让司机一命抵一命", "挥舞着菜刀", "拿出一把柴刀", "把那几个学生腿打断",
    "带了一桶汽油到老板家门口", "活着真没意思,想一了百了", "喊着不给钱就跳。", "扬言要干掉他",
    "手持一瓶农药称不给钱就喝下去", "说活着就是拖累家人", "扬言要找当年的人报仇",
    "就把他家的狗和人一起收拾了", "爬上在建楼盘的塔吊讨薪", "今晚就要去死",
    "带着一把菜刀去了老板家", "扬言再不让妻子回来就要对岳父一家动手",
])
def test_threats_said_in_many_ways(text: str, rules: RoutingRules) -> None:
    assert "threat" in read(text, rules).signals


@pytest.mark.parametrize("text", [
    "邻居说要把那棵树砍了", "扬言要砍他家的树", "景区就是宰人", "要求天然气公司尽快开通",
    "孩子从滑梯上跳下来摔伤", "每天晚上跳广场舞", "他说打死也不搬", "在刀具店买了一把菜刀",
    "买了一瓶农药效果不好", "井盖缺失迟早要出人命", "扬言要去北京上访", "威胁要去媒体曝光",
    "工厂晚上就把废料烧了", "他不会去砍人的", "游戏里全是打打杀杀", "说要把鸡全毒死",
    "社区开展防轻生讲座", "宣传海报上的心理援助热线提醒家属防范轻生", "差点就撞死人了",
    "要按时把中药喝下去", "老师要教训他几句", "一口气干掉一瓶啤酒", "绳子没检查就让他跳",
    "我不会对他动手的", "说要对老房子动手改造",
    "他气话说要把我的衣服都烧了", "上山砍柴", "跳槽到别的公司", "手机老是死机", "气死我了",
])
def test_what_only_looks_like_a_threat(text: str, rules: RoutingRules) -> None:
    assert "threat" not in read(text, rules).signals


def test_what_a_threat_says_is_not_what_happened(rules: RoutingRules) -> None:
    reading = read("他说如果她敢回娘家,他就开车撞死她全家", rules)
    assert "threat" in reading.signals
    assert "death" not in reading.signals               # threatened, not done
    assert "traffic_accident" not in reading.category_hits


@pytest.mark.parametrize(("text", "signal", "found"), [
    ("撞死了一只狗", "death", False), ("其丈夫于2020年因病去世", "death", False),
    ("老伴前年去世了", "death", False), ("电动车上的一对母子一死一伤", "death", True),
    ("怕有人摔伤", "injury", False), ("幸好没受伤", "injury", False),
    ("被机器轧伤右手,两根手指截肢", "injury", True), ("手肘擦破皮", "injury", True),
    ("游客二十余人均未受伤", "injury", False), ("老人头皮鞋开胶了", "vulnerable", False),
    ("我现在怀孕五个月", "vulnerable", True), ("家里小孩一闻就咳嗽", "vulnerable", True),
])
def test_signals_in_context(text: str, signal: str, found: bool, rules: RoutingRules) -> None:
    assert (signal in read(text, rules).signals) is found


def test_a_year_of_birth_is_an_age_when_the_year_of_the_report_is_known(
        rules: RoutingRules) -> None:
    text = "信访人李某某,女,1958年出生,系某村村民"
    assert "vulnerable" in read(text, rules, year=2026).signals
    assert "vulnerable" not in read(text, rules).signals
    assert read_quantities("1990年出生,", year=2026).ages == [36]


@pytest.mark.parametrize(("text", "people"), [
    ("站点的五六个快递员工资没结", 5), ("我们十几个工友商量", 11), ("二三十名村民", 20),
    ("近百名村民联名", 100), ("一百多户居民", 100),
])
def test_head_counts_with_any_people_noun(text: str, people: int, rules: RoutingRules) -> None:
    assert read_quantities(normalise(text), rules.text.people_nouns).largest_head_count == people


@pytest.mark.parametrize("text", ["干了五个月的活", "车上游客二十余人均未受伤", "事故造成3人受伤"])
def test_counts_that_are_no_side_of_a_dispute(text: str, rules: RoutingRules) -> None:
    assert read_quantities(normalise(text), rules.text.people_nouns).head_counts == []


def test_a_term_inside_a_longer_term_of_another_category_is_part_of_that_word(
        rules: RoutingRules) -> None:
    from services.router.domain.category import _scores

    scores = _scores(read("物业公司把小区绿化带改成了收费停车位", rules))
    assert "labor" not in scores                        # 公司 is part of 物业公司
    assert "property_management" in scores


def test_the_pattern_scan_finds_what_each_list_alone_finds(rules: RoutingRules) -> None:
    # The Lexicon scans once for every list's patterns, behind a look-ahead for their first
    # characters; it must find what each list's own alternation finds.
    import re

    lists = {f"category:{c.value}": [p.regex for p in terms.patterns]
             for c, terms in rules.document.categories.items()}
    lists |= {f"signal:{name}": list(signal.patterns)
              for name, signal in rules.document.signals.items()}
    texts = ["欠我三万块钱不还", "扬言要砍死他,说不给就跳下去", "手臂被划伤,缝了五针", "婆婆八十五了",
             "向我借了两万", "干了三个多月", "村民集体到镇政府", "一对母子一死一伤"]
    for name, patterns in lists.items():
        if not patterns:
            continue
        alone = re.compile("|".join(f"(?:{p})" for p in patterns))
        for text in texts:
            own = {(m.start(), m.end()) for m in alone.finditer(text)}
            found = {(h.start, h.end) for h in rules.lexicon.find(text).get(name, [])
                     if not h.literal}
            assert own <= found, (name, text)
