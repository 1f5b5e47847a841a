# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): an XMLFeedSpider over an RSS 1.0 (RDF)
# feed, whose items are in a default namespace: the "xml" iterator with registered namespaces.
from scrapy.spiders import XMLFeedSpider


class RdfFeed(XMLFeedSpider):
    name = "rdf-feed"
    start_urls = ["http://www.aivy.co.jp/BLOG_TEST/kobakoba/index.rdf"]
    iterator = "xml"
    itertag = "rss:item"
    namespaces = [
        ("rss", "http://purl.org/rss/1.0/"),
        ("dc", "http://purl.org/dc/elements/1.1/"),
        ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ]

    def parse_node(self, response, node):
        return {
            "about": node.xpath("@rdf:about").get(),
            "title": node.xpath("rss:title/text()").get(),
            "date": node.xpath("dc:date/text()").get(),
            "subjects": node.xpath("dc:subject/text()").getall(),
        }

    def process_results(self, response, results):
        for item in results:
            item["feed"] = response.xpath("//rss:channel/rss:title/text()", namespaces=dict(self.namespaces)).get()
            yield item
