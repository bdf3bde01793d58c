"""The node side of the twin: a kubeadm/kubelet/kubectl/etcd model behind fake binaries, and the
per-instance sandboxes the SSM documents' scripts really run in."""
