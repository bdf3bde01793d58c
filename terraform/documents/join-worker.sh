# join-worker: kubeadm join of a worker with the join material a healthy control plane published.
KC_STEP=join-worker
kc_join worker
