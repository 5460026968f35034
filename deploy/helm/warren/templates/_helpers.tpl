{{- /*
This chart uses only Go text/template builtins (no Sprig, no `include`/`required`): what renders in
test/helm-chart.test.ts (Go's own text/template compiled to WebAssembly) renders identically in helm.
Values are checked by values.schema.json instead of `required`/`fail`. Label sets are one-line flow
mappings so that `template` (which cannot be piped into `nindent`) works at any indentation.
*/ -}}

{{- define "warren.image" -}}
{{ .Values.image.repository }}:{{ or .Values.image.tag .Chart.AppVersion }}
{{- end -}}

{{- define "warren.chartLabel" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "warren.agent.selector" -}}
{"app.kubernetes.io/name": "warren", "app.kubernetes.io/component": "agent", "app.kubernetes.io/instance": {{ printf "%q" .Values.agent.cluster }}}
{{- end -}}

{{- define "warren.agent.labels" -}}
{"app.kubernetes.io/name": "warren", "app.kubernetes.io/component": "agent", "app.kubernetes.io/instance": {{ printf "%q" .Values.agent.cluster }}, "app.kubernetes.io/version": {{ printf "%q" .Chart.AppVersion }}, "app.kubernetes.io/managed-by": {{ printf "%q" .Release.Service }}, "helm.sh/chart": "{{ template "warren.chartLabel" . }}"}
{{- end -}}

{{- define "warren.hub.selector" -}}
{"app.kubernetes.io/name": "warren", "app.kubernetes.io/component": "hub", "app.kubernetes.io/instance": {{ printf "%q" .Release.Name }}}
{{- end -}}

{{- define "warren.hub.labels" -}}
{"app.kubernetes.io/name": "warren", "app.kubernetes.io/component": "hub", "app.kubernetes.io/instance": {{ printf "%q" .Release.Name }}, "app.kubernetes.io/version": {{ printf "%q" .Chart.AppVersion }}, "app.kubernetes.io/managed-by": {{ printf "%q" .Release.Service }}, "helm.sh/chart": "{{ template "warren.chartLabel" . }}"}
{{- end -}}

{{- /* The container securityContext of both workloads: the "restricted" Pod Security Standard. */ -}}
{{- define "warren.containerSecurityContext" -}}
{runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
{{- end -}}

{{- define "warren.podSecurityContext" -}}
{runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: {type: RuntimeDefault}}
{{- end -}}
