{{- define "videomodel-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "videomodel-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "videomodel-operator.labels" -}}
app.kubernetes.io/name: {{ include "videomodel-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "videomodel-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videomodel-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "videomodel-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "videomodel-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the name of an existing ServiceAccount is required when serviceAccount.create is false (the operator never runs as the namespace's default account)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
