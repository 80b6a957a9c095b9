"""Tools that build what the tests and the demo need on a machine with no model hub.

Tiny random-weight Qwen-VL checkpoints and synthetic videos. A separate distribution
(``devtools/pyproject.toml``), installed editable by ``scripts/bootstrap.sh`` and not part of the
``videomodel`` wheel: nothing in the product imports this package or special-cases what it builds.
"""
