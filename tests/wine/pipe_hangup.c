/* A pipe client that misbehaves: hangs up mid-line, then sends a request the agent does not
   know and prints the answer. argv[1]: the agent's pipe name. */
#include <windows.h>
#include <stdio.h>
#include <string.h>

static HANDLE open_pipe(const char *name) {
    if (!WaitNamedPipeA(name, 10000)) return INVALID_HANDLE_VALUE;
    return CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
}

int main(int argc, char **argv) {
    DWORD n = 0, got = 0;
    char buf[4096];
    const char *half = "{\"op\":\"request_admin\",\"minu";
    const char *bad = "{\"op\":\"become_root\"}\n";
    HANDLE h;
    if (argc < 2) return 2;
    h = open_pipe(argv[1]);
    if (h == INVALID_HANDLE_VALUE) return 10;
    WriteFile(h, half, (DWORD)strlen(half), &n, NULL);
    CloseHandle(h);
    h = open_pipe(argv[1]);
    if (h == INVALID_HANDLE_VALUE) return 11;
    WriteFile(h, bad, (DWORD)strlen(bad), &n, NULL);
    if (!ReadFile(h, buf, sizeof buf - 1, &got, NULL)) return 12;
    buf[got] = 0;
    printf("%s", buf);
    CloseHandle(h);
    return 0;
}
