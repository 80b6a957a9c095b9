"""``POST /v1/chat/completions``, split by job as vLLM's ``entrypoints/openai/chat_completion`` is.

- :mod:`.router`: the route: admit, read, parse, prepare, respond;
- :mod:`.protocol`: the pydantic models of the wire format;
- :mod:`.translation`: a request to a :class:`~videomodel_server.jobs.ChatJob` (pure checks and clamps);
- :mod:`.service`: the job through the media loader and the engine (no HTTP);
- :mod:`.responses`: engine deltas to OpenAI completions, chunks and this server's report.
"""
