"""Readers of other systems' key records, turning them into calls of the lifecycle (Omi's first: ``omi``)."""
