# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. Its project's downloader middleware (proxy_middlewares.py) rotates proxies.
import scrapy


class ProxyRotation(scrapy.Spider):
    """The quotes pager, every request through a proxy picked by the project's middleware."""

    name = "proxy-rotation"
    start_urls = ["http://quotes.toscrape.com/"]
    proxy_pool = ""
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES": {
            "proxy_middlewares.RandomProxyMiddleware": 610,
            "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
        },
        "RETRY_TIMES": 1,
    }

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield {
                "text": quote.css("span.text::text").get(),
                "author": quote.css("small.author::text").get(),
                "via": response.headers.get("Via", b"").decode(),
            }
        next_page = response.css("li.next a::attr(href)").get()
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse)
