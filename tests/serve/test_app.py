"""The web app in a real headless browser (Debian's chromium and chromedriver through selenium): upload a real
photo and see the right person first, open a person's page, remove a duplicate in Review and see it recorded, put
it back. Screenshots of the pages go to the test's temporary folder."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import require_data

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def app(tmp_path_factory, sface, detector):
    from lookalike.index.runner import IndexOptions, run_index

    lfw = require_data("lfw", "images")
    root = tmp_path_factory.mktemp("photos")
    for name, n in (("Tony_Blair", 4), ("Colin_Powell", 3), ("George_W_Bush", 3)):
        (root / name).mkdir()
        for f in sorted((lfw / name).glob("*.jpg"))[:n]:
            shutil.copy(f, root / name / f.name)
    shutil.copy(root / "Tony_Blair" / "Tony_Blair_0002.jpg", root / "Tony_Blair" / "Tony_Blair_0002 copy.jpg")
    ix = tmp_path_factory.mktemp("ix") / "family"
    run_index(root, ix, sface, detector, IndexOptions(workers=0))
    from lookalike.eval.server import start_server

    proc, url = start_server(ix, tmp_path_factory.mktemp("app-state"))
    yield url, ix, root
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_ask_browse_and_review_in_a_browser(app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, ix, _ = app
    wait = WebDriverWait(browser, 120)
    # Ask: upload a photo of Tony Blair that is not in the index
    browser.get(url + "/")
    query = require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0010.jpg")
    browser.find_element(By.ID, "photo").send_keys(str(query))
    browser.find_element(By.ID, "ask").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".answer .match")))
    first = browser.find_element(By.CSS_SELECTOR, ".answer .match .who").text
    assert first == "Tony_Blair"
    assert browser.find_elements(By.CSS_SELECTOR, ".answer .match img")  # the faces are shown
    browser.save_screenshot(str(tmp_path / "ask.png"))
    # the uploaded photo stays on the page; every match is in view at 1280 px (the row wraps, nothing scrolls)
    assert browser.find_element(By.CSS_SELECTOR, "#asked-photo img").get_attribute("src").startswith("data:image")
    width = browser.execute_script("return document.documentElement.clientWidth")
    matches = browser.find_elements(By.CSS_SELECTOR, ".answer .match")
    assert len(matches) == 10 and all(m.rect["x"] + m.rect["width"] <= width for m in matches)
    # the match links to a page of its photo with the face drawn, what the index holds, and a way back
    href = browser.find_element(By.CSS_SELECTOR, ".answer .match a").get_attribute("href")
    assert "/photo/" in href
    browser.get(href)
    assert browser.find_element(By.ID, "photo").get_attribute("naturalWidth") not in (None, "0")
    assert "Tony_Blair" in browser.find_element(By.TAG_NAME, "table").text and browser.find_element(By.ID, "back")

    # People: the labelled people, then one person's faces
    browser.get(url + "/people")
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".person a")]
    assert set(names) == {"Tony_Blair", "Colin_Powell", "George_W_Bush"}
    boxes = [e.rect for e in browser.find_elements(By.CSS_SELECTOR, ".person .score")]  # names never overlap
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or a["y"] + a["height"] <= b["y"]
            assert apart or b["y"] + b["height"] <= a["y"], (a, b)
    browser.find_element(By.LINK_TEXT, "Tony_Blair").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".card.face")))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card.face")) == 5  # 4 photos and the copy
    browser.save_screenshot(str(tmp_path / "person.png"))

    # Review: the copy is found; removing it is recorded; putting it back restores it
    browser.get(url + "/review")
    assert browser.find_elements(By.CSS_SELECTOR, ".pair")
    browser.find_element(By.CSS_SELECTOR, ".pair .remove").click()
    wait.until(ec.presence_of_element_located((By.ID, "message")))
    assert "removed 1 photo" in browser.find_element(By.ID, "message").text
    assert (ix / "removed.parquet").exists()
    browser.save_screenshot(str(tmp_path / "review.png"))
    browser.get(url + "/people/Tony_Blair")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card.face")) == 4  # the server sees the change
    browser.get(url + "/review")
    browser.find_element(By.ID, "restore").click()
    wait.until(ec.presence_of_element_located((By.ID, "message")))
    assert "put back 1 photos" in browser.find_element(By.ID, "message").text
    assert not (ix / "removed.parquet").exists()
    assert all((tmp_path / f"{p}.png").stat().st_size > 10_000 for p in ("ask", "person", "review"))


def test_a_bad_upload_is_said_on_the_page(app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = app
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    browser.get(url + "/")
    browser.find_element(By.ID, "photo").send_keys(str(bad))
    browser.find_element(By.ID, "ask").click()
    error = WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, "error")))
    assert "not a readable photo" in error.text
    browser.get(url + "/")  # still up
    assert browser.find_element(By.ID, "ask")


def test_a_page_on_another_site_cannot_remove_a_photo(app, browser, tmp_path):
    """A page served from another origin (here another port of this machine) auto-submits Review's form with the
    real pair: the browser sends it, the server refuses it, the index keeps the photo."""
    import http.server
    import threading
    from html import escape

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, ix, root = app
    keep, drop = root / "Tony_Blair" / "Tony_Blair_0002.jpg", root / "Tony_Blair" / "Tony_Blair_0002 copy.jpg"
    page = (f'<form id="f" method="post" action="{url}/review/remove">'
            f'<input name="keep" value="{escape(str(keep))}"><input name="drop" value="{escape(str(drop))}"></form>'
            '<script>document.getElementById("f").submit()</script>')  # fmt: skip
    (tmp_path / "evil.html").write_text(page)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{evil.server_address[1]}/evil.html")
        WebDriverWait(browser, 60).until(lambda b: "refused" in b.find_element(By.TAG_NAME, "body").text)
        assert "another site" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        evil.shutdown()
    assert not (ix / "removed.parquet").exists()
    browser.get(url + "/people/Tony_Blair")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card.face")) == 5  # the copy is still there


def test_people_renamed_merged_hidden_in_a_browser_survive_a_recluster(app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from lookalike.curate.cluster import cluster_index
    from lookalike.index.people import PEOPLE
    from lookalike.index.people_edits import EDITS

    url, ix, _ = app
    wait = WebDriverWait(browser, 60)
    try:
        browser.get(url + "/people/Colin_Powell")
        browser.find_element(By.ID, "rename-to").send_keys("General Powell")
        browser.find_element(By.ID, "rename").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "name"), "General Powell"))
        browser.get(url + "/people/George_W_Bush")
        Select(browser.find_element(By.ID, "merge-into")).select_by_visible_text("Tony_Blair")
        browser.find_element(By.ID, "merge").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "merged into Tony_Blair"))
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card.face")) == 5 + 3
        browser.get(url + "/people/General%20Powell")
        browser.find_element(By.ID, "hide").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "hidden"))
        cluster_index(ix)  # the grouping is made again (the server takes it up): the edits stay
        browser.get(url + "/people")
        names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".person a")]
        assert names == ["Tony_Blair"], names
        browser.find_element(By.ID, "show-hidden").click()
        names = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".person a")}
        assert names == {"Tony_Blair", "General Powell"}, names
        # a long name wraps inside its card: no two names overlap at 1280 px
        long = "Tony Blair, Prime Minister of the United Kingdom of Great Britain and Northern Ireland 1997-2007"
        browser.get(url + "/people/Tony_Blair")
        browser.find_element(By.ID, "rename-to").send_keys(long)
        browser.find_element(By.ID, "rename").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "name"), "Prime Minister"))
        browser.get(url + "/people?hidden=1")
        boxes = [e.rect for e in browser.find_elements(By.CSS_SELECTOR, ".person .score")]
        assert len(boxes) == 2
        a, b = boxes
        assert a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or a["y"] + a["height"] <= b["y"]
        browser.save_screenshot(str(tmp_path / "people.png"))
    finally:
        for name in (EDITS, PEOPLE):
            (ix / name).unlink(missing_ok=True)
