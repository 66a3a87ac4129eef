"""Helpers several task types use: finding a quote in a document, checking an answer is grounded."""
