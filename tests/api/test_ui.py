"""``GET /ui``, the planner's web page: the route (English, Chinese, an unknown language), then the
page itself in a real headless Chromium (selenium and chromedriver) against ``allocator serve``
on 127.0.0.1: a bad key and a bad upload show the API's own messages; sign in, submit the tiny
preset, watch it finish, open its report, download its workbook, upload a scenario and its
tables, compare the two plans, switch to Chinese. Screenshots go to ``screenshots/ui/``
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from typing import get_args

import pandas as pd
import pytest
import yaml
from openpyxl import load_workbook

from allocator.api import Settings
from allocator.api.routes import ui
from allocator.api.routes.ui import SCRIPT_WORDS
from allocator.api.schemas import Language
from allocator.inputs.scenario import scenario_from_dict
from allocator.report.i18n import LANGUAGES, translations
from allocator.targeting.pipeline import load_tables
from tests.api.test_api import service as service  # noqa: F401 (the fixture)
from tests.api.test_api_server import Server
from tests.support.api_support import TINY, preset_regions
from tests.support.tiny import write_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).parents[2] / "screenshots" / "ui"
WAIT = 60.0  # seconds any step of the page may take (a tiny solve takes a few)


def test_the_page_is_html_in_english_and_in_chinese(service):
    svc = service()
    english = svc.client.get("/ui")
    assert english.status_code == 200 and english.headers["content-type"].startswith("text/html")
    assert "<html lang=\"en\"" in english.text and "Sign in" in english.text and "Submit a scenario" in english.text
    assert "?lang=zh" in english.text and english.headers["cache-control"] == "no-store"
    policy = english.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in english.text and english.text.count("<script nonce=") == 1
    assert nonce not in svc.client.get("/ui").headers["content-security-policy"]  # a new one each time
    chinese = svc.client.get("/ui", params={"lang": "zh"})
    assert chinese.status_code == 200 and "<html lang=\"zh-CN\"" in chinese.text
    for words in ("登录", "提交情景", "本地区的规划", "比较两个规划", "已完成"):
        assert words in chinese.text, words
    assert "Sign in" not in chinese.text and "Submit a scenario" not in chinese.text
    assert "Authorization" not in svc.client.get("/ui").request.headers  # the page itself needs no key


def test_the_page_follows_the_services_language(service):
    assert "<html lang=\"zh-CN\"" in service(lang="zh").client.get("/ui").text


def test_an_unknown_language_is_a_422_like_the_apis(service):
    answer = service().client.get("/ui", params={"lang": "fr"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"] == "1 problem(s) in the input"
    assert body["issues"][0]["key"] == "query.lang" and "'en' or 'zh'" in body["issues"][0]["message"]


def test_every_word_of_the_page_is_in_the_chinese_catalogue(monkeypatch, tmp_path):
    assert get_args(Language) == LANGUAGES
    catalogue = translations("zh")
    asked: list[str] = []
    monkeypatch.setattr(ui, "tr", lambda text: asked.append(text) or catalogue.gettext(text))
    ui.page("zh", Settings(data_dir=tmp_path), nonce="n")
    assert set(SCRIPT_WORDS.values()) <= set(asked)
    missing = [text for text in asked if text and catalogue.gettext(text) == text]
    assert not missing, f"not in locale/zh/LC_MESSAGES/allocator.po: {missing}"


def test_the_report_and_workbook_routes_take_a_language(service):
    svc = service(lang="zh")  # ALLOCATOR_LANG=zh: the language when a request names none
    admin = svc.headers()
    plan_id = svc.client.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    chinese = svc.client.get(f"/v1/plans/{plan_id}/report", headers=admin)
    assert chinese.status_code == 200 and "<html lang='zh-CN'>" in chinese.text
    english = svc.client.get(f"/v1/plans/{plan_id}/report", params={"lang": "en"}, headers=admin)
    assert "<html lang='en'>" in english.text
    home = Path(svc.store.job(plan_id).input_dir).parent
    assert (home / "report.html").is_file() and (home / "report.zh.html").is_file()
    book = svc.client.get(f"/v1/plans/{plan_id}/export.xlsx", headers=admin)
    assert book.status_code == 200 and load_workbook(io.BytesIO(book.content), read_only=True).sheetnames
    assert (home / "plan.zh.xlsx").is_file() and not (home / "plan.xlsx").exists()
    for route in ("report", "export.xlsx"):
        refused = svc.client.get(f"/v1/plans/{plan_id}/{route}", params={"lang": "fr"}, headers=admin)
        assert refused.status_code == 422 and refused.json()["issues"][0]["key"] == "query.lang"


# --- the page in a real browser ---------------------------------------------------------------

@pytest.fixture
def browser(tmp_path):
    """Headless Chromium driven by chromedriver, downloads going to ``tmp_path/downloads``."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not both installed (.ci/run installs chromium and "
                    "chromium-driver where it can)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1800", "--lang=en"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


def preset_folder(folder: Path, money_scale: float) -> Path:
    """The tiny preset's tables as CSV files and a scenario.yaml naming them, its funds scaled by
    ``money_scale``: what a planner uploads."""
    tables = load_tables(scenario_from_dict(TINY, file="scenario.yaml", source=Path("scenario.yaml").resolve()))
    tables["funds"]["amount"] = tables["funds"]["amount"] * money_scale
    write_folder(tables, folder, start_year=TINY["start_year"], deadline_year=TINY["deadline_year"],
                 solver=TINY["solver"])
    scenario = yaml.safe_load((folder / "scenario.yaml").read_text())
    (folder / "scenario.yaml").write_text(yaml.safe_dump({**scenario, "name": folder.name}))
    return folder


def until(condition, what: str, timeout: float = WAIT):
    """``condition()``'s first truthy value, polled; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"after {timeout:g} s still waiting for {what}"
        time.sleep(0.1)


def shot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_a_planner_signs_in_submits_watches_reads_downloads_and_compares(live, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    admin = live.key()
    assert live.client.put("/v1/regions", json={"regions": preset_regions(TINY)}, headers=admin).status_code == 200
    region_key = live.key("F01")["Authorization"].removeprefix("Bearer ")
    base = str(live.client.base_url)
    find = browser.find_element

    def error_text() -> str:
        box = find(By.ID, "error")
        return box.text if box.is_displayed() else ""

    def click(element_id: str) -> None:
        find(By.ID, element_id).click()

    browser.get(f"{base}/ui")
    shot(browser, "01-sign-in")
    # a bad key: the API's 401 message, and the page stays signed out
    find(By.ID, "key").send_keys("alk_000000000000_not-a-key")
    find(By.CSS_SELECTOR, "#sign-in-form button").click()
    unauthorised = live.client.get("/v1/plans", headers={"Authorization": "Bearer alk_000000000000_not-a-key"})
    assert unauthorised.status_code == 401
    assert until(error_text, "the 401 message") == unauthorised.json()["detail"]
    assert not find(By.ID, "signed-in").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('allocator.key')") is None

    find(By.ID, "key").clear()
    find(By.ID, "key").send_keys(region_key)
    find(By.CSS_SELECTOR, "#sign-in-form button").click()
    until(lambda: find(By.ID, "signed-in").is_displayed(), "the signed-in page")
    assert not error_text() and find(By.ID, "no-plans").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('allocator.key')") == region_key
    assert browser.get_cookies() == []

    # a bad upload (a probability of 1.5): the API's 422 detail and every issue it names, where and what
    bad = preset_folder(tmp_path / "bad", money_scale=1.0)
    households = pd.read_csv(bad / "households.csv", dtype=str)
    households.loc[1, "baseline_exit_probability"] = "1.5"
    households.to_csv(bad / "households.csv", index=False)
    tables = sorted(bad.glob("*.csv"))
    expected = live.client.post("/v1/plans", headers={"Authorization": f"Bearer {region_key}"}, files=[
        ("scenario", ("scenario.yaml", (bad / "scenario.yaml").read_bytes())),
        *[("tables", (path.name, path.read_bytes())) for path in tables]])
    assert expected.status_code == 422, expected.text
    find(By.ID, "scenario-file").send_keys(str(bad / "scenario.yaml"))
    find(By.ID, "table-files").send_keys("\n".join(str(path) for path in tables))
    find(By.CSS_SELECTOR, "#upload-form button").click()
    shown = until(error_text, "the 422 message")
    assert shown.splitlines()[0] == expected.json()["detail"]
    for issue in expected.json()["issues"]:
        assert all(str(issue[part]) in shown for part in ("file", "row", "column", "message", "expected", "found"))
    assert "Traceback" not in shown
    shot(browser, "02-bad-upload")

    # the tiny preset (the form's defaults): submitted, watched until done
    find(By.CSS_SELECTOR, "#preset-form button").click()
    until(lambda: find(By.ID, "watch").get_attribute("data-status") in ("done", "failed", "cancelled"),
          "the preset's solve")
    assert find(By.ID, "watch").get_attribute("data-status") == "done", find(By.ID, "watch-status").text
    assert not error_text()
    plan_id = live.client.get("/v1/plans", headers=admin).json()["plans"][0]["plan_id"]
    summary = live.client.get(f"/v1/plans/{plan_id}/summary", headers=admin).json()
    row = until(lambda: find(By.CSS_SELECTOR, f"tr[data-plan='{plan_id}']"), "the plan's row")
    until(lambda: "Report" in row.text, "the plan's buttons")
    assert "Shuihua Prefecture (F01)" in row.text and "done (optimal)" in row.text
    assert f"{summary['expected_exits']:,.0f}" in row.text and f"{summary['total_cost']:,.0f}" in row.text
    shot(browser, "03-plans")

    # its report, in the page's language, shown in the page
    row.find_element(By.XPATH, ".//button[text()='Report']").click()
    until(lambda: find(By.ID, "report").is_displayed(), "the report")
    frame = find(By.ID, "report-frame")
    until(lambda: frame.get_attribute("src").startswith("blob:"), "the report's page")
    browser.switch_to.frame(frame)
    heading = until(lambda: browser.find_elements(By.TAG_NAME, "h1"), "the report's heading")[0].text
    assert heading == f"allocator plan: {summary['scenario']}"
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    charts = "return [...document.images].map(image => image.complete && image.naturalWidth > 0)"
    assert until(lambda: all(browser.execute_script(charts)) and browser.execute_script(charts),
                 "the report's charts, decoded under the page's security policy")
    browser.switch_to.default_content()
    shot(browser, "04-report-en")

    # its workbook, downloaded as the API serves it
    row.find_element(By.XPATH, ".//button[text()='Workbook']").click()
    workbook = browser.downloads / f"plan-{plan_id}.xlsx"
    until(workbook.is_file, "the downloaded workbook")
    served = live.client.get(f"/v1/plans/{plan_id}/export.xlsx", params={"lang": "en"}, headers=admin).content
    until(lambda: workbook.read_bytes() == served, "the whole workbook")
    assert "Summary" in load_workbook(workbook, read_only=True).sheetnames

    # an upload of the scenario YAML and its tables (the preset's own, with half the money), then
    # both plans side by side: B − A
    halved = preset_folder(tmp_path / "halved", money_scale=0.5)
    browser.execute_script("document.getElementById('upload-form').reset()")
    find(By.ID, "scenario-file").send_keys(str(halved / "scenario.yaml"))
    find(By.ID, "table-files").send_keys("\n".join(str(path) for path in sorted(halved.glob("*.csv"))))
    find(By.CSS_SELECTOR, "#upload-form button").click()
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#plan-table tbody tr")) == 2, "the upload's row")
    until(lambda: find(By.ID, "watch").get_attribute("data-status") == "done"
          and len(Select(find(By.ID, "plan-b")).options) == 2, "the uploaded plan")
    assert not error_text() and find(By.ID, "scenario-file").get_attribute("value") == ""  # the form is reset
    plans = live.client.get("/v1/plans", headers=admin).json()["plans"]
    assert plans[0]["scenario"] == "halved" and plans[0]["status"] == "done"
    a, b = (live.client.get(f"/v1/plans/{plan['plan_id']}/summary", headers=admin).json() for plan in plans[::-1])
    assert b["total_cost"] < a["total_cost"]
    Select(find(By.ID, "plan-a")).select_by_value(plans[1]["plan_id"])
    Select(find(By.ID, "plan-b")).select_by_value(plans[0]["plan_id"])
    find(By.CSS_SELECTOR, "#compare-form button").click()
    table = until(lambda: find(By.ID, "compare-table").is_displayed() and find(By.ID, "compare-table"),
                  "the comparison")
    exits = table.find_element(By.XPATH, ".//tr[th='Expected exits']").text
    change = round(b["expected_exits"] - a["expected_exits"])
    assert f"{a['expected_exits']:,.0f}" in exits and f"{b['expected_exits']:,.0f}" in exits
    assert exits.endswith(("+" if change > 0 else "−" if change < 0 else "") + f"{abs(change):,}")
    shot(browser, "05-compare")

    # in Chinese: the key stays in the tab, the page and the report change language
    find(By.CSS_SELECTOR, "#languages a[href='?lang=zh']").click()
    until(lambda: find(By.ID, "signed-in").is_displayed(), "the Chinese page, still signed in")
    assert find(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert "本地区的规划" in find(By.ID, "plans").text and "已完成" in find(By.ID, "plan-table").text
    row = until(lambda: find(By.CSS_SELECTOR, f"tr[data-plan='{plan_id}']"), "the plan's row")
    until(lambda: row.find_elements(By.XPATH, ".//button[text()='报告']"), "the plan's buttons")[0].click()
    frame = find(By.ID, "report-frame")
    until(lambda: find(By.ID, "report").is_displayed() and frame.get_attribute("src").startswith("blob:"),
          "the Chinese report")
    browser.switch_to.frame(frame)
    until(lambda: browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN", "the report in zh")
    browser.switch_to.default_content()
    shot(browser, "06-report-zh")

    click("sign-out")
    until(lambda: find(By.ID, "sign-in").is_displayed(), "the sign-in form after signing out")
    assert browser.execute_script("return sessionStorage.getItem('allocator.key')") is None
