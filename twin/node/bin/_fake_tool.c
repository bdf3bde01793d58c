/* A node tool (kubeadm, kubectl, systemctl, aws, etcdctl, sleep) in a twin sandbox: the compiled client.
 *
 * Started by the shell wrappers next to it as `<client> <tool> <args...>`; does exactly what
 * _fake_tool.py (the reference client, used where no C compiler is found) does, without starting an
 * interpreter: scripts call these tools several times per run, on every node, so start-up is the cost.
 * It sends the call (argv, a few environment variables, the working directory, stdin when a tool reads
 * "-", and the contents of the files the arguments name) to the twin's node server on the Unix socket
 * $KCLUSTER_TWIN_SOCKET, then prints the reply's stdout and stderr and exits with its status.
 *
 * Wire format (twin/node/wire.py): netstrings, "<length>:<bytes>,". The request is tool, cwd, stdin,
 * then a count and the argv items, a count and the environment's name/value pairs, a count and the
 * files' path/content pairs. The reply is exit code, stdout, stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_INTERNAL 70

extern char **environ;

static const char *FILE_FLAGS[] = {"--config", "--kubeconfig", "-f", "--filename", NULL};
static const char *ENV_PREFIXES[] = {"KCLUSTER_", "KUBECONFIG", "AWS_DEFAULT_REGION", "AWS_REGION",
                                     "HOME", "ETCDCTL_", NULL};
static const char *FILE_VARIABLES[] = {"KUBECONFIG", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", NULL};

typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} buffer;

static const char *tool_name = "tool";

static void die(const char *what) {
    fprintf(stderr, "%s (kcluster twin): %s: %s\n", tool_name, what, strerror(errno));
    exit(EXIT_INTERNAL);
}

static void append(buffer *out, const char *data, size_t length) {
    if (out->length + length + 1 > out->capacity) {
        size_t capacity = out->capacity ? out->capacity : 4096;
        while (out->length + length + 1 > capacity) capacity *= 2;
        out->data = realloc(out->data, capacity);
        if (!out->data) die("out of memory");
        out->capacity = capacity;
    }
    memcpy(out->data + out->length, data, length);
    out->length += length;
    out->data[out->length] = '\0';
}

static void netstring(buffer *out, const char *data, size_t length) {
    char prefix[32];
    int written = snprintf(prefix, sizeof prefix, "%zu:", length);
    append(out, prefix, (size_t)written);
    append(out, data, length);
    append(out, ",", 1);
}

static void netstring_text(buffer *out, const char *text) { netstring(out, text, strlen(text)); }

static void netstring_count(buffer *out, size_t count) {
    char text[32];
    snprintf(text, sizeof text, "%zu", count);
    netstring_text(out, text);
}

/* The whole of a file descriptor's contents; 0 on a read error. */
static int read_all(int fd, buffer *out) {
    char chunk[65536];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got == 0) return 1;
        if (got < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        append(out, chunk, (size_t)got);
    }
}

static int in_list(const char *value, const char **list) {
    for (; *list; list++)
        if (strcmp(value, *list) == 0) return 1;
    return 0;
}

static int has_prefix(const char *value, const char **prefixes) {
    for (; *prefixes; prefixes++)
        if (strncmp(value, *prefixes, strlen(*prefixes)) == 0) return 1;
    return 0;
}

/* The file path an argument names, or NULL (same rules as _fake_tool.py's named_paths). */
static const char *named_path(char **args, int index) {
    const char *arg = args[index];
    if (strncmp(arg, "file://", 7) == 0) return arg + 7;
    if (index > 0 && in_list(args[index - 1], FILE_FLAGS)) return arg;
    const char *equals = strchr(arg, '=');
    if (equals) {
        for (const char **flag = FILE_FLAGS; *flag; flag++) {
            size_t length = strlen(*flag);
            if ((size_t)(equals - arg) == length && strncmp(arg, *flag, length) == 0) return equals + 1;
        }
    }
    return NULL;
}

/* Adds path and contents to `files` (one pair more in *count), unless unreadable or not a local file. */
static void add_file(buffer *files, size_t *count, const char *path) {
    if (strcmp(path, "-") == 0 || strstr(path, "://")) return;
    FILE *handle = fopen(path, "rb");
    if (!handle) return;
    buffer contents = {0};
    int ok = read_all(fileno(handle), &contents);
    fclose(handle);
    if (ok) {
        netstring_text(files, path);
        netstring(files, contents.data ? contents.data : "", contents.length);
        (*count)++;
    }
    free(contents.data);
}

static buffer build_request(int argc, char **argv) {
    buffer request = {0}, files = {0}, stdin_data = {0};
    char **args = argv + 2;
    int nargs = argc - 2;
    int reads_stdin = 0;
    for (int i = 0; i < nargs; i++)
        if (strcmp(args[i], "-") == 0) reads_stdin = 1;
    if (reads_stdin && !read_all(STDIN_FILENO, &stdin_data)) die("reading stdin");
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) die("getcwd");

    netstring_text(&request, tool_name);
    netstring_text(&request, cwd);
    netstring(&request, stdin_data.data ? stdin_data.data : "", stdin_data.length);
    netstring_count(&request, (size_t)nargs);
    for (int i = 0; i < nargs; i++) netstring_text(&request, args[i]);

    size_t nenv = 0;
    for (char **entry = environ; *entry; entry++)
        if (strchr(*entry, '=') && has_prefix(*entry, ENV_PREFIXES)) nenv++;
    netstring_count(&request, nenv);
    for (char **entry = environ; *entry; entry++) {
        const char *equals = strchr(*entry, '=');
        if (!equals || !has_prefix(*entry, ENV_PREFIXES)) continue;
        netstring(&request, *entry, (size_t)(equals - *entry));
        netstring_text(&request, equals + 1);
    }

    size_t nfiles = 0;
    for (int i = 0; i < nargs; i++) {
        const char *path = named_path(args, i);
        if (path) add_file(&files, &nfiles, path);
    }
    for (const char **variable = FILE_VARIABLES; *variable; variable++) {
        const char *path = getenv(*variable);
        if (path && *path) add_file(&files, &nfiles, path);
    }
    netstring_count(&request, nfiles);
    if (files.length) append(&request, files.data, files.length);
    free(files.data);
    free(stdin_data.data);
    return request;
}

/* The next netstring of `reply` from *offset: its start and length; exits on a malformed reply. */
static const char *next_netstring(const buffer *reply, size_t *offset, size_t *length) {
    char *end = NULL;
    if (*offset >= reply->length) goto malformed;
    errno = 0;
    unsigned long long value = strtoull(reply->data + *offset, &end, 10);
    if (errno || end == reply->data + *offset || *end != ':') goto malformed;
    size_t start = (size_t)(end - reply->data) + 1;
    if (value > reply->length || start + value >= reply->length || reply->data[start + value] != ',')
        goto malformed;
    *length = (size_t)value;
    *offset = start + value + 1;
    return reply->data + start;
malformed:
    fprintf(stderr, "%s (kcluster twin): malformed reply from the node server\n", tool_name);
    exit(EXIT_INTERNAL);
}

static void write_all(int fd, const char *data, size_t length) {
    while (length) {
        ssize_t written = write(fd, data, length);
        if (written < 0) {
            if (errno == EINTR) continue;
            exit(EXIT_INTERNAL);
        }
        data += written;
        length -= (size_t)written;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOOL [ARGS...]\n", argv[0]);
        return EXIT_INTERNAL;
    }
    tool_name = argv[1];
    const char *socket_path = getenv("KCLUSTER_TWIN_SOCKET");
    if (!socket_path || !*socket_path) {
        fprintf(stderr, "%s (kcluster twin): KCLUSTER_TWIN_SOCKET is not set\n", tool_name);
        return EXIT_INTERNAL;
    }
    buffer request = build_request(argc, argv);

    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        die("KCLUSTER_TWIN_SOCKET");
    }
    strcpy(address.sun_path, socket_path);
    int connection = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connection < 0) die("socket");
    if (connect(connection, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
    write_all(connection, request.data, request.length);
    shutdown(connection, SHUT_WR);
    buffer reply = {0};
    if (!read_all(connection, &reply)) die("reading the reply");
    close(connection);

    size_t offset = 0, length = 0;
    const char *exit_text = next_netstring(&reply, &offset, &length);
    int exit_code = atoi(exit_text);
    const char *out = next_netstring(&reply, &offset, &length);
    write_all(STDOUT_FILENO, out, length);
    const char *err = next_netstring(&reply, &offset, &length);
    write_all(STDERR_FILENO, err, length);
    return exit_code;
}
