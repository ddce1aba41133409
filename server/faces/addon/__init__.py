"""The Gmail add-on's backend: ``/addon/v1/*`` answers the add-on's triggers and clicks with cards."""

from server.faces.addon.views import bp

__all__ = ["bp"]
