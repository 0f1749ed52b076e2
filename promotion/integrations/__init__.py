"""Bridges to other tools; each is optional and imported only when used."""
