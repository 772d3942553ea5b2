"""Registry: what the command centre has and watches: agencies, sites (named locations),
cameras, police units and officers."""
