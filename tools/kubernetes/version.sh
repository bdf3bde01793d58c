#!/usr/bin/env bash
# Prints the default kubernetes_version from terraform/variables.tf: the one place it is set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
awk '/^variable "kubernetes_version"/{f=1} f && /default *=/{gsub(/[" ]/,"",$0); split($0,a,"="); print a[2]; exit}' \
  "$here/../../terraform/variables.tf"
