{{/* The chart name, overridable. */}}
{{- define "omjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: the release name, with the chart name appended unless the release
name already contains it. Cluster-scoped objects (ClusterRole, ClusterRoleBinding) use it too, so
two releases in one cluster do not collide.
*/}}
{{- define "omjob-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "omjob-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "omjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "omjob-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "omjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: omjob-operator
{{- end }}

{{- define "omjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "omjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The documents of one of the chart's files (files/rbac.yaml, files/omjob-crds.yaml), parsed, as a
YAML list; comment-only segments are dropped. The files are byte-for-byte copies of deploy/rbac
and deploy/crds, checked by crates/operator/tests/helm_chart.rs.
*/}}
{{- define "omjob-operator.fileDocs" -}}
{{- $docs := list }}
{{- range regexSplit "(?m)^---[ \t]*$" (.root.Files.Get .path) -1 }}
{{- $doc := fromYaml . }}
{{- if and $doc (hasKey $doc "kind") }}
{{- $docs = append $docs $doc }}
{{- end }}
{{- end }}
{{- toYaml $docs }}
{{- end }}

{{/* The rules of the RBAC object of kind .kind in files/rbac.yaml. */}}
{{- define "omjob-operator.rules" -}}
{{- $found := list }}
{{- range fromYamlArray (include "omjob-operator.fileDocs" (dict "root" .root "path" "files/rbac.yaml")) }}
{{- if eq .kind $.kind }}
{{- $found = append $found .rules }}
{{- end }}
{{- end }}
{{- if ne (len $found) 1 }}
{{- fail (printf "files/rbac.yaml must hold exactly one %s, found %d" .kind (len $found)) }}
{{- end }}
{{- toYaml (first $found) }}
{{- end }}
