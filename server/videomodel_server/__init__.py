"""videomodel-server: an OpenAI-compatible video inference server on vLLM.

The :mod:`videomodel_server.budget` package is the pure authority on what a video costs; it is
shared with the operator and imports nothing heavy.
"""

__version__ = "0.1.0"
