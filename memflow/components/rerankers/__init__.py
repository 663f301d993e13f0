"""rerankers: second-stage scorers over a retriever's hits."""
