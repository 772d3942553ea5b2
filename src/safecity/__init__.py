"""SafeCity: police command and control (CCTV analytics, emergency calls and dispatch,
watchlists, records and crime analytics)."""

__version__ = "0.1.0"
