"""omikeys management commands: createapikey, rotateapikey, revokeapikey, listapikeys."""
