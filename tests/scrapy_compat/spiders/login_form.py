# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. (Third-party spiders were run this way during development but are not kept in the repo.)
import scrapy


class LoginForm(scrapy.Spider):
    """Logs in through the page's form (hidden CSRF token carried by from_response), then reads quotes."""

    name = "login-form"
    start_urls = ["http://quotes.toscrape.com/login"]

    def parse(self, response):
        yield scrapy.FormRequest.from_response(
            response,
            formdata={"username": "someone", "password": "secret"},
            callback=self.logged_in,
        )

    def logged_in(self, response):
        logged = response.css("div.header-box p > a::text").get() == "Logout"
        for block in response.css("div.quote"):
            yield {
                "text": block.css("span::text").get(),
                "author": block.css("small::text").get(),
                "tags": block.css(".tags a::text").getall(),
                "authenticated": logged,
            }
