#!/usr/bin/env bash
# Creates COUNT KWOK fake GPU nodes at SITE: hack/fake-nodes.sh KUBECONFIG SITE COUNT GPUS [MODEL]
# kwok manages nodes annotated kwok.x-k8s.io/node=fake.
set -euo pipefail
kubeconfig=$1 site=$2 count=$3 gpus=$4 model=${5:-NVIDIA-H100-80GB-HBM3}
kubectl="$("$(dirname "$0")/tools.sh" --print-dir)/bin/kubectl"
for i in $(seq 0 $((count - 1))); do
  cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: ${site}-gpu-${i}
  annotations: {kwok.x-k8s.io/node: fake}
  labels:
    type: kwok
    kubernetes.io/hostname: ${site}-gpu-${i}
    verdant.dev/site: ${site}
    nvidia.com/gpu.product: ${model}
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "${gpus}"}
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "${gpus}"}
NODE
done | KUBECONFIG="$kubeconfig" "$kubectl" apply -f - >/dev/null
# The API server taints new nodes not-ready; kube-controller-manager's node lifecycle
# controller would lift it once kwok reports them Ready. There is none here, so we do.
KUBECONFIG="$kubeconfig" "$kubectl" taint nodes -l "verdant.dev/site=$site" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
echo ">> $count fake GPU nodes (${gpus} GPUs each) at site $site" >&2
