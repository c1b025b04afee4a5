"""The workbench in a real browser: Debian's Chromium driven by Playwright, against the real
intake, router, mediation and workbench processes on the session's broker and database.

Selectors are by role and label, as a person (or a screen reader) finds things. Each screen
is saved as a screenshot under the test's output folder and scanned with axe-core (vendored
in tests/e2e/vendor): no serious or critical violation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.infra import AUTH, IN_CI, ROOT, Broker, free_port, service_processes

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
SECRET = "test-workbench-secret"
PASSWORD = "correct horse battery"
WAIT_MS = 45_000  # generous: a loaded 2-core machine

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev group brings it
    sync_playwright = None  # type: ignore[assignment]


def _no_browser(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


class Stack:
    def __init__(self, urls: dict[str, str], env: dict[str, str], shots: Path) -> None:
        self.urls = urls
        self.env = env
        self.shots = shots
        self.wb = urls["workbench"]

    def users(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kit.cli", "users", *args], cwd=ROOT,
                              env={**self.env, "FQ_NEW_PASSWORD": PASSWORD},
                              capture_output=True, text=True, timeout=120)

    def work_order(self, text: str, **extra: str) -> str:
        # Received now: the newest case, on the first page of 待办 whatever else the
        # session's database holds (mediation lists the newest first).
        order = {"order_no": f"WB-{uuid.uuid4().hex[:10]}", "content": text,
                 "received_at": datetime.now(UTC).isoformat(), "caller_phone": "13800138000",
                 "category": "邻里纠纷", **extra}
        r = httpx.post(self.urls["intake"] + "/v1/intake/hotline_12345", json=order,
                       headers=AUTH, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["case_id"])

    def case(self, case_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.urls['mediation']}/v1/cases/{case_id}", headers=AUTH, timeout=30)
        return dict(r.json()) if r.status_code == 200 else {}

    def until(self, case_id: str, ok: Callable[[dict[str, Any]], bool],
              within: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            case = self.case(case_id)
            if case and ok(case):
                return case
            time.sleep(0.3)
        raise AssertionError(f"case {case_id} not as expected within {within}s: "
                             f"{self.case(case_id)}")


def _wait_until_consuming(urls: dict[str, str], within: float = 120.0) -> None:
    """Ready is not yet consuming: each group must first join on the session's broker."""
    deadline = time.monotonic() + within
    waiting = {"router", "mediation"}
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            metrics = httpx.get(urls[name] + "/metrics", timeout=5).text
            if f'fq_consumer_lag_messages{{group="{name}"' in metrics:
                waiting.discard(name)
        time.sleep(0.3)
    assert not waiting, f"consumer groups without partitions after {within}s: {waiting}"


@pytest.fixture(scope="module")
def stack(broker: Broker, database_url: str, run_dir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if sync_playwright is None:
        _no_browser("playwright is not installed (uv sync --group dev)")
    if not os.access(CHROMIUM, os.X_OK):
        _no_browser(f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)")
    ports = {name: free_port() for name in ("intake", "router", "mediation", "workbench")}
    var = run_dir / "workbench-e2e"
    env = {"FQ_MEDIATION_URL": f"http://127.0.0.1:{ports['mediation']}",
           "FQ_INTAKE_URL": f"http://127.0.0.1:{ports['intake']}",
           "FQ_WORKBENCH_SECRET": SECRET, "FQ_WORKBENCH_REFRESH_SECONDS": "2"}
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=var, env=env, ready_within=180) as started:
        urls = {name: s.url for name, s in started.items()}
        _wait_until_consuming(urls)
        full_env = {**os.environ, **env, "FQ_VAR_DIR": str(var), "FQ_SERVICE": "workbench",
                    "FQ_DEV_API_KEY": AUTH["Authorization"].split()[1]}
        if not database_url.startswith("sqlite"):
            full_env["FQ_DATABASE_URL"] = database_url
        shots = tmp_path_factory.mktemp("workbench-screens")
        yield Stack(urls, full_env, shots)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, str]:
    made = {"zhang": ("admin", []), "li": ("handler", ["--department", "education"])}
    for username, (role, extra) in made.items():
        r = stack.users("create", username, "--role", role, "--name", f"{username}-staff",
                        *extra)
        assert r.returncode == 0, r.stderr
    listed = stack.users("list")
    assert '"username": "li"' in listed.stdout and "password_hash" not in listed.stdout
    return {u: role for u, (role, _) in made.items()}


def _page(browser: Browser) -> Page:
    # 1366×768: the office screen the workbench is laid out for. The CSP forbids inline
    # scripts, so the axe scan needs it bypassed in the test browser.
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                  bypass_csp=True, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def sign_in(page: Page, stack: Stack, username: str) -> None:
    page.goto(stack.wb + "/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="待办", level=1)).to_be_visible()


def screen(page: Page, stack: Stack, name: str) -> None:
    """Screenshot, then an axe scan: no serious or critical violation."""
    page.screenshot(path=str(stack.shots / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations {bad}"


def open_case(page: Page, stack: Stack, case_id: str, form: str) -> None:
    """The case page, once the step's form is offered (the router may still be at work)."""
    deadline = time.monotonic() + 90
    while True:
        page.goto(f"{stack.wb}/cases/{case_id}")
        if (page.get_by_role("form", name=form, exact=True).count()
                or time.monotonic() > deadline):
            break
        time.sleep(0.5)
    expect(page.get_by_role("form", name=form, exact=True)).to_be_visible()


def step(page: Page, name: str, fields: dict[str, str] | None = None) -> None:
    form = page.get_by_role("form", name=name, exact=True)
    for label, value in (fields or {}).items():
        control = form.get_by_label(label)
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(label=value)
        else:
            control.fill(value)
    form.get_by_role("button", name=f"确认{name}", exact=True).click()


def test_a_case_from_the_queue_to_the_archive(browser: Browser, stack: Stack,
                                              accounts: dict[str, str]) -> None:
    page = _page(browser)
    sign_in(page, stack, "zhang")
    case_id = stack.work_order("邻居因为占用停车位与我发生争执，还说要找人打断我的腿。")
    # The 待办 list refreshes itself (every 2 s here): the new case appears without a reload.
    expect(page.get_by_role("link", name=case_id)).to_be_visible(timeout=60_000)
    expect(page.get_by_role("list", name="各状态数量")).to_contain_text("件")
    screen(page, stack, "todo")

    stack.until(case_id, lambda c: c["status"] == "routed")
    open_case(page, stack, case_id, "受理")
    expect(page.get_by_text("司法所").first).to_be_visible()
    expect(page.get_by_role("heading", name="分派依据")).to_be_visible()
    screen(page, stack, "case")
    # A second tab holds the case as it is now, to act on it after the first tab has.
    stale = page.context.new_page()
    stale.goto(f"{stack.wb}/cases/{case_id}")

    step(page, "受理", {"调解员": "王调解员"})
    expect(page.get_by_role("status")).to_contain_text("已完成：受理")
    step(page, "开始调解")
    expect(page.get_by_role("status")).to_contain_text("已完成：开始调解")

    # Someone else's change first: the stale tab's step is refused with a clear message.
    step(stale, "受理")
    expect(stale.get_by_role("alert")).to_contain_text("此案件刚被他人更新")
    stale.close()

    # A step without the data it needs: the error is beside the field, nothing changes.
    step(page, "调解成功")
    form = page.get_by_role("form", name="调解成功", exact=True)
    expect(form.get_by_label("调解协议内容")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_text("必填").first).to_be_visible()
    screen(page, stack, "case-error")
    step(page, "调解成功", {"调解协议内容": "双方协商一致，车位按月轮流使用。",
                        "协议金额（元，无金额填0）": "0"})
    expect(page.get_by_role("status")).to_contain_text("已完成：调解成功")
    step(page, "办结")
    step(page, "回访", {"回访记录": "电话回访，双方已按协议履行。"})
    step(page, "满意度评价", {"满意度（1–5分）": "5分"})
    step(page, "归档")
    expect(page.get_by_role("status")).to_contain_text("已完成：归档")
    expect(page.locator("main")).to_contain_text("已归档（版本")

    case = stack.case(case_id)
    assert case["status"] == "archived" and case["satisfaction"] == 5
    assert [h["to_status"] for h in case["history"]][-7:] == [
        "accepted", "in_mediation", "resolved", "closed", "visited", "rated", "archived"]
    assert {h["actor"] for h in case["history"][2:]} == {"zhang-staff"}
    # Mediation's audit log names the person: each account acts with a key of its own.
    audit = httpx.get(stack.urls["mediation"] + "/v1/audit", headers=AUTH,
                      params={"case_id": case_id, "action": "transition"}, timeout=30).json()
    assert {e["key_name"] for e in audit["items"]} == {"workbench:zhang"}
    page.context.close()


def test_the_case_page_says_whose_limit_and_shows_progress_notes(
        browser: Browser, stack: Stack, accounts: dict[str, str]) -> None:
    """A 12345 order's 3-day deadline binds: the page says the limit is the order's; a
    progress note written through the API is in the history as 过程反馈."""
    page = _page(browser)
    sign_in(page, stack, "zhang")
    deadline = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    case_id = stack.work_order("邻居家空调外机噪音扰民，多次沟通无果。", deadline=deadline)
    stack.until(case_id, lambda c: c["status"] == "routed")
    noted = httpx.post(f"{stack.urls['mediation']}/v1/cases/{case_id}/progress-notes",
                       headers=AUTH, json={"note": "已约双方周三面谈", "actor": "王调解员"},
                       timeout=30)
    assert noted.status_code == 200, noted.text
    open_case(page, stack, case_id, "受理")
    limits = page.get_by_role("region", name="办理时限")
    expect(limits).to_contain_text("12345工单要求")
    history = page.get_by_role("region", name="办理记录")
    expect(history).to_contain_text("过程反馈")
    expect(history).to_contain_text("已约双方周三面谈")
    screen(page, stack, "case-hotline-limit")
    page.context.close()


def test_return_then_dispatch_by_hand(browser: Browser, stack: Stack,
                                      accounts: dict[str, str]) -> None:
    page = _page(browser)
    sign_in(page, stack, "zhang")
    case_id = stack.work_order("邻居家装修占用楼道堆放建材，多次沟通无果，双方发生口角。")
    first = stack.until(case_id, lambda c: c["status"] == "routed")
    open_case(page, stack, case_id, "退回")
    step(page, "退回", {"退回理由": "不属本部门职责"})
    expect(page.get_by_role("status")).to_contain_text("已完成：退回")
    # The router routes it again, elsewhere; a second return sends it to the dispatch queue.
    stack.until(case_id, lambda c: c["status"] == "routed"
                and c["routing_round"] > first["routing_round"])
    open_case(page, stack, case_id, "退回")
    step(page, "退回", {"退回理由": "仍不属本部门职责"})
    stack.until(case_id, lambda c: c["status"] == "awaiting_dispatch")

    page.get_by_role("link", name="分流").click()
    expect(page.get_by_role("heading", name="分流", level=1)).to_be_visible()
    expect(page.get_by_role("table", name="待人工分派").get_by_role("link", name=case_id)
           ).to_be_visible()
    screen(page, stack, "dispatch")
    page.get_by_role("link", name=case_id).first.click()
    form = page.get_by_role("form", name="人工分派")
    form.get_by_label("牵头部门").select_option(label="人民法院诉调对接")
    form.get_by_label("层级").select_option(label="县级")
    form.get_by_label("分派理由").fill("涉及诉前调解，交法院诉调对接")
    form.get_by_role("button", name="确认分派").click()
    expect(page.get_by_role("status")).to_contain_text("已完成：分派")
    case = stack.until(case_id, lambda c: c["status"] == "routed")
    assert (case["lead_department"], case["tier"]) == ("court", "county")
    page.context.close()


def test_walk_in_registration(browser: Browser, stack: Stack, accounts: dict[str, str]) -> None:
    page = _page(browser)
    sign_in(page, stack, "zhang")
    page.get_by_role("link", name="窗口登记").click()
    form = page.get_by_role("form", name="来访登记")
    form.get_by_role("button", name="登记").click()
    expect(page.get_by_role("alert")).to_contain_text("请补全")
    expect(page.get_by_label("诉求内容")).to_have_attribute("aria-invalid", "true")
    screen(page, stack, "walk-in")
    content = "来访人称公司拖欠三个月工资共计两万元，多次讨要未果。"
    page.get_by_label("诉求内容").fill(content)
    page.get_by_label("来访人姓名").fill("赵某")
    page.get_by_label("来访人电话").fill("13900139000")
    form = page.get_by_role("form", name="来访登记")
    sent = {name: form.locator(f"input[name={name}]").input_value()
            for name in ("csrf_token", "visit_id")}
    page.get_by_role("button", name="登记").click()
    expect(page.get_by_role("heading", name="登记完成")).to_be_visible()
    case_id = page.get_by_role("status").locator("strong").inner_text()
    # The same form sent again (a double click, a retry) registers nothing new, and says so.
    again = page.request.post(stack.wb + "/walk-in", form={
        **sent, "content": content, "visitor_name": "赵某", "visitor_phone": "13900139000"})
    assert again.status == 200 and "此次来访已登记过" in again.text() and case_id in again.text()
    case = stack.until(case_id, lambda c: c["status"] == "routed")
    assert case["channel"] == "walk_in"
    page.get_by_role("link", name="查看案件").click()
    expect(page.get_by_role("heading", name=f"案件 {case_id}")).to_be_visible()
    expect(page.get_by_text("来访人称公司拖欠")).to_be_visible()
    assert "13900139000" not in page.content()
    page.context.close()


def test_figures_draw_their_charts(browser: Browser, stack: Stack,
                                   accounts: dict[str, str]) -> None:
    page = _page(browser)
    sign_in(page, stack, "zhang")
    page.get_by_role("link", name="统计").click()
    for chart in ("按月各项比率折线图", "按牵头部门的各项比率柱状图", "按纠纷类别的各项比率柱状图",
                  "按层级的各项比率柱状图"):
        drawn = page.get_by_role("img", name=re.compile(chart))
        expect(drawn).to_have_attribute("data-drawn", "true")
        expect(drawn.locator("canvas").first).to_be_visible()
    expect(page.get_by_role("table", name="牵头部门")).to_contain_text("合计")
    screen(page, stack, "stats")
    with page.expect_download() as download:
        page.get_by_role("link", name="下载CSV（按部门）").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("牵头部门 department,受理量 received") and "合计 total" in text

    page.get_by_role("link", name="督办").click()
    expect(page.get_by_role("heading", name="督办", level=1)).to_be_visible()
    screen(page, stack, "supervision")
    page.context.close()


def test_another_department_neither_sees_nor_acts(browser: Browser, stack: Stack,
                                                  accounts: dict[str, str]) -> None:
    case_id = stack.work_order("邻居家的狗经常半夜狂叫，影响休息，沟通无果。")
    stack.until(case_id, lambda c: c["status"] == "routed"
                and c["lead_department"] != "education")
    page = _page(browser)
    sign_in(page, stack, "li")  # a handler of the education bureau
    expect(page.get_by_role("link", name=case_id)).to_have_count(0)
    page.goto(f"{stack.wb}/cases/{case_id}")
    expect(page.get_by_role("heading", name="未找到")).to_be_visible()
    # Nor by posting the form by hand, with a valid session and CSRF token.
    page.goto(stack.wb + "/todo")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{stack.wb}/cases/{case_id}/steps", form={
        "csrf_token": token or "", "to_status": "accepted", "expected_version": "2"})
    assert answer.status == 404
    assert stack.case(case_id)["status"] == "routed"
    # A handler has no dispatch queue.
    assert "分流" not in page.get_by_role("navigation", name="主导航").inner_text()
    page.context.close()


def test_csrf_and_session_expiry_are_refused(browser: Browser, stack: Stack,
                                             accounts: dict[str, str]) -> None:
    case_id = stack.work_order("楼上住户空调外机滴水到我家阳台，协商未果。")
    stack.until(case_id, lambda c: c["status"] == "routed")
    page = _page(browser)
    sign_in(page, stack, "zhang")
    for token in ("", "forged"):
        answer = page.request.post(f"{stack.wb}/cases/{case_id}/steps", form={
            "csrf_token": token, "to_status": "accepted", "expected_version": "2"})
        assert answer.status == 403 and "表单已失效" in answer.text()
    assert stack.case(case_id)["status"] == "routed"
    # Sign-in throttling: wrong passwords for one user, then even the right one waits.
    other = _page(browser)
    for _ in range(5):
        other.goto(stack.wb + "/login")
        other.get_by_label("用户名").fill("li")
        other.get_by_label("密码").fill("wrong password")
        other.get_by_role("button", name="登录").click()
        expect(other.get_by_role("alert")).to_contain_text("用户名或密码错误")
    other.get_by_label("用户名").fill("li")
    other.get_by_label("密码").fill(PASSWORD)
    other.get_by_role("button", name="登录").click()
    expect(other.get_by_role("alert")).to_contain_text("登录失败次数过多")
    other.context.close()

    # Idle too long: the session is gone and the next page asks to sign in again.
    _age_sessions(stack, "zhang", seconds=31 * 60)
    page.goto(stack.wb + "/todo")
    expect(page.get_by_role("heading", name="登录工作台")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("会话已超时")
    screen(page, stack, "login")
    # Signed out for good: the old cookie opens nothing.
    answer = page.request.get(stack.wb + "/todo", max_redirects=0)
    assert answer.status == 303 and answer.headers["location"].startswith("/login")
    page.context.close()


def test_disabled_account_is_signed_out_and_reset_enables_it(browser: Browser, stack: Stack,
                                                           accounts: dict[str, str]) -> None:
    made = stack.users("create", "wang", "--role", "leader", "--jurisdiction", "3306")
    assert made.returncode == 0, made.stderr
    page = _page(browser)
    sign_in(page, stack, "wang")
    assert "分流" not in page.get_by_role("navigation", name="主导航").inner_text()
    page.get_by_role("link", name="督办").click()
    expect(page.get_by_role("heading", name="督办", level=1)).to_be_visible()

    assert stack.users("disable", "wang").returncode == 0
    page.goto(stack.wb + "/todo")
    expect(page.get_by_role("heading", name="登录工作台")).to_be_visible()
    page.get_by_label("用户名").fill("wang")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("账号已停用")

    assert stack.users("reset-password", "wang").returncode == 0
    sign_in(page, stack, "wang")
    page.context.close()


def _age_sessions(stack: Stack, username: str, seconds: float) -> None:
    """Make the person's sessions look unused for `seconds`, as the clock would."""
    import asyncio

    from sqlalchemy import update

    from kit.db import create_engine
    from kit.settings import Settings
    from services.workbench.store import sessions

    settings = Settings(service="workbench", var_dir=Path(stack.env["FQ_VAR_DIR"]),
                        database_url=stack.env.get("FQ_DATABASE_URL"))

    async def go() -> None:
        engine = create_engine(settings.effective_database_url(), pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(update(sessions).where(sessions.c.username == username)
                                   .values(last_seen=sessions.c.last_seen - seconds))
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread: the database is reached from
    # another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def test_zz_screens_saved(stack: Stack) -> None:
    """Every screen was saved; the README's two come from here (docs/workbench-*.png)."""
    saved = {p.stem for p in stack.shots.glob("*.png")}
    assert {"todo", "case", "dispatch", "walk-in", "stats", "login"} <= saved, saved
    if os.environ.get("FQ_UPDATE_DOC_SCREENSHOTS"):
        for shot, doc in (("todo", "todo"), ("case-error", "case")):
            shutil.copy(stack.shots / f"{shot}.png", ROOT / "docs" / f"workbench-{doc}.png")


def test_the_case_screen_shows_parties_place_photos_and_reveals_a_number_with_a_reason(
        browser: Browser, stack: Stack, accounts: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    photos = ["https://grid.example.cn/photos/wb-1.jpg", "https://grid.example.cn/photos/wb-2.jpg"]
    report = {"report_id": f"WB-GRID-{tag}", "grid_code": "330699101201001",
              "description": "两户村民因宅基地边界争执，已发生推搡。", "event_type": "邻里纠纷",
              "reporter_name": "网格员陈明", "address": "枫桥镇枫源村3组",
              "location": {"lat": 29.71, "lon": 120.23}, "photos": photos,
              "parties": [{"name": "张三", "phone": "13912345678", "address": "枫源村3组12号"}]}
    r = httpx.post(stack.urls["intake"] + "/v1/intake/grid", json=report, headers=AUTH,
                   timeout=30)
    assert r.status_code == 202, r.text
    case_id = str(r.json()["case_id"])
    case = stack.until(case_id, lambda c: c["status"] == "routed")
    # A handler of the department that leads it: its own account, its own key.
    username = f"lead{tag}"
    made = stack.users("create", username, "--role", "handler", "--name", "周调解员",
                       "--department", case["lead_department"])
    assert made.returncode == 0, made.stderr

    page = _page(browser)
    sign_in(page, stack, username)
    page.goto(f"{stack.wb}/cases/{case_id}")
    people = page.get_by_role("table", name="反映人和当事人，号码已脱敏")
    expect(people).to_contain_text("张三")
    expect(people).to_contain_text("139****5678")
    expect(people).not_to_contain_text("13912345678")
    expect(people).to_contain_text("网格员陈明")
    expect(page.get_by_role("heading", name="地点与照片")).to_be_visible()
    expect(page.locator("main")).to_contain_text("北纬 29.71，东经 120.23")
    first = page.get_by_role("link", name="照片 1（网格平台，新窗口打开）")
    expect(first).to_have_attribute("href", photos[0])
    expect(page.get_by_role("link", name="照片 2（网格平台，新窗口打开）")).to_be_visible()
    source = page.get_by_role("heading", name="来源信息（网格上报）")
    expect(source).to_be_visible()
    expect(page.locator("main")).to_contain_text("事件类型")
    expect(page.locator("main")).to_contain_text(f"WB-GRID-{tag}")
    screen(page, stack, "case-report")

    # 显示号码 asks for a reason first: without one, the error is beside the field.
    reveal = page.get_by_role("form", name="显示号码", exact=True)
    reveal.get_by_role("button", name="显示号码").click()
    reveal = page.get_by_role("form", name="显示号码", exact=True)
    expect(reveal.get_by_label("查看理由")).to_have_attribute("aria-invalid", "true")
    expect(reveal).to_contain_text("请填写查看理由")
    expect(page.get_by_role("table", name="反映人和当事人，号码已脱敏")).not_to_contain_text(
        "13912345678")
    reveal.get_by_label("查看谁的号码").select_option(label="当事人 张三")
    reveal.get_by_label("查看理由").fill("电话通知双方到村调委会调解")
    reveal.get_by_role("button", name="显示号码").click()
    expect(page.get_by_role("status")).to_contain_text("号码已显示，本次查看已记录")
    expect(page.get_by_role("table", name="反映人和当事人，号码已脱敏")).to_contain_text(
        "13912345678")
    screen(page, stack, "case-revealed")
    # Shown once: the page opened again shows the mask.
    page.goto(f"{stack.wb}/cases/{case_id}")
    expect(page.get_by_role("table", name="反映人和当事人，号码已脱敏")).not_to_contain_text(
        "13912345678")

    log = httpx.get(stack.urls["intake"] + "/v1/intake/personal-data/reveals", headers=AUTH,
                    params={"case_id": case_id}, timeout=30).json()["items"]
    assert [(e["key_name"], e["person"], e["reason"], e["outcome"]) for e in log] == [
        (f"workbench:{username}", "parties.0", "电话通知双方到村调委会调解", "revealed")]
    page.context.close()


def test_a_cooperating_handler_sees_names_and_photos_but_no_reveal(
        browser: Browser, stack: Stack, accounts: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    report = {"report_id": f"WB-COOP-{tag}", "grid_code": "330699101201001",
              "description": "两户村民因宅基地边界争执，已发生推搡。", "event_type": "邻里纠纷",
              "photos": ["https://grid.example.cn/photos/coop.jpg"],
              "parties": [{"name": "李四", "phone": "13712345678"}]}
    r = httpx.post(stack.urls["intake"] + "/v1/intake/grid", json=report, headers=AUTH,
                   timeout=30)
    case_id = str(r.json()["case_id"])
    case = stack.until(case_id, lambda c: c["status"] == "routed")
    assert case["cooperating_departments"], "routed to one department: nothing to test"
    username = f"coop{tag}"
    made = stack.users("create", username, "--role", "handler", "--name", "吴民警",
                       "--department", case["cooperating_departments"][0])
    assert made.returncode == 0, made.stderr
    page = _page(browser)
    sign_in(page, stack, username)
    page.goto(f"{stack.wb}/cases/{case_id}")
    people = page.get_by_role("table", name="反映人和当事人，号码已脱敏")
    expect(people).to_contain_text("李四")
    expect(people).not_to_contain_text("137****5678")
    expect(page.locator("main")).to_contain_text("您所在部门为协办部门")
    expect(page.get_by_role("link", name="照片 1（网格平台，新窗口打开）")).to_be_visible()
    expect(page.get_by_role("form", name="显示号码")).to_have_count(0)
    page.context.close()


def test_supervision_lists_supervised_cases_by_department(browser: Browser, stack: Stack,
                                                          accounts: dict[str, str]) -> None:
    page = _page(browser)
    sign_in(page, stack, "zhang")
    page.goto(stack.wb + "/supervision")
    expect(page.get_by_role("heading", name="督办中的案件（按牵头部门）")).to_be_visible()
    supervised = httpx.get(stack.urls["mediation"] + "/v1/cases", headers=AUTH, timeout=30,
                           params={"supervised": "true", "limit": 200}).json()["items"]
    running = [c for c in supervised if c["status"] in (
        "routed", "accepted", "in_mediation", "returned", "awaiting_dispatch")]
    if running:
        expect(page.locator("main")).to_contain_text(running[0]["case_id"])
        expect(page.get_by_role("columnheader", name="督办级别").first).to_be_visible()
    else:
        expect(page.locator("main")).to_contain_text("没有督办中的案件。")
    screen(page, stack, "supervision-supervised")
    page.context.close()
