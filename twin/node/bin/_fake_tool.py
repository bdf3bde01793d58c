"""A node tool (kubeadm, kubectl, systemctl, aws, etcdctl, sleep) in a twin sandbox.

Started by the shell wrappers next to it as `python -I -S _fake_tool.py <tool> <args...>`. It sends the
call (argv, a few environment variables, the working directory, stdin when a tool reads "-", and the
contents of the files the arguments name) to the twin's node server on the Unix socket
$KCLUSTER_TWIN_SOCKET, then prints the reply's stdout and stderr and exits with its status.

Scripts call these tools dozens of times per run, so start-up is what costs: only built-in modules are
imported (`_socket`, `marshal`; `socket` and `json` would double the start-up time). Request and reply
travel in `marshal` format, which both ends read with the same interpreter (KCLUSTER_TWIN_PYTHON).
"""

import _socket
import marshal
import os
import sys

FILE_FLAGS = ("--config", "--kubeconfig", "-f", "--filename")
ENV_PREFIXES = ("KCLUSTER_", "KUBECONFIG", "AWS_DEFAULT_REGION", "AWS_REGION", "HOME", "ETCDCTL_")
# etcdctl takes its certificate files from these variables.
FILE_VARIABLES = ("KUBECONFIG", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY")


def named_paths(argv):
    for index, arg in enumerate(argv):
        if arg.startswith("file://"):
            yield arg[len("file://") :]
        elif index > 0 and argv[index - 1] in FILE_FLAGS:
            yield arg
        elif "=" in arg and arg.split("=", 1)[0] in FILE_FLAGS:
            yield arg.split("=", 1)[1]
    for variable in FILE_VARIABLES:
        if os.environ.get(variable):
            yield os.environ[variable]


def file_contents(argv):
    files = {}
    for path in named_paths(argv):
        if path == "-" or "://" in path:
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                files[path] = handle.read()
        except OSError:
            pass
    return files


def main():
    tool, argv = sys.argv[1], sys.argv[2:]
    socket_path = os.environ.get("KCLUSTER_TWIN_SOCKET")
    if not socket_path:
        sys.stderr.write(f"{tool} (kcluster twin): KCLUSTER_TWIN_SOCKET is not set\n")
        return 70
    request = {
        "tool": tool,
        "argv": argv,
        "env": {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)},
        "cwd": os.getcwd(),
        "stdin": sys.stdin.read() if "-" in argv else "",
        "files": file_contents(argv),
    }
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        connection.sendall(marshal.dumps(request))
        connection.shutdown(_socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    finally:
        connection.close()
    reply = marshal.loads(b"".join(chunks))  # noqa: S302 - the twin's own reply on a private socket
    sys.stdout.write(reply["stdout"])
    sys.stderr.write(reply["stderr"])
    return reply["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
