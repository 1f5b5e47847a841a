"""`spec.podTemplate` / `spec.redis.podTemplate` merged into a pod template the operator built.

Placement (nodeSelector, tolerations, affinity, topologySpreadConstraints, priorityClassName), image pull
secrets, the ServiceAccount and extra labels/annotations are taken as given. The security settings of
`security.py` always win: a user value that would weaken them (root, Unconfined seccomp, runAsNonRoot
false) is dropped and named in `ignored_security`, which the Crawl's status reports.
"""

from __future__ import annotations

import copy
from typing import Any

from kubecrawl_operator.models import PodTemplate


def ignored_security(template: PodTemplate | None, where: str) -> list[str]:
    """What of the template's securityContext the operator will not apply (it would weaken the pod)."""
    sc = template.security_context if template is not None else None
    if sc is None:
        return []
    out = []
    if sc.run_as_non_root is False:
        out.append(f"{where}.securityContext.runAsNonRoot=false")
    if sc.run_as_user == 0:
        out.append(f"{where}.securityContext.runAsUser=0")
    if sc.run_as_group == 0:
        out.append(f"{where}.securityContext.runAsGroup=0")
    if sc.seccomp_profile is not None and sc.seccomp_profile.get("type") not in ("RuntimeDefault", "Localhost"):
        out.append(f"{where}.securityContext.seccompProfile.type={sc.seccomp_profile.get('type')}")
    return out


def apply_pod_template(template: dict[str, Any], user: PodTemplate | None) -> dict[str, Any]:
    """A copy of `template` (`{"metadata": ..., "spec": ...}`) with the user's template merged in."""
    if user is None:
        return template
    out = copy.deepcopy(template)
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**user.labels, **(meta.get("labels") or {})}
    annotations = {**user.annotations, **(meta.get("annotations") or {})}
    if annotations:
        meta["annotations"] = annotations
    spec = out["spec"]
    if user.node_selector:
        spec["nodeSelector"] = dict(user.node_selector)
    if user.tolerations:
        spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in user.tolerations]
    if user.affinity:
        spec["affinity"] = copy.deepcopy(user.affinity)
    if user.topology_spread_constraints:
        spec["topologySpreadConstraints"] = copy.deepcopy(user.topology_spread_constraints)
    if user.priority_class_name:
        spec["priorityClassName"] = user.priority_class_name
    if user.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s.name} for s in user.image_pull_secrets]
    if user.service_account_name:
        spec["serviceAccountName"] = user.service_account_name
    sc = user.security_context
    if sc is not None:
        enforced = spec.get("securityContext") or {}
        merged: dict[str, Any] = {}
        if sc.run_as_user:
            merged["runAsUser"] = sc.run_as_user
        if sc.run_as_group:
            merged["runAsGroup"] = sc.run_as_group
        if sc.fs_group is not None:
            merged["fsGroup"] = sc.fs_group
        if sc.supplemental_groups:
            merged["supplementalGroups"] = list(sc.supplemental_groups)
        if sc.se_linux_options:
            merged["seLinuxOptions"] = copy.deepcopy(sc.se_linux_options)
        if sc.fs_group_change_policy:
            merged["fsGroupChangePolicy"] = sc.fs_group_change_policy
        if sc.seccomp_profile is not None and sc.seccomp_profile.get("type") in ("RuntimeDefault", "Localhost"):
            merged["seccompProfile"] = copy.deepcopy(sc.seccomp_profile)
        # What the operator enforces wins (runAsNonRoot) except the uid/gid/seccomp it allows to change.
        spec["securityContext"] = {**enforced, **merged, "runAsNonRoot": True}
    # Never weakened whatever the template says (these keys are not template fields; belt and braces).
    spec["automountServiceAccountToken"] = False
    return out
