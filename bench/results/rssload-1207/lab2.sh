#!/bin/bash
# lab2.sh ROUNDS "STEPS": per round, builds alternating (order flipped every round), each a fresh
# server: as one segbench repetition: VmHWM reset, 2 s + 5 s at 100/s (the fixed rate's peak),
# then the SLO search's 3-s steps STEPS without a reset (the repetition's peak is the last line's
# VmHWM), then 3 s later again reset, 2 s + 5 s at 100/s (the next repetition's fixed-rate peak).
set -u
cd /tmp/rsslab
ROUNDS=$1; STEPS=$2
KEY=$(cat key.txt)
declare -A PORT=([old]=18091 [new]=18092) PP=([old]=6071 [new]=6072)
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for b in $order; do
    ./start.sh $b ${PORT[$b]} ${PP[$b]}; sleep 1.5
    pid=$(cat srv-$b.pid)
    D="./bin/rssdriver -url http://127.0.0.1:${PORT[$b]}/graphql -key $KEY -pid $pid -pprof 127.0.0.1:${PP[$b]}"
    $D -rate 100 -d 2s -label "r$r $b warm" > /dev/null
    $D -rate 100 -d 5s -reset=false -label "r$r $b fixed-fresh"
    first=1
    for s in $STEPS; do
      if [ $first = 1 ]; then $D -rate $s -d 3s -label "r$r $b step" -out prof/l2-r$r-$b; first=0
      else $D -rate $s -d 3s -reset=false -label "r$r $b step" -out prof/l2-r$r-$b; fi
    done
    sleep 3
    $D -rate 100 -d 2s -label "r$r $b warm2" > /dev/null
    $D -rate 100 -d 5s -reset=false -label "r$r $b fixed-after"
    kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done
    sleep 1
  done
done
