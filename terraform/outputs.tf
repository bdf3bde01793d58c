output "cluster_name" {
  description = "Name of the cluster (the ClusterName parameter of `sam deploy`)."
  value       = var.cluster_name
}

output "config_parameter_name" {
  description = "SSM parameter holding the cluster configuration the kcluster functions read."
  value       = aws_ssm_parameter.config.name
}

output "control_plane_asg_name" {
  description = "Name of the control-plane Auto Scaling group."
  value       = aws_autoscaling_group.node["control_plane"].name
}

output "worker_asg_name" {
  description = "Name of the worker Auto Scaling group."
  value       = aws_autoscaling_group.node["worker"].name
}

output "control_plane_endpoint" {
  description = "Kubernetes API endpoint (NLB DNS name and port) that kubeadm and kubeconfigs use."
  value       = local.control_plane_endpoint
}

output "endpoint_dns_name" {
  description = "DNS name of the control-plane NLB."
  value       = aws_lb.control_plane.dns_name
}

output "endpoint_target_group_arn" {
  description = "ARN of the control-plane target group (TCP 6443)."
  value       = aws_lb_target_group.control_plane.arn
}

output "api_target_group_arn_suffix" {
  description = "ARN suffix of the control-plane target group: the ApiTargetGroupArnSuffix parameter of `sam deploy` (the API server health alarm's TargetGroup dimension)."
  value       = aws_lb_target_group.control_plane.arn_suffix
}

output "api_load_balancer_arn_suffix" {
  description = "ARN suffix of the control-plane NLB: the ApiLoadBalancerArnSuffix parameter of `sam deploy` (the API server health alarm's LoadBalancer dimension)."
  value       = aws_lb.control_plane.arn_suffix
}

output "document_names" {
  description = "SSM Command document names by document key."
  value       = { for key, document in aws_ssm_document.node : key => document.name }
}

output "security_group_ids" {
  description = "Security group IDs: endpoint (the NLB), control_plane and worker."
  value       = local.security_group_ids
}

output "node_role_names" {
  description = "IAM role names of the nodes, by role key (control_plane, worker)."
  value       = { for key, role in aws_iam_role.node : key => role.name }
}

output "launch_template_ids" {
  description = "Launch template IDs, by role key (control_plane, worker)."
  value       = { for key, template in aws_launch_template.node : key => template.id }
}

output "admin_kubeconfig_parameter_name" {
  description = "SecureString parameter where the first control plane publishes the admin kubeconfig (read it with `aws ssm get-parameter --with-decryption`)."
  value       = "${local.parameter_prefix}/admin/kubeconfig"
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the cluster's SecureString parameters (the module's own, or kms_key_arn)."
  value       = local.kms_key_arn
}

output "kms_key_alias" {
  description = "Alias of the KMS key the module created (alias/kcluster-<name>); null when kms_key_arn was given."
  value       = local.create_kms_key ? aws_kms_alias.secrets[0].name : null
}

output "node_role_arns" {
  description = "IAM role ARNs of the nodes, by role key (control_plane, worker)."
  value       = { for key, role in aws_iam_role.node : key => role.arn }
}

output "ssm_transfer_bucket" {
  description = "The S3 bucket Ansible's amazon.aws.aws_ssm connection moves files through (`kcluster inventory` sets it for every host)."
  value       = aws_s3_bucket.ssm_transfer.id
}

output "backup_bucket" {
  description = "The S3 bucket the control planes upload etcd backups to (an etcd snapshot, the cluster PKI and a manifest under frequent/<id>/ or daily/<id>/), encrypted with the cluster's KMS key."
  value       = aws_s3_bucket.backup.id
}

output "backup_bucket_arn" {
  description = "ARN of the etcd backup bucket."
  value       = aws_s3_bucket.backup.arn
}
