"""Feed exports: where stored items go (files in four formats, stdout, PostgreSQL), behind one Sink interface.

See docs/feeds.md. :mod:`.spec` parses and checks feeds, :mod:`.formats` encodes items,
:mod:`.sink` holds the interface and the local sinks, :mod:`.postgres` the PostgreSQL sink.
"""

from .sink import FeedItem, Sink, make_sink
from .spec import FeedSpec, feeds_from_settings, make_spec

__all__ = ["FeedItem", "FeedSpec", "Sink", "feeds_from_settings", "make_sink", "make_spec"]
