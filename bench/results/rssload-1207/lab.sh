#!/bin/bash
# lab.sh ROUNDS RATES DUR [EXTRA_ENV]: per round, builds alternating (order flipped every round),
# for each rate: a fresh server (start.sh), 2 s at 100/s, then RATE for DUR; one line each.
set -u
cd /tmp/rsslab
ROUNDS=$1; RATES=$2; DUR=$3
KEY=$(cat key.txt)
declare -A PORT=([old]=18091 [new]=18092) PP=([old]=6071 [new]=6072)
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for rate in $RATES; do
    for b in $order; do
      ./start.sh $b ${PORT[$b]} ${PP[$b]}; sleep 1.5
      pid=$(cat srv-$b.pid)
      ./bin/rssdriver -url http://127.0.0.1:${PORT[$b]}/graphql -key $KEY -pid $pid -rate 100 -d 2s -label warm > /dev/null
      ./bin/rssdriver -url http://127.0.0.1:${PORT[$b]}/graphql -key $KEY -pid $pid -pprof 127.0.0.1:${PP[$b]} -rate $rate -d $DUR -label "r$r $b" -out prof/r$r-$b-$rate
      kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done
      sleep 1
    done
  done
done
