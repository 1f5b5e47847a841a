# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a project's middlewares.py in the shape
# published proxy-rotation middlewares have (the pool's proxies in turn through meta['proxy']; a
# proxy that fails is dropped from the pool and the request retried through another one).
from scrapy import signals


class RandomProxyMiddleware:
    def __init__(self):
        self.proxies = []
        self.turn = 0
        self.failed = 0

    @classmethod
    def from_crawler(cls, crawler):
        mw = cls()
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        return mw

    def spider_opened(self, spider):
        self.proxies = [p for p in getattr(spider, "proxy_pool", "").split(",") if p]
        spider.logger.info("rotating over %d proxies", len(self.proxies))

    def process_request(self, request, spider):
        if self.proxies and "proxy" not in request.meta:
            request.meta["proxy"] = self.proxies[self.turn % len(self.proxies)]
            self.turn += 1

    def process_exception(self, request, exception, spider):
        proxy = request.meta.get("proxy")
        if proxy not in self.proxies or len(self.proxies) < 2:
            return None
        self.proxies.remove(proxy)
        self.failed += 1
        spider.logger.info("proxy %s failed (%r): %d left", proxy, exception, len(self.proxies))
        retry = request.replace(dont_filter=True)
        retry.meta.pop("proxy", None)
        return retry
