# Define here the models for your scraped items
import scrapy


class QuoteItem(scrapy.Item):
    text = scrapy.Field()
    author = scrapy.Field()
    tags = scrapy.Field()
    tag_count = scrapy.Field()
