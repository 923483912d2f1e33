"""Search over a corpus: exact dense top-k, dense and chunked retrievers over any encoder (through
the embedding cache), chunking, and rank fusion through ranx. Imports the kernel and ``data``."""
