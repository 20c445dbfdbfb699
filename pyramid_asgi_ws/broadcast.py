"""Groups and broadcast backends (placeholder until the broadcast work lands)."""


def includeme(config):
    """Register the broadcaster (not yet implemented)."""
