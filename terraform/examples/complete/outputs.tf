output "cluster_name" {
  description = "Name of the cluster: pass it to `sam deploy --parameter-overrides ClusterName=<name>`."
  value       = module.kcluster.cluster_name
}

output "config_parameter_name" {
  description = "SSM parameter holding the cluster configuration."
  value       = module.kcluster.config_parameter_name
}

output "control_plane_asg_name" {
  description = "Name of the control-plane Auto Scaling group."
  value       = module.kcluster.control_plane_asg_name
}

output "worker_asg_name" {
  description = "Name of the worker Auto Scaling group."
  value       = module.kcluster.worker_asg_name
}

output "control_plane_endpoint" {
  description = "Kubernetes API endpoint (NLB DNS name and port)."
  value       = module.kcluster.control_plane_endpoint
}

output "admin_kubeconfig_parameter_name" {
  description = "SecureString parameter with the admin kubeconfig once the cluster is initialised."
  value       = module.kcluster.admin_kubeconfig_parameter_name
}

output "api_target_group_arn_suffix" {
  description = "Pass to `sam deploy --parameter-overrides ApiTargetGroupArnSuffix=<suffix>` (API server health alarm)."
  value       = module.kcluster.api_target_group_arn_suffix
}

output "api_load_balancer_arn_suffix" {
  description = "Pass to `sam deploy --parameter-overrides ApiLoadBalancerArnSuffix=<suffix>` (API server health alarm)."
  value       = module.kcluster.api_load_balancer_arn_suffix
}
