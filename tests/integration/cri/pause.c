/* The pod sandbox's process for the CRI tests: it holds the pod's
 * namespaces and does nothing else. It sleeps until SIGTERM or SIGINT (a
 * clean exit 0, so StopPodSandbox stops it without a kill) and, as PID 1 of
 * the pod, reaps whatever child is reparented to it. Built with
 * gcc -static -Os at test time and put in an image by imagegen. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = stop;
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    for (;;)
        pause();
}
