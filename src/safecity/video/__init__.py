"""Video: the glue between the vision library and the rest of SafeCity.

Cameras come from the registry and are shared out to workers (`safecity worker`); each
worker runs `safecity.vision` on its cameras and turns what it sees into rows (events with
their snapshots and clips, camera health, traffic counts per minute), bus messages
(`vision.events.<kind>`, `vision.camera.<status>`), the registry's live camera status, and
incidents for the alert kinds a camera's rules ask for (routed like calls, at the site)."""
