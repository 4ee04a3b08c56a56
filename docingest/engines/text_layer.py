"""The PDF text layer as an engine: words were read while rendering; this only wraps them."""

from __future__ import annotations

from docingest.schemas.records import PageInput, PageText, TextSource


class TextLayerEngine:
    name = "text_layer"
    source = TextSource.TEXT_LAYER
    needs_image = False

    def read(self, page: PageInput) -> PageText:
        return PageText(page=page.page, source=self.source, words=list(page.text_layer))
