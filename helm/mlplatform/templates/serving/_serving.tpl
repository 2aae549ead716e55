{{/*
The model server container, shared by both backends: our serving image running serving/<backend>/...  with the
settings of the platform (port 8080 in-cluster, bound to all interfaces). Call with
(dict "root" $ "model" <model values> "backend" "kserve|bentoml").
*/}}
{{- define "mlp.servingContainer" -}}
{{- $root := .root -}}
{{- $serving := $root.Values.serving -}}
{{- $resources := .model.resources | default $serving.defaults.resources -}}
- name: {{ if eq .backend "kserve" }}kserve-container{{ else }}model-server{{ end }}
  image: {{ include "mlp.image" (dict "root" $root "image" "serving") }}
  imagePullPolicy: {{ include "mlp.pullPolicy" (dict "root" $root "image" "serving") }}
  args: [python, serving/{{ .backend }}/{{ if eq .backend "kserve" }}server.py{{ else }}service.py{{ end }}, --model, {{ .model.name | quote }}]
  ports:
    - name: http1
      containerPort: {{ $serving.port }}
      protocol: TCP
  env:
    {{- include "mlp.platformEnv" $root | nindent 4 }}
    - name: MLP_SERVING__HOST
      value: 0.0.0.0
    - name: MLP_SERVING__MODEL_CACHE_DIR
      value: /var/lib/mlplatform/serving
    {{- if $serving.auth.enabled }}
    # Predict routes require `Authorization: Bearer <this file's content>`.
    - name: MLP_SERVING__AUTH_TOKEN_FILE
      value: {{ include "mlp.servingTokenFile" $root }}
    {{- end }}
    {{- if eq .backend "bentoml" }}
    - name: BENTOML_HOME
      value: /tmp/bentoml
    {{- end }}
  volumeMounts:
    {{- include "mlp.scratchMounts" $root | nindent 4 }}
    {{- include "mlp.feastMount" $root | nindent 4 }}
    {{- include "mlp.secretsMount" (dict "root" $root) | nindent 4 }}
    {{- include "mlp.mlflowCredentialsMount" $root | nindent 4 }}
    {{- if $serving.auth.enabled }}
    - name: serving-token
      mountPath: {{ include "mlp.servingTokenFile" $root | dir }}
      readOnly: true
    {{- end }}
  startupProbe:
    httpGet: {path: /livez, port: http1}
    periodSeconds: 5
    failureThreshold: 36
  livenessProbe:
    httpGet: {path: /livez, port: http1}
    periodSeconds: 20
    timeoutSeconds: 5
  {{- /* Ready only once a model is loaded (both servers answer 503 with the reason before). */}}
  readinessProbe:
    httpGet: {path: /readyz, port: http1}
    periodSeconds: 5
    timeoutSeconds: 3
  resources:
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- include "mlp.containerSecurityContext" $root | nindent 4 }}
{{- end -}}

{{/*
A model server's volumes: scratch space, the Feast volume, and its own credentials only: the prediction log URL of
the insert-only role (never the platform DB's), the Redis connection string, the read-only MLflow user and the
bearer token clients must send. Call with the chart's root context.
*/}}
{{- define "mlp.servingVolumes" -}}
{{- $writer := .Values.postgresql.predictionWriter -}}
{{- $files := list
  (list "MLP_SERVING__PREDICTION_LOG_URL" $writer.secretName $writer.urlKey "postgresql.predictionWriter.secretName")
  (list "MLP_FEAST__REDIS_CONNECTION_STRING" .Values.redis.secretName .Values.redis.secretKey "redis.secretName") -}}
{{ include "mlp.scratchVolumes" . }}
{{ include "mlp.feastVolume" . }}
{{ include "mlp.secretFiles" (dict "root" . "files" $files) }}
{{- include "mlp.mlflowCredentialsVolume" (dict "root" . "key" .Values.mlflow.auth.readerCredentialsKey) }}
{{- if .Values.serving.auth.enabled }}
- name: serving-token
  secret:
    secretName: {{ include "mlp.servingTokenSecret" . }}
    defaultMode: 0440
    items:
      - {key: {{ .Values.serving.auth.secretKey }}, path: {{ include "mlp.servingTokenFile" . | base }}}
{{- end }}
{{- end -}}

{{/*
Selects every model server in the namespace: the chart's and those mlplatform.deploy.kubernetes creates (which
carry the same part-of and component labels), for the PodMonitor and the NetworkPolicies.
*/}}
{{- define "mlp.modelServerSelector" -}}
app.kubernetes.io/part-of: mlplatform
app.kubernetes.io/component: model-server
{{- end -}}

{{/* Labels of a model server's pods; the PodMonitor and NetworkPolicy select model servers by them. */}}
{{- define "mlp.servingLabels" -}}
{{ include "mlp.labels" (dict "root" .root "component" "model-server") }}
mlplatform.io/model: {{ .model.name | quote }}
{{- end -}}
