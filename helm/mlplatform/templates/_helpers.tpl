{{/*
Shared helpers. Component templates call them with (dict "root" $ "component" "<name>") where a component is
needed; "root" is the chart's top-level context.
*/}}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "mlp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name: the release name, prefixed to the chart name unless it already contains it. */}}
{{- define "mlp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "mlp.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "mlp.componentName" -}}
{{- printf "%s-%s" (include "mlp.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a component's pods; never change them on upgrade (selectors are immutable). */}}
{{- define "mlp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels: the selector labels plus version and management labels. */}}
{{- define "mlp.labels" -}}
{{ include "mlp.selectorLabels" . }}
app.kubernetes.io/part-of: mlplatform
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
<registry>/<name>:<tag>[@<digest>]; call with (dict "root" $ "image" "platform|serving"). A digest pins the exact
image (a tag can be moved); values image.digests give them.
*/}}
{{- define "mlp.image" -}}
{{- $image := .root.Values.image -}}
{{- $ref := printf "%s/%s:%s" (trimSuffix "/" $image.registry) (get $image .image) (default .root.Chart.AppVersion $image.tag) -}}
{{- with get $image.digests .image }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/*
Pull policy of one image: the value when set; else IfNotPresent for an image pinned by digest (it cannot change)
and Always for a tag (the registry says what the tag means now, and checks the pull credentials every time).
*/}}
{{- define "mlp.pullPolicy" -}}
{{- $image := .root.Values.image -}}
{{- $image.pullPolicy | default (ternary "IfNotPresent" "Always" (not (empty (get $image.digests .image)))) -}}
{{- end -}}

{{- define "mlp.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Secure by default: non-root, no privilege escalation, read-only root filesystem, no capabilities, the runtime's
seccomp profile. The images run as uid/gid 10001 (infrastructure/docker/).
*/}}
{{- define "mlp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mlp.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Writable scratch space on a read-only root filesystem: /tmp (also HOME) and the platform's state dir. */}}
{{- define "mlp.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
- name: state
  emptyDir:
    sizeLimit: 2Gi
{{- end -}}

{{- define "mlp.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/mlplatform
{{- end -}}

{{/* The Feast volume (registry file and offline parquet sources); see values feast.sharedVolume. */}}
{{- define "mlp.feastVolume" -}}
- name: feast
{{- if .Values.feast.sharedVolume.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.feast.sharedVolume.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: 5Gi
{{- end }}
{{- end -}}

{{- define "mlp.feastMount" -}}
- name: feast
  mountPath: /var/lib/mlplatform-feast
{{- end -}}

{{/* A required value, failing the render with the value's path when empty. */}}
{{- define "mlp.required" -}}
{{- required (printf "%s is required: the name of an existing Secret (credentials are never set inline)" .path) .value -}}
{{- end -}}

{{/* In-cluster URL of the MLflow server. */}}
{{- define "mlp.mlflowUrl" -}}
{{- printf "http://%s:%v" (include "mlp.componentName" (dict "root" . "component" "mlflow")) .Values.mlflow.port -}}
{{- end -}}

{{/*
Environment shared by every container running platform code (API, model servers, Feast jobs): the MLP_* settings
of mlplatform.config for the production profile, none of them secret. Secrets are files in MLP_SECRETS_DIR (see
mlp.secretFiles), each component holding only its own.
*/}}
{{- define "mlp.platformEnv" -}}
{{- $v := .Values -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: PYTHONUNBUFFERED
  value: "1"
- name: MLP_STATE_DIR
  value: /var/lib/mlplatform
- name: MLP_SECRETS_DIR
  value: {{ include "mlp.secretsDir" . }}
- name: MLP_MLFLOW__TRACKING_URI
  value: {{ include "mlp.mlflowUrl" . | quote }}
- name: MLP_MONITORING__REPORT_STORE
  value: mlflow
- name: MLP_FEAST__PROJECT
  value: {{ $v.feast.project | quote }}
- name: MLP_FEAST__ONLINE_STORE
  value: redis
- name: MLP_FEAST__REGISTRY_PATH
  value: /var/lib/mlplatform-feast/registry.db
- name: MLP_FEAST__DATA_DIR
  value: /var/lib/mlplatform-feast/data
- name: MLP_SERVING__BACKEND
  value: {{ $v.serving.backend | quote }}
- name: MLP_SERVING__PORT
  value: {{ $v.serving.port | quote }}
- name: MLP_SERVING__ALIAS
  value: {{ $v.serving.alias | quote }}
- name: MLP_SERVING__PREDICTION_LOG
  value: postgres
{{- end -}}


{{/* Where platform code finds its secret files (MLP_SECRETS_DIR): one file per setting, named like its variable. */}}
{{- define "mlp.secretsDir" -}}
/var/run/secrets/mlplatform
{{- end -}}

{{/*
Secret files of platform code: each entry [setting variable, Secret name, key, value path for the error]. Call
with (dict "root" $ "files" <entries>); renders the projected volume "secrets" for mlp.secretsDir. Files are
0440 and owned by the pods' fsGroup: readable by the container's user only.
*/}}
{{- define "mlp.secretFiles" -}}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range .files }}
      - secret:
          name: {{ include "mlp.required" (dict "path" (index . 3) "value" (index . 1)) }}
          items:
            - {key: {{ index . 2 }}, path: {{ index . 0 }}}
      {{- end }}
{{- end -}}

{{- define "mlp.secretsMount" -}}
- name: secrets
  mountPath: {{ include "mlp.secretsDir" .root }}
  readOnly: true
{{- end -}}

{{/*
MLflow client credentials (MLflow's basic auth): the client reads ~/.mlflow/credentials ([mlflow]
mlflow_tracking_username / mlflow_tracking_password); HOME is /tmp. Call with (dict "root" $ "key" <Secret key>).
*/}}
{{- define "mlp.mlflowCredentialsVolume" -}}
{{- if .root.Values.mlflow.auth.enabled }}
- name: mlflow-credentials
  secret:
    secretName: {{ include "mlp.required" (dict "path" "mlflow.auth.secretName" "value" .root.Values.mlflow.auth.secretName) }}
    defaultMode: 0440
    items:
      - {key: {{ .key }}, path: credentials}
{{- end }}
{{- end -}}

{{- define "mlp.mlflowCredentialsMount" -}}
{{- if .Values.mlflow.auth.enabled }}
- name: mlflow-credentials
  mountPath: /tmp/.mlflow
  readOnly: true
{{- end }}
{{- end -}}

{{/* The Secret holding the model servers' bearer token: the named one, else the one the chart generates. */}}
{{- define "mlp.servingTokenSecret" -}}
{{- .Values.serving.auth.secretName | default (include "mlp.componentName" (dict "root" . "component" "serving-token")) -}}
{{- end -}}

{{/* Where model servers find the bearer token clients must send (MLP_SERVING__AUTH_TOKEN_FILE). */}}
{{- define "mlp.servingTokenFile" -}}
/var/run/secrets/mlplatform-serving/token
{{- end -}}
