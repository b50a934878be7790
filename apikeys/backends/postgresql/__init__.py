"""PostgreSQL through Django's own backend, with a connect breaker and a dead-connection check (see base)."""
