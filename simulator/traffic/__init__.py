"""The traffic stage: arrival processes (`arrivals/`, one module a process), token-length
laws, trace readers, each workload's draws from its own stream (`draw`) and fitting models
to a usage log (`fit`). It reads the scenario; it imports nothing of serving, the engine,
the report or the studies."""
