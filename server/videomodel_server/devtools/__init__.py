"""Tools that build what the tests and the demo need on a machine with no model hub.

Tiny random-weight Qwen-VL checkpoints and synthetic videos. Nothing in the product imports
this package or special-cases what it builds.
"""
