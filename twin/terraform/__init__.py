"""Terraform read offline by the twin and the checks: the HCL parser and the evaluator."""
