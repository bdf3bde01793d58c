provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region of the example cluster."
  type        = string
  default     = "eu-west-1"
}

variable "cluster_name" {
  description = "Name of the example cluster."
  type        = string
  default     = "example"
}

variable "vpc_id" {
  description = "Existing VPC for the example cluster."
  type        = string
}

variable "subnet_ids" {
  description = "At least three private subnets of vpc_id, in different availability zones, with a NAT route to the internet."
  type        = list(string)
}

variable "api_allowed_cidrs" {
  description = "Networks (a VPN or bastion range) allowed to reach the Kubernetes API through the NLB."
  type        = list(string)
  default     = []
}

module "kcluster" {
  source = "../.."

  cluster_name      = var.cluster_name
  vpc_id            = var.vpc_id
  subnet_ids        = var.subnet_ids
  api_allowed_cidrs = var.api_allowed_cidrs

  control_plane_desired_capacity = 3
  worker_desired_capacity        = 3

  tags = {
    Environment = "example"
  }
}
