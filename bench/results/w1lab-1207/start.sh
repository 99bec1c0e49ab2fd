#!/bin/bash
# start.sh BUILD PORT: start segbench-BUILD _serve-ours on PORT, pid in srv-BUILD.pid
cd /tmp/w1lab
URL="postgres://postgres:pw@127.0.0.1:55440/segments?sslmode=disable"
nohup ./segbench-$1 _serve-ours "$URL" 127.0.0.1:$2 8 > srv-$1.log 2>&1 &
echo $! > srv-$1.pid
