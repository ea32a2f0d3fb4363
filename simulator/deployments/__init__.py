"""Deployment models by kind: the one registration a new kind needs."""

from __future__ import annotations

from simulator.deployments.base import DeploymentModel, DeploymentSummary, EngineContext
from simulator.deployments.batch import BatchQueue
from simulator.deployments.serverless import ServerlessEndpoint

DEPLOYMENT_MODELS: dict[str, type[DeploymentModel]] = {
    ServerlessEndpoint.kind: ServerlessEndpoint,
    BatchQueue.kind: BatchQueue,
}

__all__ = ["DEPLOYMENT_MODELS", "DeploymentModel", "DeploymentSummary", "EngineContext"]
