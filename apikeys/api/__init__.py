"""The JSON door: the Omi Developer API's key-management endpoints (Django REST framework)."""
