"""Studies built on runs: plans of a reservation (more to move here: compare, sweep, probe)."""
