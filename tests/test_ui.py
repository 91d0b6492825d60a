"""The advisor dashboard end to end: real stack (model, feature store, gRPC servers), real
gateway over HTTP, the Gradio app, and a headless Chromium driving it like an advisor.

Screenshots go to tests/ui_artifacts/ (git-ignored); with UPDATE_DOCS_SCREENSHOT=1 the
decision view also refreshes the README's docs/dashboard.png.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import missing_service
from tests.stack import free_port
from tests.test_gateway_support import served, settings_for, write_keys

# Before gradio is first imported (lazily, in the ui fixture): it reads these at import.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    missing_service(
        "no system Chromium at /usr/bin/chromium (make test installs it)", module_level=True
    )

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "ui_artifacts"
DOCS_SCREENSHOT = REPO / "docs" / "dashboard.png"
USER, PASSWORD = "advisor", "test-password"
SECOND, SECOND_PASSWORD = "second-advisor", "another-password"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def gateway(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real gateway under uvicorn on a free port, in a thread of this process."""
    root = tmp_path_factory.mktemp("ui-gateway")
    keys = write_keys(root / "keys.json")
    settings = settings_for(root / "keys.json", f"sqlite:///{root / 'decisions.db'}",
                            stack.scoring_address, stack.explainer_address)  # fmt: skip
    with served(settings) as (url, _):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the gateway did not become ready")
        yield {"url": url, "key": keys["all"]}


@pytest.fixture(scope="module")
def ui(gateway: dict[str, str]) -> Iterator[str]:
    from services.ui.accounts import hash_password
    from services.ui.app import launch
    from services.ui.settings import UISettings

    # Strings are validated into SecretStr by pydantic, as they are from the environment.
    settings = UISettings(  # type: ignore[call-arg]
        port=free_port(), gateway_url=gateway["url"],
        gateway_api_key=gateway["key"],  # type: ignore[arg-type]
        # Hashed, as outside development mode they must be (services/ui/accounts.py).
        users=f"{USER}:{hash_password(PASSWORD)},{SECOND}:{hash_password(SECOND_PASSWORD)}",  # type: ignore[arg-type]
        neighbours=20,
    )  # fmt: skip
    demo = launch(settings, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{settings.port}"
    demo.close()


@pytest.fixture(scope="module")
def browser_page(ui: str) -> Iterator[tuple[Any, list[str]]]:
    """One signed-in page for the whole module; every request URL is recorded."""
    requests: list[str] = []
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                      locale="en-GB")  # fmt: skip
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(ui)
        page.get_by_label("username").fill(USER)
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.locator("#client-id").wait_for()
        yield page, requests
        context.close()
        browser.close()


def look_up(page: Any, client_id: int | str) -> None:
    box = page.locator("#client-id input, #client-id textarea").first
    box.fill(str(client_id))
    page.locator("#lookup").click()


def status_text(page: Any, pattern: str) -> str:
    status = page.locator("#status")
    status.get_by_text(re.compile(pattern)).wait_for()
    return str(status.inner_text())


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_sign_in_is_required(ui: str) -> None:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(ui)
        page.get_by_label("username").fill(USER)
        page.get_by_label("password").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text(re.compile("Incorrect", re.I)).wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#client-id").count() == 0
        browser.close()


def test_lookup_shows_decision_reasons_and_passes_axe(
    browser_page: tuple[Any, list[str]], stack: Any, gateway: dict[str, str]
) -> None:
    page, _ = browser_page
    client_id = stack.train_ids[0]
    look_up(page, client_id)
    status_text(page, f"Client {client_id} loaded")
    decision = page.locator("#decision").inner_text()
    # The decision in words (not only colour), the probability, the gap, the model version.
    assert re.search(r"(GRANTED|REFUSED)", decision), decision
    assert re.search(r"probability of default \d+\.\d%", decision), decision
    assert re.search(r"points (above|below|at) the threshold of \d+\.\d%", decision)
    assert "Model version" in decision
    reasons = page.locator("#reasons").inner_text()
    assert "Reasons that raise the risk" in reasons and "Reasons that lower the risk" in reasons
    assert re.search(r"which (raises|lowers) the risk", reasons), reasons
    page.locator("#gauge .js-plotly-plot").wait_for()
    page.locator("#waterfall .js-plotly-plot").wait_for()
    assert "threshold" in page.locator("#gauge-alt").inner_text()
    # The score shown is the gateway's own.
    score = httpx.get(f"{gateway['url']}/v1/clients/{client_id}/explanation",
                      headers={"X-API-Key": gateway["key"]}).json()  # fmt: skip
    assert f"{100 * score['probability']:.1f}%" in decision
    page.wait_for_timeout(500)  # plotly finishes its transitions
    shot(page, "01-decision.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # the README's picture, refreshed on demand
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=False)

    page.get_by_role("tab", name="Client information").click()
    profile = page.locator("#profile")
    profile.get_by_text("Annual income").wait_for()
    assert "AMT_INCOME_TOTAL" not in profile.inner_text()  # labels, not column codes
    shot(page, "02-profile.png")

    page.get_by_role("tab", name="Compared with others").click()
    page.locator("#distribution .js-plotly-plot").wait_for()
    page.locator("#scatter .js-plotly-plot").wait_for()
    page.locator("#neighbours").get_by_role("heading", name="Most similar clients").wait_for()
    shot(page, "03-compare.png")

    page.get_by_role("tab", name="Decision").click()
    assert_accessible(page)


def assert_accessible(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]})
    serious = [v for v in result.response["violations"] if v["impact"] in ("serious", "critical")]
    report = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + "; ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in serious
    )
    assert not serious, report


def test_what_if_rescoring_is_a_simulation(
    browser_page: tuple[Any, list[str]], stack: Any, gateway: dict[str, str]
) -> None:
    page, _ = browser_page
    headers = {"X-API-Key": gateway["key"]}
    before = httpx.get(f"{gateway['url']}/v1/decisions", params={"limit": 200},
                       headers=headers).json()  # fmt: skip
    page.get_by_role("tab", name="What-if simulation").click()
    sentence = page.get_by_text(re.compile(r"The simulated probability of default is"))
    # Unedited, the what-if re-sends the client's own application: the same score.
    page.locator("#simulate").click()
    page.locator("#sim-status").get_by_text("SIMULATION").wait_for()
    simulated, real = re.findall(r"(\d+\.\d)%", sentence.inner_text())[:2]
    assert simulated == real, sentence.inner_text()
    unedited = sentence.inner_text()

    income = page.locator("#whatif-income input")
    original = float(income.input_value())
    credit = page.locator("#whatif-credit input")
    credit.fill(str(round(float(credit.input_value()) * 3)))
    income.fill(str(round(original / 4)))
    page.locator("#simulate").click()
    playwright_sync.expect(sentence).not_to_have_text(unedited, timeout=TIMEOUT_MS)
    assert "SIMULATION" in page.locator("#sim-decision").inner_text()
    simulated, real = re.findall(r"(\d+\.\d)%", sentence.inner_text())[:2]
    assert simulated != real, sentence.inner_text()  # a quarter of the income, 3x the credit
    shot(page, "04-what-if.png")
    after = httpx.get(f"{gateway['url']}/v1/decisions", params={"limit": 200},
                      headers=headers).json()  # fmt: skip
    assert len(after) == len(before)  # nothing of a simulation is a real decision
    page.locator("#reset").click()
    page.locator("#sim-status").get_by_text("reset").wait_for()
    assert float(income.input_value()) == pytest.approx(original)


def test_unknown_client_and_bad_input_show_messages(browser_page: tuple[Any, list[str]]) -> None:
    page, _ = browser_page
    look_up(page, 999_999_999)
    text = status_text(page, "No client with number 999999999")
    assert "Traceback" not in page.content()
    assert "Check the number" in text
    look_up(page, "abc")
    status_text(page, "Enter a client number")
    shot(page, "05-unknown-client.png")


def test_recent_applications_and_language_switch(
    browser_page: tuple[Any, list[str]], stack: Any
) -> None:
    page, _ = browser_page
    client_id = stack.train_ids[1]
    look_up(page, client_id)
    status_text(page, f"Client {client_id} loaded")
    page.locator("#refresh").click()
    page.locator("#recent input").click()
    page.get_by_role("option", name=re.compile(rf"^{stack.train_ids[0]} ")).click()
    status_text(page, f"Client {stack.train_ids[0]} loaded")

    page.get_by_label("Français").check()
    page.get_by_role("tab", name="Décision").click()
    decision = page.locator("#decision")
    decision.get_by_text(re.compile("ACCORDÉ|REFUSÉ")).wait_for()
    assert "probabilité de défaut" in decision.inner_text()
    page.locator("#reasons").get_by_role("heading", name="Ce qui augmente le risque").wait_for()
    # Drawn while its tab was hidden, the waterfall must still fill its box once shown.
    page.wait_for_timeout(400)
    assert page.locator("#waterfall .main-svg").first.bounding_box()["width"] > 800
    shot(page, "06-francais.png")
    page.get_by_label("English").check()
    page.get_by_role("tab", name="Decision").click()
    page.locator("#decision").get_by_text(re.compile("GRANTED|REFUSED")).wait_for()


def test_every_request_stays_local_and_the_key_stays_server_side(
    browser_page: tuple[Any, list[str]], gateway: dict[str, str]
) -> None:
    page, requests = browser_page
    assert requests
    hosts = {urlparse(url).hostname for url in requests if not url.startswith("data:")}
    assert hosts <= LOCAL_HOSTS, hosts
    gateway_port = urlparse(gateway["url"]).port
    assert not [u for u in requests if urlparse(u).port == gateway_port]  # only the server
    assert gateway["key"] not in page.content()


def sign_in(context: Any, ui: str, user: str, password: str) -> Any:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(ui)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#client-id").wait_for()
    return page


def signed_in(page: Any, ui: str) -> bool:
    page.goto(ui)
    page.locator("#client-id, input[type=password]").first.wait_for()
    return bool(page.locator("#client-id").count() == 1)


def test_two_advisors_sign_in_and_out_independently(
    ui: str, stack: Any, gateway: dict[str, str], browser_page: tuple[Any, list[str]]
) -> None:
    """Two advisors, one of them in two browsers: signing out ends that browser's session
    only (server-side: its cookie no longer works), and each advisor's decisions are
    logged under the dashboard's key with the advisor's name."""
    # The module's browser (one Playwright per thread), in contexts of their own.
    browser = browser_page[0].context.browser
    contexts = [browser.new_context() for _ in range(4)]
    try:
        first, first_again, second, replay = contexts
        page_first = sign_in(first, ui, USER, PASSWORD)
        page_again = sign_in(first_again, ui, USER, PASSWORD)
        page_second = sign_in(second, ui, SECOND, SECOND_PASSWORD)

        client_id = stack.train_ids[7]
        look_up(page_second, client_id)
        status_text(page_second, f"Client {client_id} loaded")
        headers = {"X-API-Key": gateway["key"]}
        listed = httpx.get(
            f"{gateway['url']}/v1/decisions",
            params={"client_id": client_id, "limit": 1},
            headers=headers,
        ).json()
        record = httpx.get(f"{gateway['url']}/v1/decisions/{listed[0]['decision_id']}",
                           headers=headers).json()  # fmt: skip
        assert record["advisor"] == SECOND and record["key_id"] == "all"

        cookies = first.cookies()
        page_first.locator("a.sign-out").first.click()
        page_first.locator("input[type=password]").wait_for()
        assert not signed_in(page_first, ui)
        # The same advisor's other browser and the other advisor are still signed in.
        assert signed_in(page_again, ui) and signed_in(page_second, ui)
        # The signed-out session is over on the server, not just forgotten by the browser.
        replay.add_cookies(cookies)
        assert not signed_in(replay.new_page(), ui)
    finally:
        for context in contexts:
            context.close()
