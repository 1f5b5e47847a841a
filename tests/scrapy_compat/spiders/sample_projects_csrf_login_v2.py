# Source: https://github.com/scrapinghub/sample-projects/blob/beb1e3d2ea287c0abd7d90fd528dda39beb02959/quotes_crawler/quotes_crawler/spiders/toscrape-csrf-login-v2.py
# Licence: the repository scrapinghub/sample-projects (Scrapinghub's sample login spider) has no licence file; the spider is kept verbatim, as a
# test input only, to check that an unmodified real-world spider behaves the same under
# Scrapy and kubecrawl. Not part of kubecrawl's distribution.
# --- unchanged below this line ---
import scrapy


class ToScrapeCSRFLoginSpiderV2(scrapy.Spider):
    name = 'toscrape-csrf-login-v2'
    start_urls = [
        'http://quotes.toscrape.com/login'
    ]

    def parse(self, response):
        # FormRequest.from_response automatically loads all the form data that
        # is in the form present in the response object. This way, we don't
        # have to worry about explicitly loading the CSRF token in the data we
        # will POST to the server.
        yield scrapy.FormRequest.from_response(
            response,
            formdata={
                'username': 'any',
                'password': 'doesnt matter'
            },
            callback=self.after_login,
        )

    def after_login(self, response):
        authenticated = response.css('div.header-box p > a::text').extract_first() == 'Logout'
        for quote in response.css('div.quote'):
            yield {
                'text': quote.css('span::text').extract_first(),
                'author': quote.css('small::text').extract_first(),
                'tags': quote.css('.tags a::text').extract(),
                'authenticated': authenticated,
            }
