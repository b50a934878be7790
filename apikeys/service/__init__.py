"""The service door: the JSON API other services call with a service token, under /v1/service/."""
