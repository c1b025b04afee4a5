"""Issue 19's threat and self-harm families, read by the rules alone (use_reader=False).

The sentences are new, not held-out set 5's: the families must hold beyond the reports that
prompted them."""

from __future__ import annotations

import pytest

from contracts.enums import Category, Risk
from services.router.domain import JurisdictionTree, RoutingRules, route_case

from .conftest import report

RED = [
    "他在村口说谁再来量地，就让谁横着回去",
    "对方叫了几个人堵在门口，说你们今天别想站着离开",
    "老板再不给钱，我们就让他工厂也出一条人命",
    "他喝了酒说碰见那个姓李的就给他几刀",
    "债主放话说以后见一次打一次",
    "他说我知道你女儿在哪个学校上学，你自己掂量",
    "我哥在微信上说下辈子不做你们的儿子了，现在人找不到",
    "她说要是我走了孩子就交给你们了，最近一直在哭",
    "工人拿美工刀抵住自己的喉咙要工资",
    "女儿的手腕上有好几道割痕，是她自己割的",
    "他把汽油都准备好了，说明天去拆迁办",
    "一名男子翻到天桥栏杆外侧，称不还钱就不下来",
    "他说再逼他就带着老婆孩子一起走",
    "看完电影回家他就扬言要砍死她",
    "听说有人扬言要放火烧了他家",
]

NOT_RED = [
    "电视剧里的男主角为了报仇杀了人，我妈看得直哭，但是她和我爸为了房子吵架的事想请人调解",
    "孩子天天玩游戏，游戏里打打杀杀的，跟我们顶嘴",
    "邻居家小孩拿着玩具刀对着我家孩子喊要砍死你，两家大人吵了起来",
    "这本小说写的是一个复仇杀人的故事，我的稿费出版社一直不给",
    "听工友说现在有人讨不到工资就去跳楼，我们只想走正规途径",
    "社区担心有人做傻事，请加强心理疏导",
]


def _risk(text: str, rules: RoutingRules, tree: JurisdictionTree) -> Risk:
    return route_case(report(text), rules, tree, use_reader=False).risk


@pytest.mark.parametrize("text", RED)
def test_said_without_the_usual_words_is_still_red(text: str, rules: RoutingRules,
                                                   tree: JurisdictionTree) -> None:
    assert _risk(text, rules, tree) == Risk.RED


@pytest.mark.parametrize("text", NOT_RED)
def test_fiction_and_someone_unnamed_are_not_red(text: str, rules: RoutingRules,
                                                 tree: JurisdictionTree) -> None:
    assert _risk(text, rules, tree) != Risk.RED


def test_the_callers_main_matter_decides_the_category(rules: RoutingRules,
                                                      tree: JurisdictionTree) -> None:
    text = ("来电人说儿子不孝顺、儿媳不回家、村里路灯坏了，最主要的是同村人借了他两万块钱，"
            "欠款一直不还")
    decision = route_case(report(text), rules, tree, use_reader=False)
    assert decision.category == Category.DEBT_FINANCE
