{{/* Labels shared by every object of the release. */}}
{{- define "cutover-lab.labels" -}}
app.kubernetes.io/part-of: cutover-lab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
Pod-template annotations: the values hash (values-hash PR) instead of `{{ now }}`, so pods roll
exactly when an input value changes — a flag flip rolls them, a no-op upgrade does not.
*/}}
{{- define "cutover-lab.podAnnotations" -}}
valuesHash: {{ .Values | toYaml | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cutover-lab.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* A non-root, read-only pod: the lab programs need nothing else. */}}
{{- define "cutover-lab.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
{{- end -}}

{{- define "cutover-lab.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
