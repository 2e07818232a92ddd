r"""The web demo on a real file, in headless Chromium: serve an app-ready `.tflite` with
export.serve's server, type the first N texts of a labelled file into the page, compare the
page's top labels with kbert's LiteRT run on the same file (same truncation) and the gold
labels, and save a screenshot of the page with one classified text.

    scripts/run python scripts/web_demo_check.py \
        --tflite=runs/road/fortunes_student_dynamic_int8.tflite \
        --test_file=data/tasks/fortunes/test.jsonl --count=20 --screenshot=docs/web_demo.png

Needs Debian's chromium + chromium-driver and selenium (scripts/install.sh installs them).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
HEADLESS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=900,720"]


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in HEADLESS:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def classify_on_page(driver, text):
    """[(label, score)] the page shows for `text`, best first."""
    from selenium.webdriver.support.ui import WebDriverWait
    box = driver.find_element("id", "text")
    driver.execute_script("arguments[0].value = arguments[1]", box, text)
    driver.find_element("id", "classify").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element("id", "results").get_attribute("data-text") == text)
    return [(item.get_attribute("data-label"), float(item.get_attribute("data-score")))
            for item in driver.find_elements("css selector", "#labels li")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--test_file", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--screenshot", help="PNG of the page with --shown_text classified")
    parser.add_argument("--shown_text", help="default: the first test text")
    args = parser.parse_args()

    import numpy as np
    from selenium.webdriver.support.ui import WebDriverWait

    from export.serve import make_server
    from kbert.export import metadata
    from kbert.export.evaluation import tokenizer_from_metadata
    from kbert.export.labelled import read_labelled_file
    from kbert.export.runtime import LiteRTClassifier
    from kbert.export.verify import tflite_outputs

    texts, labels = read_labelled_file(args.test_file)
    texts, labels = texts[:args.count], labels[:args.count]
    server, url, info = make_server(args.tflite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = chromium()
    try:
        start = time.perf_counter()
        driver.get(url)
        WebDriverWait(driver, 120).until(
            lambda d: d.find_element("tag name", "body").get_attribute("data-state") != "loading")
        state = driver.find_element("tag name", "body").get_attribute("data-state")
        if state != "ready":
            print("web_demo_check: the page says:", driver.find_element("id", "error").text)
            return 1
        print(f"page ready in {time.perf_counter() - start:.2f} s: "
              f"{driver.find_element('id', 'model').text}")
        shown = [classify_on_page(driver, text) for text in texts]
        meta = metadata.read_tflite_metadata(args.tflite)
        kbert = tflite_outputs(LiteRTClassifier(args.tflite), tokenizer_from_metadata(meta),
                               texts, meta["max_seq_length"])["probabilities"]
        index = {label: i for i, label in enumerate(meta["labels"])}
        diffs = [max(abs(score - kbert[row, index[label]]) for label, score in found)
                 for row, found in enumerate(shown)]               # the page lists the top 5
        diff = max(diffs)
        page_top = [row[0][0] for row in shown]
        kbert_top = [meta["labels"][i] for i in np.argmax(kbert, -1)]
        agree = sum(a == b for a, b in zip(page_top, kbert_top))
        print(f"{len(texts)} texts: top-1 equal to kbert's LiteRT run on {agree}; "
              f"max |score diff| (shown labels) {diff:.2e}; page accuracy "
              f"{np.mean(np.array(page_top) == np.array(labels)):.3f}, kbert "
              f"{np.mean(np.array(kbert_top) == np.array(labels)):.3f}")
        print("  |score diff| per text:", " ".join(f"{d:.0e}" for d in diffs))
        for text, a, b in zip(texts, page_top, kbert_top):
            if a != b:
                print(f"  differs: page {a}, kbert {b}: {text[:70]!r}")
        if args.screenshot:
            classify_on_page(driver, args.shown_text or texts[0])
            driver.save_screenshot(args.screenshot)
            print(f"wrote {args.screenshot}")
        return 0 if agree == len(texts) else 1
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
