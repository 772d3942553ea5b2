"""Video analytics as a pure library: decoding (PyAV), motion detection, object detection
(ONNX Runtime; OpenVINO when installed), tracking (ByteTrack), zone and line rules, camera
health checks and snapshots.

Everything here works on numpy arrays and plain dataclasses: no database, no web framework,
no other SafeCity domain (an import-linter contract keeps it so). `safecity.video` is the
glue that feeds it cameras from the registry and turns its events into rows, bus messages,
alerts and incidents."""
