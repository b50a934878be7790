"""Django database backends with bounded waits and a circuit breaker on connecting."""
