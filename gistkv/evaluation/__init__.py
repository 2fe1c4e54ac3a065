"""Evaluation: the methods compared (full context, RAG, gist), their scoring, summaries and costs."""
