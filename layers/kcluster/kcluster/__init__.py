"""kcluster: self-healing kubeadm clusters on EC2 Auto Scaling groups, driven by events.

This package is the shared Lambda layer. ``kcluster.core`` is pure (no AWS); ``kcluster.adapters``
wrap boto3; ``kcluster.service`` is the imperative shell the function handlers call.
"""

__version__ = "0.1.0"
