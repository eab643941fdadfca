"""Processes and collectives: the launcher, each rank's worker and training loop, in-process SPMD."""
