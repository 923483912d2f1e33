"""Goldsets and training pairs as data: BEIR folders read and checked, MTEB tasks, where a goldset
comes from, its summary, and pair files. Imports only the kernel."""
