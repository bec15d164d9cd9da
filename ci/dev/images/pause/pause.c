/*
 * Stand-in for registry.k8s.io/pause, written for jupyterhub-ds's local images (ci/dev/images.py).
 *
 * A pod sandbox needs a process that holds its namespaces and does nothing: this one sleeps until
 * SIGTERM or SIGINT and exits 0, and, as PID 1 of a shared PID namespace, reaps orphaned children
 * (SIGCHLD) so they do not stay zombies. Built static (gcc -static), so the image is FROM scratch.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    struct sigaction stop, child;

    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("pause (jupyterhub-ds stand-in for registry.k8s.io/pause)\n");
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "Warning: pause should be the first process\n");
    }
    memset(&stop, 0, sizeof stop);
    stop.sa_handler = on_stop;
    if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0) {
        return 1;
    }
    memset(&child, 0, sizeof child);
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &child, NULL) < 0) {
        return 2;
    }
    for (;;) {
        pause();
    }
}
