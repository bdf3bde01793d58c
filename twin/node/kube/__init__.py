"""The Kubernetes model split by what it models; `twin.node.model.KubeModel` composes the parts."""
