"""Leak report views: parse the request, call the core, render the answer."""

import hashlib
import logging

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from .. import crypto, lifecycle, limits
from ..audit import client_ip
from ..jsonapi.exceptions import RequestValidationError, ServiceUnavailable, TooManyRequests
from ..jsonapi.parsing import loads_strict
from ..jsonapi.schema import ErrorResponseSerializer, HTTPValidationErrorSerializer
from ..jsonapi.views import JSONAPIView
from . import github
from .serializers import (
    GitHubFeedbackSerializer,
    LeakReportAcceptedSerializer,
    LeakReportRequestSerializer,
    read_github_match,
)

logger = logging.getLogger("apikeys.leaks")

TAGS = ["Leaks"]
MAX_MATCHES = 1000  # matches in one GitHub alert; GitHub batches far fewer
REPORT_ACCEPTED = (
    "Thank you. If this is an Omi API key that works, it is dealt with and its owner told within minutes. "
    "The answer is the same whatever the key."
)
VALIDATION = {422: OpenApiResponse(HTTPValidationErrorSerializer, description="The body is not what is documented.")}
TOO_LARGE = {413: OpenApiResponse(ErrorResponseSerializer, description="The request body is too large.")}


class NotSignedByGitHub(exceptions.APIException):
    """401: the request carries no valid GitHub signature; nothing was looked at or changed."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "not_signed"


class BodyTooLarge(exceptions.APIException):
    """413: a GitHub alert over ``OMIKEYS_LEAK_BODY_MAX_BYTES``."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        super().__init__(f"The request body must be at most {settings.OMIKEYS_LEAK_BODY_MAX_BYTES} bytes.")


class LeakView(JSONAPIView):
    """The leak endpoints' base: anyone may call them (GitHub's signature, or nothing, stands for credentials)."""

    authentication_classes = []
    permission_classes = [AllowAny]


def raw_body(request) -> bytes:
    """The request's bytes exactly as sent (the signature covers them), at most ``OMIKEYS_LEAK_BODY_MAX_BYTES``:
    a body declared or found longer is :class:`BodyTooLarge`. Read from the underlying request, whose own limit
    (``DATA_UPLOAD_MAX_MEMORY_SIZE``, for forms and the key API) is smaller than a large alert."""
    limit = settings.OMIKEYS_LEAK_BODY_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BodyTooLarge()
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge()
    return body


def parse_json(body: bytes):
    """The body as JSON (UTF-8; no NaN or Infinity; no field named twice), or a 422 ``json_invalid``."""
    try:
        return loads_strict(body)
    except ValueError as exc:
        raise RequestValidationError.single(["body"], f"JSON decode error: {exc}", "json_invalid") from None


class GitHubLeakView(LeakView):
    """``POST /v1/leaks/github``: GitHub's secret-scanning partner endpoint."""

    parser_classes = []

    @extend_schema(
        operation_id="reportLeaksGitHub",
        summary="GitHub Secret Scanning Alert",
        description=(
            "Called by GitHub's secret-scanning partner program with the omikeys keys it found in public "
            "(docs/leaks.md). The body is a JSON array of `{token, type, url, source}`, signed by GitHub: "
            "`Github-Public-Key-Identifier` names one of GitHub's published keys, `Github-Public-Key-Signature` "
            "is the base64 DER ECDSA (P-256, SHA-256) signature of the raw body. Each live key is revoked (or, "
            "with `OMIKEYS_LEAK_ACTION=notify`, only reported) and its owner mailed; the answer is GitHub's "
            "feedback format, one entry a match. An alert sent again changes nothing more."
        ),
        tags=TAGS,
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        parameters=[
            OpenApiParameter("Github-Public-Key-Identifier", str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("Github-Public-Key-Signature", str, OpenApiParameter.HEADER, required=True),
        ],
        responses={
            200: GitHubFeedbackSerializer(many=True),
            401: OpenApiResponse(
                ErrorResponseSerializer, description="Not signed by GitHub: nothing was looked at or changed."
            ),
            **TOO_LARGE,
            **VALIDATION,
            503: OpenApiResponse(
                ErrorResponseSerializer, description="GitHub's public keys or the database could not be reached."
            ),
        },
    )
    def post(self, request):
        body = raw_body(request)
        try:
            github.verify(
                body,
                request.headers.get("Github-Public-Key-Identifier"),
                request.headers.get("Github-Public-Key-Signature"),
            )
        except github.SignatureRefused as exc:
            logger.warning("GitHub leak alert refused: %s", exc)
            raise NotSignedByGitHub(str(exc)) from None
        except github.KeysUnavailable as exc:
            logger.warning("GitHub leak alert not checked: %s", exc)
            raise ServiceUnavailable("GitHub's public keys could not be fetched. Try again shortly.") from None
        data = parse_json(body)
        if not isinstance(data, list):
            raise RequestValidationError.single(["body"], "Input should be a valid list.", "list_type")
        if len(data) > MAX_MATCHES:
            raise RequestValidationError.single(["body"], f"List should have at most {MAX_MATCHES} items.", "too_long")
        feedback = []
        for entry in data:
            match = read_github_match(entry)
            genuine = False
            if match.usable:
                genuine = lifecycle.handle_leaked_token(match.token, source="github", url=match.url).genuine
            feedback.append(
                {
                    "token_hash": hashlib.sha256(match.token.encode("utf-8", "surrogatepass")).hexdigest(),
                    "token_type": match.type,
                    "label": "true_positive" if genuine else "false_positive",
                }
            )
        logger.info(
            "GitHub leak alert: %s matches, %s of omikeys keys",
            len(feedback),
            sum(entry["label"] == "true_positive" for entry in feedback),
        )
        return Response(feedback)


class LeakReportView(LeakView):
    """``POST /v1/leaks/report``: anyone reports a key they found; the answer never says whether it was valid."""

    @extend_schema(
        operation_id="reportLeak",
        summary="Report a Leaked Key",
        description=(
            "Report an Omi API key found in public. No credentials. The answer is 202 with the same body whatever "
            "the key (valid, revoked, unknown or not a key at all), and the key is looked at later by the worker, "
            "so the answer's timing says nothing either. A working key is then revoked (or, with "
            "`OMIKEYS_LEAK_ACTION=notify`, only reported) and its owner mailed. Throttled per address "
            "(`OMIKEYS_LEAK_REPORT_RATE`) and in all (`OMIKEYS_LEAK_REPORT_TOTAL_RATE`)."
        ),
        tags=TAGS,
        request=LeakReportRequestSerializer,
        responses={
            202: LeakReportAcceptedSerializer,
            **TOO_LARGE,
            **VALIDATION,
            429: OpenApiResponse(
                ErrorResponseSerializer, description="Too many reports from this address, or from all together."
            ),
            503: OpenApiResponse(ErrorResponseSerializer, description="The report could not be queued."),
        },
    )
    def post(self, request):
        refusal = limits.count_leak_report(client_ip(request))
        if refusal is not None:
            raise TooManyRequests(refusal.wait, refusal.message)
        serializer = LeakReportRequestSerializer(data=self.json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = data["key"]
        # A key that is not well formed is not queued: its checksum (or shape) is public, so the same 202
        # for it tells nothing anyone could not tell alone.
        if not crypto.is_well_formed(key):
            return Response({"detail": REPORT_ACCEPTED}, status=status.HTTP_202_ACCEPTED)
        refusal = limits.count_queued_leak_report()
        if refusal is not None:
            raise TooManyRequests(refusal.wait, refusal.message)
        # Only the key's hashes travel, and the URL and note without any secret in them (the queue is a table).
        hashed, legacy_hashed = crypto.candidate_hashes(key)
        url, note = lifecycle.without_secrets(data["url"], data["note"])
        from django_q.tasks import async_task

        try:
            async_task(
                "apikeys.tasks.handle_leak_report",
                hashed,
                legacy_hashed,
                True,  # well formed (the task's signature keeps the flag for tasks queued before)
                url,
                note,
                task_name="leak report",
            )
        except Exception:  # the queue is the database (or its broker): whatever it raises, answer 503
            logger.exception("a leak report could not be queued")
            raise ServiceUnavailable("The report could not be taken now. Try again shortly.") from None
        return Response({"detail": REPORT_ACCEPTED}, status=status.HTTP_202_ACCEPTED)
