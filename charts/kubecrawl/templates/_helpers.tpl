{{/* Names, labels and images shared by the templates. */}}

{{- define "kubecrawl.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubecrawl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* app.kubernetes.io/name=kubecrawl-operator is what each crawl's Redis NetworkPolicy admits. */}}
{{- define "kubecrawl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubecrawl.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubecrawl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kubecrawl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubecrawl
{{- end -}}

{{- define "kubecrawl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubecrawl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository[:tag|@digest], tag defaulting to the chart's appVersion. Call with (dict "image" ... "root" $). */}}
{{- define "kubecrawl.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The coordination.k8s.io Lease the operator replicas elect their leader with (release namespace). */}}
{{- define "kubecrawl.leaseName" -}}
{{- include "kubecrawl.fullname" . -}}
{{- end -}}

{{/*
The operator's namespaced permissions: exactly the resources and verbs it uses on a Crawl and the
children it owns (kubecrawl_operator/rbac.py RULES, which the operator's
client enforces; tests/chart/test_chart_rbac.py fails if the two differ). Rendered into the ClusterRole (watch.mode=cluster) or into a Role in
each watched namespace (watch.mode=namespaces).
*/}}
{{- define "kubecrawl.operatorRules" -}}
- apiGroups: [kubecrawl.io]
  resources: [crawls]
  verbs: [get, list, watch, patch]
- apiGroups: [kubecrawl.io]
  resources: [crawls/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [get, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, delete]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
{{- end -}}
