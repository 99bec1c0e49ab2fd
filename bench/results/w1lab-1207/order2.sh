#!/bin/bash
# order2.sh ROUNDS: each build's 100/s run right after the other build's overload burst, the builds' order alternating by round.
cd /tmp/w1lab
PM=$(head -1 pg/data/postmaster.pid); KEY=$(cat key.txt)
declare -A PORT=([base]=18081 [ours]=18082) OTHER=([base]=ours [ours]=base)
for r in $(seq 1 $1); do
  if [ $((r%2)) = 1 ]; then order="base ours"; else order="ours base"; fi
  for b in $order; do
    o=${OTHER[$b]}
    ./w1driver -url http://127.0.0.1:${PORT[$o]}/graphql -key $KEY -rate 0 -c 64 -d 6s -server $(cat srv-$o.pid) -pm $PM -label "burst $o" > burst-$o-$r.txt
    sleep 2.5
    ./w1driver -url http://127.0.0.1:${PORT[$b]}/graphql -key $KEY -rate 100 -d 6s -server $(cat srv-$b.pid) -pm $PM -label "r$r $b afterburst"
  done
done
