/* Roundtrip times one statement's round trip from a C process through libpq at a
 * fixed rate, as pgbench sends it; see roundtrip.go and README.md.
 *
 *   gcc -O2 -o roundtrip roundtrip.c -I/usr/include/postgresql -lpq
 *   ./roundtrip "$URL" W1.sql
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <libpq-fe.h>

static double now_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
	enum { N = 1000, RATE = 100 };
	static char query[65536];
	static double lat[N];
	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "%s", PQerrorMessage(c));
		return 1;
	}
	FILE *f = fopen(argv[2], "r");
	query[fread(query, 1, sizeof query - 1, f)] = 0;
	for (int i = 0; i < 200; i++)
		PQclear(PQexec(c, query));
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int i = 0; i < N; i++) {
		next.tv_nsec += 1000000000 / RATE;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		double start = now_ms();
		PGresult *r = PQexec(c, query);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "%s", PQerrorMessage(c));
			return 1;
		}
		PQclear(r);
		lat[i] = now_ms() - start;
	}
	qsort(lat, N, sizeof lat[0], cmp);
	printf("c libpq rate %d: p50 %.3f ms p90 %.3f p99 %.3f\n", RATE, lat[N / 2], lat[N * 9 / 10], lat[N * 99 / 100]);
	return 0;
}
