"""The memory served to other programs: ``memflow serve`` over HTTP (:mod:`memflow.server.app`, the
``server`` extra: FastAPI and uvicorn) and ``memflow mcp`` to LLM agents (:mod:`memflow.server.mcp_server`,
the ``mcp`` extra). Nothing is imported here, so each needs only its own extra."""
