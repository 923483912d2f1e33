"""Fine-tuning on a goldset: the training configuration, the leakage guard, the fine-tuning job
(rounds and hard-negative mining; the trainer itself is a backend behind
:class:`harness.protocols.Trainer`) and query adapters over frozen embeddings.
Imports the kernel, ``data`` and ``retrieval``."""
