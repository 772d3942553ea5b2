"""Simulation: the deterministic demo province and the incident simulator."""
