"""A node tool (kubeadm, kubectl, systemctl, aws, etcdctl, sleep) in a twin sandbox: the reference client.

The shell wrappers next to it run the compiled client (_fake_tool.c, built by twin/node/toolclient.py),
or this one as `python -I -S _fake_tool.py <tool> <args...>` where no C compiler is found; both do the
same. It sends the call (argv, a few environment variables, the working directory, stdin when a tool
reads "-", and the contents of the files the arguments name) to the twin's node server on the Unix
socket $KCLUSTER_TWIN_SOCKET, then prints the reply's stdout and stderr and exits with its status.

Only built-in modules are imported (`_socket`; `socket` and `json` would double the start-up time).
Request and reply are netstrings (twin/node/wire.py, which this file cannot import: it runs isolated).
"""

import _socket
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


def netstring(value):
    data = value.encode()
    return b"%d:%b," % (len(data), data)


def encode_request(tool, cwd, stdin, argv, env, files):
    parts = [tool, cwd, stdin, str(len(argv)), *argv]
    for pairs in (env, files):
        parts.append(str(len(pairs)))
        for name, value in pairs.items():
            parts += [name, value]
    return b"".join(netstring(part) for part in parts)


def decode_reply(raw):
    values, offset = [], 0
    while offset < len(raw):
        colon = raw.index(b":", offset)
        end = colon + 1 + int(raw[offset:colon])
        values.append(raw[colon + 1 : end].decode())
        offset = end + 1
    exit_code, stdout, stderr = values
    return int(exit_code), stdout, stderr


def main():
    tool, argv = sys.argv[1], sys.argv[2:]
    socket_path = os.environ.get("KCLUSTER_TWIN_SOCKET")
    if not socket_path:
        sys.stderr.write(f"{tool} (kcluster twin): KCLUSTER_TWIN_SOCKET is not set\n")
        return 70
    request = encode_request(
        tool,
        os.getcwd(),
        sys.stdin.read() if "-" in argv else "",
        argv,
        {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)},
        file_contents(argv),
    )
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        connection.sendall(request)
        connection.shutdown(_socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    finally:
        connection.close()
    exit_code, stdout, stderr = decode_reply(b"".join(chunks))
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
