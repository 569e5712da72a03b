"""Bots are recognised by a maintained list (crawlerdetect), judged on the visitor's user agent only."""

import pytest

from pixel_core.bots import is_bot

# Real user agents, as the crawlers and tools send them.
CRAWLERS = {
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "googlebot-smartphone": (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.199 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ),
    "bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "headless-chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 "
        "Safari/537.36"
    ),
    "curl": "curl/8.5.0",
    "python-requests": "python-requests/2.31.0",
    "uptime-robot": "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "ahrefs": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
}
BROWSERS = {
    "chrome-windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36"
    ),
    "safari-iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1"
    ),
    "firefox-linux": "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 Edg/120.0.2210.91"
    ),
    "samsung-android": (
        "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
    ),
    "safari-mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
        "Safari/605.1.15"
    ),
}


@pytest.mark.parametrize("user_agent", CRAWLERS.values(), ids=CRAWLERS.keys())
def test_every_crawler_headless_browser_and_http_library_is_a_bot(user_agent):
    assert is_bot(user_agent)


@pytest.mark.parametrize("user_agent", BROWSERS.values(), ids=BROWSERS.keys())
def test_no_real_browser_is_a_bot(user_agent):
    assert not is_bot(user_agent)


@pytest.mark.parametrize("user_agent", [None, "", "   "], ids=["none", "empty", "blank"])
def test_no_user_agent_is_no_judgement(user_agent):
    assert not is_bot(user_agent)


def test_hostile_user_agents_are_judged_on_their_start_without_error():
    # (the patterns' cost grows with the square of the length: only the first 512 characters count)
    assert not is_bot("A" * 100_000)
    assert is_bot("curl/8.5.0 " + "A" * 100_000)
    assert isinstance(is_bot("Mozilla/5.0 \x00\u202e (compatible) " * 50), bool)
