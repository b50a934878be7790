"""What the JSON doors (api/, service/) share: exceptions, the base view, strict bodies, OpenAPI pieces."""
