"""Training signal: pair sets from labels, click logs and document structure, synthetic queries
from an LLM (generators, prompts, filters) and the drift check. Imports the kernel, ``data``,
``retrieval`` and ``training``."""
