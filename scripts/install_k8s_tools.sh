#!/usr/bin/env bash
# Install the manifest tools at pinned versions into .tools/ (ignored by git) and write the schemas
# they validate against. Called by scripts/test.sh (README command 2); safe to run again.
#   .tools/bin/kustomize     sigs.k8s.io/kustomize/kustomize/v5   (Go module proxy)
#   .tools/bin/kubeconform   github.com/yannh/kubeconform          (Go module proxy)
#   .tools/schemas/          Kubernetes (kubernetes-validate wheel) + KEDA's own CRDs (KEDA Go module)
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_VERSION=v5.8.2        # v5.8.3 needs a newer Go than Debian 12 machines carry
KUBECONFORM_VERSION=v0.8.0
KEDA_VERSION=v2.17.2            # the KEDA release the manifests are written for
KUBERNETES_VERSION=1.30.0       # the oldest Kubernetes the manifests support

TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "install_k8s_tools: Go is needed (go install fetches kustomize and kubeconform)" >&2
  exit 1
fi
GOBIN="$TOOLS/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
GOBIN="$TOOLS/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
KEDA_DIR="$(go mod download -json "github.com/kedacore/keda/v2@${KEDA_VERSION}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
rm -rf "$TOOLS/schemas"
python3 scripts/k8s_schemas.py --kubernetes-version "$KUBERNETES_VERSION" \
  --crds "$KEDA_DIR/config/crd/bases" --out "$TOOLS/schemas"
printf '%s\n' "kustomize ${KUSTOMIZE_VERSION}" "kubeconform ${KUBECONFORM_VERSION}" "keda ${KEDA_VERSION}" \
  "kubernetes ${KUBERNETES_VERSION}" > "$TOOLS/versions.txt"
