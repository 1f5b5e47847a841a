"""The crawl loop, in the order a newcomer reads it: engine → scheduler (the store) → scraper (the page)."""

from .engine import Engine, EngineSnapshot
from .scheduler import Scheduler
from .scraper import Scraper

__all__ = ["Engine", "EngineSnapshot", "Scheduler", "Scraper"]
