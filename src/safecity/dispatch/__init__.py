"""Dispatch: units and AVL, unit recommendation and assignment, response-time monitoring
with four escalating alert levels, panic devices, KPIs and response-time reports."""
