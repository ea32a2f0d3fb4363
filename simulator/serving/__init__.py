"""Serving: hardware and model catalogs, Hugging Face configs, performance models (the
deployment models live in `simulator.deployments`)."""
