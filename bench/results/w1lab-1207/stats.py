import sys,re,statistics as st
rows={}
for l in open(sys.argv[1]):
    m=re.match(r'r(\d+) (\S+) .*srv_ms/req=([\d.]+) pg_ms/req=([\d.]+) p50=([\d.]+).*?(?:rps=)?',l)
    if not m: continue
    r,b,s,p,p50=int(m[1]),m[2],float(m[3]),float(m[4]),float(m[5])
    rps=float(re.search(r'rps=([\d.]+)',l)[1])
    rows.setdefault(b,[]).append((r,s,p,p50,rps))
for b,v in rows.items():
    for i,name in enumerate(['srv','pg','p50','rps']):
        xs=[x[i+1] for x in v]
        print(f"{b:8} {name:4} median {st.median(xs):.3f} min {min(xs):.3f} max {max(xs):.3f} n={len(xs)}")
bs=list(rows)
if len(bs)==2:
    a,b=bs
    ra={x[0]:x for x in rows[a]}; rb={x[0]:x for x in rows[b]}
    for i,name in enumerate(['srv','pg','p50','rps']):
        rat=[rb[r][i+1]/ra[r][i+1] for r in ra if r in rb]
        print(f"{b}/{a} {name}: per-round ratio median {st.median(rat):.3f} ({min(rat):.3f}-{max(rat):.3f})")
