"""omikeys management commands: createapikey, revokeapikey, listapikeys."""
