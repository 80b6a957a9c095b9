"""Run a rendered server container outside Kubernetes: its argv with its ConfigMaps on disk.

``videomodel render`` prints what the operator applies. The server container reads its budget
from a ConfigMap volume; this lays each ConfigMap volume's items out under a local directory, the
way the kubelet mounts them, and rewrites the mount paths in the container's arguments. Nothing
else in the rendered arguments changes, so the demo and the contract tests start the server the
way the pod does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def container_argv(objects: list[dict[str, Any]], mount_root: Path) -> list[str]:
    """The server container's arguments, its ConfigMap volumes materialized under ``mount_root``."""
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    argv: list[str] = list(container["args"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = config_maps[source["name"]]["data"]
        target = mount_root / mount["mountPath"].strip("/")
        target.mkdir(parents=True, exist_ok=True)
        for item in source.get("items") or [{"key": key, "path": key} for key in data]:
            (target / item["path"]).write_text(data[item["key"]])
        argv = [arg.replace(mount["mountPath"], str(target)) for arg in argv]
    return argv
