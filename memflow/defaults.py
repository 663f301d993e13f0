"""Names every part of memflow agrees on, in a module that imports nothing, so the command line can read
them without loading the rest."""

from __future__ import annotations

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STORE", "DB_FILE", "INDEX_FILE", "META_FILE"]

#: The collection a document belongs to unless it is given one.
DEFAULT_COLLECTION = "default"
#: The store directory when none is given (``--store``, ``MEMFLOW_STORE``).
DEFAULT_STORE = "./storage"
#: The SQLite database file inside a store directory.
DB_FILE = "memflow.db"
#: The FAISS index file inside a store directory, and the JSON file that says what it holds.
INDEX_FILE = "vectors.faiss"
META_FILE = "vectors.json"
