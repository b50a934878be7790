"""Test-only views protected the way another Django service protects its own: the two classes."""

from django.urls import include, path
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.api.authentication import ApiKeyAuthentication
from apikeys.api.permissions import HasScope


class MemoryList(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = ["memories:read"]

    def get(self, request):
        return Response({"uid": request.user.firebase_uid, "key_id": str(request.auth.pk)})


class Goals(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = {"GET": ["goals:read"], "POST": ["goals:read", "goals:write"]}

    def get(self, request):
        return Response({"goals": []})

    def post(self, request):
        return Response({"created": True}, status=201)


class EitherCredential(APIView):
    """A view that also lets signed-in sessions in: HasScope still insists on a key."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [HasScope]
    required_scopes = ["memories:read"]

    def get(self, request):
        return Response({})


class Misconfigured(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]

    def get(self, request):
        return Response({})


class HalfScoped(APIView):
    """Handles POST but names scopes only for GET: a configuration error, whoever asks."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = {"GET": ["goals:read"]}

    def get(self, request):
        return Response({})

    def post(self, request):
        return Response({}, status=201)


class Exports(APIView):
    """Names scopes for HEAD of its own, stricter than for GET."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = {"GET": ["memories:read"], "HEAD": ["memories:read", "conversations:read"]}

    def get(self, request):
        return Response({"exports": []})


urlpatterns = [
    path("v1/memories", MemoryList.as_view()),
    path("v1/goals", Goals.as_view()),
    path("v1/either", EitherCredential.as_view()),
    path("v1/misconfigured", Misconfigured.as_view()),
    path("v1/half-scoped", HalfScoped.as_view()),
    path("v1/exports", Exports.as_view()),
    path("", include("omikeys_project.urls")),
]
