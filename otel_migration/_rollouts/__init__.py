"""Which version serves a call: rollouts, routers and shadow runs (experiments)."""
