"""Deployment models by kind: the one registration a new kind needs."""

from __future__ import annotations

from simulator.deployments.base import DeploymentModel, DeploymentSummary, EngineContext
from simulator.deployments.batch import BatchQueue
from simulator.deployments.dedicated import ClusterPool, ServingPool
from simulator.deployments.serverless import ServerlessEndpoint

DEPLOYMENT_MODELS: dict[str, type[DeploymentModel]] = {
    ServerlessEndpoint.kind: ServerlessEndpoint,
    BatchQueue.kind: BatchQueue,
    ServingPool.kind: ServingPool,
    ClusterPool.kind: ClusterPool,
}

__all__ = ["DEPLOYMENT_MODELS", "DeploymentModel", "DeploymentSummary", "EngineContext"]
