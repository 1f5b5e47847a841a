# Define your item pipelines here; add them to ITEM_PIPELINES in settings.py
from itemadapter import ItemAdapter


class TagCountPipeline:
    def open_spider(self, spider):
        self.seen = 0

    def process_item(self, item, spider):
        adapter = ItemAdapter(item)
        if "tags" in adapter.field_names() or "tags" in adapter:
            adapter["tag_count"] = len(adapter.get("tags") or [])
        self.seen += 1
        return item
