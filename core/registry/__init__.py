"""Versions and their files: the catalog, the artifact store, and the registry joining them."""
