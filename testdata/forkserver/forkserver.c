/* forkserver: a forking server in miniature, for attach tests. After "go" on
 * stdin it serves N connections the way PostgreSQL's postmaster does: accept
 * (here: one end of a socketpair), fork a worker, close its own copy. Each
 * worker makes an epoll fd, opens a file, starts a thread and exits holding
 * all of them (the kernel releases them); the server reaps it. Then it forks
 * H workers that keep their connection and stay (the server closes both its
 * ends: the worker alone holds the handle), and prints each one's pid and
 * connection fd: "held PID FD". It then waits to be killed. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static void *idle(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/* accept_connection stands for accept(2): a socket the server did not have. */
static int __attribute__((noinline)) accept_connection(int *peer)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
	*peer = sv[1];
	return sv[0];
}

static void __attribute__((noinline)) serve(int conn)
{
	int ep = epoll_create1(0);
	int f = open("/etc/hostname", O_RDONLY);
	pthread_t t;
	pthread_create(&t, NULL, idle, NULL);
	(void)ep;
	(void)f;
	(void)conn;
	usleep(2000);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;
	int held = argc > 2 ? atoi(argv[2]) : 2;
	char go[8];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(go, sizeof go, stdin))
		return 1;
	for (int i = 0; i < n; i++) {
		int peer;
		int conn = accept_connection(&peer);
		pid_t pid = fork();
		if (pid == 0) {
			close(peer);
			serve(conn);
			exit(0); /* holding conn, the epoll fd, the file and the thread */
		}
		close(conn);
		close(peer);
		waitpid(pid, NULL, 0);
	}
	for (int i = 0; i < held; i++) {
		int peer;
		int conn = accept_connection(&peer);
		pid_t pid = fork();
		if (pid == 0) {
			close(peer);
			for (;;)
				pause();
		}
		close(conn);
		close(peer);
		printf("held %d %d\n", pid, conn);
		fflush(stdout);
	}
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
