# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): an XMLFeedSpider as Scrapy's docs show it,
# reading an RSS 2.0 feed node by node (iternodes).
from scrapy.spiders import XMLFeedSpider


class RssFeed(XMLFeedSpider):
    name = "rss-feed"
    start_urls = ["http://blog.rss.naver.com/alphathinker.xml"]
    iterator = "iternodes"
    itertag = "item"

    def parse_node(self, response, node):
        yield {
            "title": node.xpath("title/text()").get(),
            "link": node.xpath("link/text()").get(),
            "category": node.xpath("category/text()").get(),
            "description": node.xpath("description/text()").get(),
        }
