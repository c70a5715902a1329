"""Benchmarks of multitask_unet against nnU-Net's own code; never part of the test run."""
