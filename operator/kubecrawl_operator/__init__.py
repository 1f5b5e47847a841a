"""kubecrawl's Kubernetes operator: a Crawl resource becomes a running distributed crawl."""

__version__ = "0.1.0"
