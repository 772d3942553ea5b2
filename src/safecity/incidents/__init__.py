"""Incidents: helpline calls, panic alerts and camera alerts become incidents, routed to the
police station whose jurisdiction holds them, with an append-only timeline."""
