# join-control-plane: kubeadm join --control-plane (certificate key in the JoinConfiguration) with the
# join material a healthy control plane published. The control loop runs one at a time (lease).
KC_STEP=join-control-plane
kc_join control-plane
