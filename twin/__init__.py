"""The local twin: emulates what moto lacks so kcluster runs without an AWS account."""
