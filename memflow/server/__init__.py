"""``memflow serve``: one memory over HTTP for programs in other processes and languages (the ``server`` extra:
FastAPI and uvicorn). :func:`create_app` builds the ASGI app around a :class:`~memflow.Memory`."""

from memflow.server.app import ServerSettings, create_app, warm

__all__ = ["ServerSettings", "create_app", "warm"]
