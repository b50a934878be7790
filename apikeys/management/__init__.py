"""Management commands for omikeys."""
