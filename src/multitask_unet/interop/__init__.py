"""Interoperability with other frameworks (nnU-Net)."""
