# Source: https://github.com/tkcoding/FootballScraper/blob/35d39bc4ae5da0dacdb101a0ca985de116376f54/testing_spider.py
# Licence: the repository tkcoding/FootballScraper has no licence file; the spider is kept verbatim, as a
# test input only, to check that an unmodified real-world spider behaves the same under
# Scrapy and kubecrawl. Not part of kubecrawl's distribution.
# --- unchanged below this line ---

import requests
from scrapy.selector import Selector
from scrapy import Request
from urllib.parse import urljoin
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule

import time
import requests
class SuperSpider(CrawlSpider):
    name = 'spider'
    allowed_domains = ['quotes.toscrape.com']
    start_urls = ['http://quotes.toscrape.com/']
    base_url = 'http://quotes.toscrape.com'
    rules = [Rule(callback='parse_func', follow=True)]
 
    def parse_func(self, response):
        for quote in response.css('div.quote'):
            yield {
                'Author': quote.xpath('.//span/a/@href').extract_first(),
                'Quote': quote.xpath('.//span[@class= "text"]/text()').get(),
            }