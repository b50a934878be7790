"""omikeys' one app: Omi Developer API keys, their scopes and their owners."""
