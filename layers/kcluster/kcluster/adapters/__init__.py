"""Thin wrappers over boto3. Each takes an optional client and builds its own only when none is given."""
