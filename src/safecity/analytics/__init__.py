"""Crime analytics: incident history import, trend monitoring and anomaly alerts, hotspot
maps (grid counts, kernel density, Getis-Ord Gi*, emerging hotspots), next-week risk
forecasts with an honest weekly evaluation, and patrol planning.

The numerical parts (`grid`, `events`, `forecast`, `evaluate`, `trends`, `hotspots`,
`patrol`) are pure functions over numpy arrays; `service` reads and writes the analytics
tables and uses the geo domain's service for jurisdictions."""
