"""Pure functions turning a Pod manifest into what a local process needs: env, argv, files, addresses."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class NotReadyYet(Exception):
    """A referenced object (ConfigMap, Secret, Service endpoint) does not exist yet; retry later."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known vars replaced, unknown left as is, `$$` escapes `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, text)


def field_ref(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ValueError(f"unsupported fieldRef {path!r}")


def _key_ref(objs: Mapping[str, Mapping[str, Any]], ref: Mapping[str, Any], kind: str) -> str | None:
    obj = objs.get(ref["name"])
    if obj is None:
        if ref.get("optional"):
            return None
        raise NotReadyYet(f"{kind} {ref['name']!r} not found")
    data = data_of(obj)
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise NotReadyYet(f"key {ref['key']!r} not in {kind} {ref['name']!r}")
    return data[ref["key"]].decode(errors="replace")


def data_of(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """The decoded data of a ConfigMap or Secret."""
    out: dict[str, bytes] = {}
    if obj.get("kind") == "Secret" or "type" in obj:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
        return out
    for k, v in (obj.get("data") or {}).items():
        out[k] = v.encode()
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    pod_ip: str,
    host_ip: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment: envFrom, then env in order, each value `$(VAR)`-expanded."""
    env: dict[str, str] = dict(base or {})
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, objs in (("configMapRef", configmaps), ("secretRef", secrets)):
            ref = src.get(kind)
            if not ref:
                continue
            obj = objs.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise NotReadyYet(f"{kind} {ref['name']!r} not found")
            for k, v in data_of(obj).items():
                env[prefix + k] = v.decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(var["value"], env)
            continue
        vf = var.get("valueFrom") or {}
        value: str | None
        if "secretKeyRef" in vf:
            value = _key_ref(secrets, vf["secretKeyRef"], "Secret")
        elif "configMapKeyRef" in vf:
            value = _key_ref(configmaps, vf["configMapKeyRef"], "ConfigMap")
        elif "fieldRef" in vf:
            value = field_ref(pod, vf["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in vf:
            value = "0"
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def argv(container: Mapping[str, Any], env: Mapping[str, str]) -> tuple[list[str] | None, list[str] | None]:
    """(command, args) after `$(VAR)` expansion; None where the image default applies."""
    command = container.get("command")
    args = container.get("args")
    return (
        [expand(c, env) for c in command] if command is not None else None,
        [expand(a, env) for a in args] if args is not None else None,
    )


# -- Service DNS -------------------------------------------------------------------------------


@dataclass
class DnsTable:
    """Service and pod host names of one namespace → pod IP (and service port → target port)."""

    namespace: str
    hosts: dict[str, str] = field(default_factory=dict)  # short name → ip
    ports: dict[str, dict[int, int]] = field(default_factory=dict)  # short name → {port: targetPort}

    def names(self) -> list[str]:
        return sorted(self.hosts, key=len, reverse=True)

    def rewrite(self, text: str) -> str:
        """Replace `NAME`, `NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.cluster.local` in host position."""
        for name in self.names():
            ns = re.escape(self.namespace)
            long = rf"{re.escape(name)}\.{ns}(?:\.svc(?:\.cluster\.local)?)?\.?"
            short = re.escape(name)
            ip = self.hosts[name]
            # Qualified names anywhere in host position; a bare name only after scheme:// or @, or
            # before :port (so a crawl called like its Service is not rewritten).
            text = re.sub(rf"(^|://|@|\s|=|,)({long})(?=:\d|/|$|\s|,)", lambda m, ip=ip: m.group(1) + ip, text)
            text = re.sub(rf"(://|@)({short})(?=:\d|/|$|\s|,)", lambda m, ip=ip: m.group(1) + ip, text)
            text = re.sub(rf"(^|\s|=|,)({short})(?=:\d)", lambda m, ip=ip: m.group(1) + ip, text)
            text = self._ports(text, ip, self.ports.get(name, {}))
        return text

    @staticmethod
    def _ports(text: str, ip: str, mapping: Mapping[int, int]) -> str:
        for port, target in mapping.items():
            if port != target:
                text = re.sub(rf"{re.escape(ip)}:{port}(?!\d)", f"{ip}:{target}", text)
        return text


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def target_port(svc_port: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> int:
    target = svc_port.get("targetPort", svc_port["port"])
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for pod in pods:
        for c in pod.get("spec", {}).get("containers", []):
            for p in c.get("ports") or []:
                if p.get("name") == target:
                    return int(p["containerPort"])
    return int(svc_port["port"])
