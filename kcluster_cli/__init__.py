"""`kcluster`: the operator's command for a kcluster cluster on AWS.

It talks to AWS with the standard credential chain (or `--profile`) and reads what Terraform and the
control loop wrote; it never ships in the Lambda layer. On a development tree the local twin adds
`simulate`, `chaos` and `iam-table` (twin/cli.py).
"""
