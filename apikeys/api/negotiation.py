"""Content negotiation: the API always answers JSON, whatever the Accept header says."""

from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Pick the parser by Content-Type as usual, but never refuse a request over Accept.

    Omi's own API (FastAPI) answers JSON to every client, including browsers that
    send ``Accept: text/html``; a 406 there would only break clients.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
