# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a CSVFeedSpider as Scrapy's docs show it.
from scrapy.spiders import CSVFeedSpider


class DebianReleases(CSVFeedSpider):
    name = "debian-releases"
    start_urls = ["https://debian.example/debian.csv"]
    delimiter = ","
    quotechar = '"'

    def parse_row(self, response, row):
        return {"codename": row["codename"], "version": row["version"], "eol": row["eol"], "row": row}
