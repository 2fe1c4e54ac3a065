"""Reporting: the markdown report, its plots and tables, and the README headline."""
