"""Bots by their user agent: crawlers, headless browsers, monitoring tools and HTTP libraries.

The patterns are CrawlerDetect's (the crawlerdetect package), a list kept up to date upstream,
rather than one of ours. Only a visitor's user agent is judged: a browser's own, or the
`client_user_agent` a server passes for its visitor, never the HTTP client a server sends with.
"""

import functools

from crawlerdetect import CrawlerDetect

BOT_REASON = "bot"  # the `dropped` reason of a bot's event: counted per pixel (TotalsItem.events_bots)
# Only the start of a user agent is judged: CrawlerDetect's patterns take time quadratic in the
# length (about 20 ms at 512 characters, 1 s at 4,096), and real user agents, bots' included, name
# themselves well within it.
MAX_JUDGED_LENGTH = 512


@functools.cache
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


def is_bot(user_agent: str | None) -> bool:
    """True for a known crawler, headless browser, monitor or HTTP library; an absent or empty user
    agent is no judgement (a server that gives none for its visitor must keep working)."""
    if not user_agent or not user_agent.strip():
        return False
    return bool(_detector().isCrawler(user_agent[:MAX_JUDGED_LENGTH]))
