"""Access to the Kubernetes API from inside a pod (the scheduler's Lease, the executor's Jobs)."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def in_cluster_api() -> client.ApiClient:
    """An API client with the pod's service account."""
    config.load_incluster_config()
    return client.ApiClient()


def current_namespace(default: str = "default") -> str:
    """The pod's namespace, from its service account, or `default` outside a cluster."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or default
    except OSError:
        return default
