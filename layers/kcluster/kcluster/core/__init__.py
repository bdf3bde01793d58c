"""The pure workflow: models, the launch workflow and the reconciler's derivations. No AWS here."""
