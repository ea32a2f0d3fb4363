"""Studies built on runs: plans of a reservation, forecasts, probes of one replica (more to
move here: compare, sweep)."""
