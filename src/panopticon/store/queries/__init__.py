"""Queries over the store, one module per aggregate. The only SQL outside migrations."""
