#!/bin/bash
# start.sh BUILD PORT PPROFPORT: segbench-BUILD _serve-ours as segbench runs it, pid in srv-BUILD.pid
cd /tmp/rsslab
URL="postgres://postgres:pw@127.0.0.1:55441/segments?sslmode=disable"
SEGBENCH_PPROF=127.0.0.1:$3 nohup ./bin/segbench-$1 _serve-ours "$URL" 127.0.0.1:$2 8 > srv-$1.log 2>&1 &
echo $! > srv-$1.pid
