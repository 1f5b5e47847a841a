"""Materialize a pod's volumes as directories: ConfigMap/Secret/projected files, emptyDir, PVC dirs."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .kube import ApiError, Kube
from .podspec import NotReadyYet, data_of, field_ref

logger = logging.getLogger(__name__)


def referenced_objects(pod: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets a pod reads (env, envFrom, volumes)."""
    cms: set[str] = set()
    secs: set[str] = set()
    spec = pod.get("spec", {})
    for c in (spec.get("initContainers") or []) + spec.get("containers", []):
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                cms.add(src["configMapRef"]["name"])
            if "secretRef" in src:
                secs.add(src["secretRef"]["name"])
        for var in c.get("env") or []:
            vf = var.get("valueFrom") or {}
            if "configMapKeyRef" in vf:
                cms.add(vf["configMapKeyRef"]["name"])
            if "secretKeyRef" in vf:
                secs.add(vf["secretKeyRef"]["name"])
    for v in spec.get("volumes") or []:
        if "configMap" in v:
            cms.add(v["configMap"]["name"])
        if "secret" in v:
            secs.add(v["secret"]["secretName"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                cms.add(src["configMap"]["name"])
            if "secret" in src:
                secs.add(src["secret"]["name"])
    return cms, secs


def fetch_objects(kube: Kube, namespace: str, names: set[str], plural: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        obj = kube.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        if obj is not None:
            obj.setdefault("kind", "Secret" if plural == "secrets" else "ConfigMap")
            out[name] = obj
    return out


Rewriter = Callable[[bytes], bytes]


def _write_keys(
    target: Path,
    data: Mapping[str, bytes],
    items: list[dict[str, Any]] | None,
    mode: int,
    rewrite: Rewriter,
    *,
    what: str,
    optional: bool,
) -> None:
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise NotReadyYet(f"key {item['key']!r} missing from {what}")
            _write(target / item["path"], rewrite(data[item["key"]]), item.get("mode", mode))
    else:
        for key, value in data.items():
            _write(target / key, rewrite(value), mode)


def _write(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, mode)


def _write_keyed(
    target: Path,
    ref: Mapping[str, Any],
    obj: Mapping[str, Any] | None,
    label: str,
    mode: int,
    rewrite: Rewriter,
) -> None:
    """The keys of a ConfigMap or Secret as files (a volume, or one source of a projected volume)."""
    if obj is None:
        if ref.get("optional"):
            return
        raise NotReadyYet(f"{label} not found")
    _write_keys(target, data_of(obj), ref.get("items"), mode, rewrite, what=label, optional=bool(ref.get("optional")))


def volume_dir(namespace: str, volume: Mapping[str, Any], pod_dir: Path, claims_dir: Path) -> Path:
    """Where a volume lives on this machine: per pod, or per claim so a StatefulSet pod keeps its data."""
    if "persistentVolumeClaim" in volume:
        return claims_dir / namespace / volume["persistentVolumeClaim"]["claimName"]
    if "hostPath" in volume:
        return claims_dir / "_hostpath" / re.sub(r"[^A-Za-z0-9_.-]", "_", volume["hostPath"]["path"])
    return pod_dir / "volumes" / volume["name"]


def materialize(
    kube: Kube,
    pod: Mapping[str, Any],
    pod_dir: Path,
    *,
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    pod_ip: str,
    host_ip: str,
    claims_dir: Path,
    rewrite: Rewriter,
    server: str,
) -> dict[str, Path]:
    """Create every volume of the pod under pod_dir; return volume name → host directory."""
    ns = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    keyed_sources = (("configMap", configmaps, "name"), ("secret", secrets, "secretName"))
    for v in pod.get("spec", {}).get("volumes") or []:
        name = v["name"]
        target = volume_dir(ns, v, pod_dir, claims_dir)
        target.mkdir(parents=True, exist_ok=True)
        dirs[name] = target
        keyed = [(k, objs, name_key) for k, objs, name_key in keyed_sources if k in v]
        if keyed:
            kind, objs, name_key = keyed[0]
            ref = v[kind]
            label = f"{'ConfigMap' if kind == 'configMap' else 'Secret'} {ref[name_key]!r}"
            _write_keyed(target, ref, objs.get(ref[name_key]), label, ref.get("defaultMode", 0o644), rewrite)
        elif "projected" in v:
            _projected(kube, pod, target, v["projected"], configmaps, secrets, pod_ip, host_ip, rewrite, server)
        elif "downwardAPI" in v:
            for item in v["downwardAPI"].get("items") or []:
                value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip) if "fieldRef" in item else ""
                _write(target / item["path"], value.encode(), 0o644)
    return dirs


def _projected(
    kube: Kube,
    pod: Mapping[str, Any],
    target: Path,
    projected: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    pod_ip: str,
    host_ip: str,
    rewrite: Rewriter,
    server: str,
) -> None:
    mode = projected.get("defaultMode", 0o644)
    ns = pod["metadata"]["namespace"]
    for src in projected.get("sources") or []:
        if "configMap" in src:
            ref = src["configMap"]
            _write_keyed(target, ref, configmaps.get(ref["name"]), f"ConfigMap {ref['name']!r}", mode, rewrite)
        elif "secret" in src:
            ref = src["secret"]
            _write_keyed(target, ref, secrets.get(ref["name"]), f"Secret {ref['name']!r}", mode, rewrite)
        elif "downwardAPI" in src:
            for item in src["downwardAPI"].get("items") or []:
                value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip) if "fieldRef" in item else ""
                _write(target / item["path"], value.encode(), mode)
        elif "serviceAccountToken" in src:
            sat = src["serviceAccountToken"]
            sa = pod["spec"].get("serviceAccountName") or "default"
            body: dict[str, Any] = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": sat.get("expirationSeconds", 3607),
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                },
            }
            if sat.get("audience"):
                body["spec"]["audiences"] = [sat["audience"]]
            try:
                token = kube.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body)["status"]["token"]
            except ApiError as e:
                raise NotReadyYet(f"token for ServiceAccount {sa}: {e}") from e
            _write(target / sat["path"], token.encode(), mode)
            # In-cluster clients read a fixed path we cannot rewrite; give them a kubeconfig instead.
            _write(target / "kubeconfig", yaml.safe_dump(_kubeconfig(server, token, ns)).encode(), 0o600)


def _kubeconfig(server: str, token: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [
            {"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "sa", "namespace": namespace}}
        ],
        "current-context": "in-cluster",
    }


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, Path]) -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    for m in container.get("volumeMounts") or []:
        base = volume_dirs.get(m["name"])
        if base is None:
            continue
        path = base / m["subPath"] if m.get("subPath") else base
        if m.get("subPath") and not path.exists():
            path.mkdir(parents=True, exist_ok=True)
        mounts[m["mountPath"]] = path
    return mounts
