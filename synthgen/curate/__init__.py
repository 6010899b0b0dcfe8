"""Curation: tell good examples from bad after generation, drop the bad ones with the evidence."""
