# Settings of the test project, in the shape `scrapy startproject` writes them (written for kubecrawl's
# tests). Scrapy reads the upper-case names; so does kubecrawl, as aliases of its own settings.
BOT_NAME = "quotesproject"

SPIDER_MODULES = ["quotesproject.spiders"]
NEWSPIDER_MODULE = "quotesproject.spiders"

ADDONS = {}

# Obey robots.txt rules
ROBOTSTXT_OBEY = True

# Concurrency and throttling settings
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0

ITEM_PIPELINES = {
    "quotesproject.pipelines.TagCountPipeline": 300,
}

LOG_LEVEL = "WARNING"

# Set settings whose default value is deprecated to a future-proof value
FEED_EXPORT_ENCODING = "utf-8"
