"""Interoperability with other frameworks: nnU-Net plans and weights, timm-3d weights."""
