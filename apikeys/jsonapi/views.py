"""The base view of the JSON doors: 405 before credentials, no OPTIONS, never cached, one JSON-object check."""

from collections.abc import Mapping

from rest_framework.exceptions import MethodNotAllowed
from rest_framework.views import APIView

from .exceptions import RequestValidationError


class JSONAPIView(APIView):
    """The base of every JSON endpoint (the key API, the service API): no OPTIONS, one JSON-object check.

    Every answer, success or error, carries ``Cache-Control: no-store``: a key's metadata,
    and a new secret above all, must not be kept by a browser or a shared cache.
    """

    # No OPTIONS metadata: methods the API does not document answer 405,
    # and the Allow header lists only the documented ones.
    http_method_names = [method for method in APIView.http_method_names if method != "options"]

    def initial(self, request, *args, **kwargs):
        # A method the endpoint does not offer is 405 whoever asks: checked before the
        # credentials, so the answer does not depend on them (and no key check is counted).
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def json_object(request) -> Mapping:
        """The request's JSON body, which must be an object (an omitted body parses as an empty one)."""
        if not isinstance(request.data, Mapping):
            raise RequestValidationError.single(
                ["body"],
                "Input should be a valid dictionary or object to extract fields from.",
                "model_attributes_type",
            )
        return request.data
