#!/bin/bash
# lab.sh ROUNDS RATE DUR [C]: W1 against base and ours, both servers running (start.sh),
# the order alternating by round; RATE 0 is closed-loop with C workers.
set -u
cd /tmp/w1lab
export PGURL="postgres://postgres:pw@127.0.0.1:55440/segments?sslmode=disable"
ROUNDS=$1; RATE=$2; DUR=$3; C=${4:-4}
PM=$(head -1 /tmp/w1lab/pg/data/postmaster.pid)
KEY=$(cat key.txt)
declare -A PORT=([base]=18081 [ours]=18082)
Q() { psql -h /tmp/w1lab/pg -p 55440 -U postgres -d segments -XAtq -c "$1"; }
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) = 1 ]; then order="${BUILDS:-base ours}"; else order=$(echo ${BUILDS:-base ours} | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for b in $order; do
    spid=$(cat srv-$b.pid)
    Q "select pg_stat_statements_reset()" >/dev/null
    out=$(./w1driver -url http://127.0.0.1:${PORT[$b]}/graphql -key $KEY -rate $RATE -c $C -d $DUR -server $spid -pm $PM -label "r$r $b" -perpid per-$b-$r.txt)
    n=$(echo "$out" | sed 's/.* n=\([0-9]*\).*/\1/')
    calls=$(Q "select coalesce(sum(calls),0) from pg_stat_statements where query not like '%pg_stat_statements%'")
    echo "$out stmts/req=$(echo "scale=3; $calls/($n+200)" | bc)"
    Q "select pid, backend_type, backend_start > now() - interval '20 s' as new, left(regexp_replace(query, '\s+', ' ', 'g'), 60) from pg_stat_activity" > act-$b-$r.txt; ss -tnpH "( dport = :55440 )" > ss-$b-$r.txt; Q "select calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90) from pg_stat_statements order by calls desc limit 8" > pss-$b-$r.txt
  done
done
