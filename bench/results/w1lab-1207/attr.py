import re,sys,glob,statistics as st
# per-run attribution of PostgreSQL CPU (ms/request) by whose backend it was
res={}
for f in sorted(glob.glob('per-*-*.txt')):
    m=re.match(r'per-(\w+)-(\d+)\.txt',f); b,r=m[1],int(m[2])
    try: ss=open(f'ss-{b}-{r}.txt').read()
    except: continue
    port2proc={}
    for l in ss.splitlines():
        mm=re.search(r'127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:55440.*users:\(\("([^"]+)"',l)
        if mm: port2proc[mm[1]]=mm[2]
    act={}
    for l in open(f'act-{b}-{r}.txt'):
        p=l.rstrip('\n').split('|')
        if len(p)>=4: act[p[0]]=p[3]
    cat={'own':0,'own_limiter':0,'other':0,'bg':0,'pm':0}
    for l in open(f):
        pid,ms,cmd=(l.rstrip('\n').split('\t')+[''])[:3]; ms=float(ms)
        if pid=='-1': cat['pm']+=ms; continue
        mm=re.search(r'\((\d+)\)',cmd)
        if mm and mm[1] in port2proc:
            if port2proc[mm[1]]==f'segbench-{b}':
                q=act.get(pid,'')
                if 'rate_limit' in q or q.strip() in ('','-- ping',';'): 
                    cat['own_limiter' if 'rate_limit' in q else 'own']+=ms
                else: cat['own']+=ms
            else: cat['other']+=ms
        elif mm: cat['other']+=ms
        else: cat['bg']+=ms
    res.setdefault(sys.argv[1] if len(sys.argv)>1 else 'all',[]).append((b,r,cat))
for k,v in res.items():
    for b in ('base','ours'):
        rows=[c for bb,r,c in v if bb==b]
        if not rows: continue
        print(b, {n: round(st.median([c[n] for c in rows]),3) for n in rows[0]}, 'n',len(rows))
