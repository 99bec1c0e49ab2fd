# stats.py LOG...: tables of lab.sh's (one overload run a line) and lab2.sh's (a repetition's runs) logs.
import re, sys, statistics as st
from collections import defaultdict

def parse(l):
    m = re.match(r'(r\d+) (\w+) (\S+ )?rate=(\d+)', l)
    if not m:
        return None
    d = dict(round=m[1], build=m[2], kind=(m[3] or '').strip(), rate=int(m[4]))
    for k in ['n', 'ok', 'e503', 'eother']:
        d[k] = int(re.search(r' %s=(\d+)' % k, l)[1])
    d['peak'] = float(re.search(r'peak\(VmHWM\)=(\d+)', l)[1])
    d['rss_end'] = float(re.search(r'rss_end=(\d+)', l)[1])
    h = l.split('at highest sample')[1]
    for k in ['sockets', 'goroutines', 'heapalloc', 'stack', 'nextgc']:
        d['hs_' + k] = int(re.search(r' %s=(\d+)' % k, h)[1])
    mx = l.split('| max ')[1]
    d['max_sockets'] = int(re.search(r'sockets=(\d+)', mx)[1])
    d['max_gor'] = int(re.search(r'goroutines=(\d+)', mx)[1])
    return d

for f in sys.argv[1:]:
    rows = [r for r in map(parse, open(f)) if r]
    print('##', f)
    if all(r['kind'] == '' for r in rows):  # lab.sh
        print('| round | build | rate | peak MiB | sockets / goroutines / heap alloc / stacks MiB / next GC MiB at the highest sample | most sockets / goroutines | sent | served | 503 | other errors |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        for r in rows:
            print(f"| {r['round']} | {r['build']} | {r['rate']} | {r['peak']:.0f} | {r['hs_sockets']} / {r['hs_goroutines']} / {r['hs_heapalloc']} / {r['hs_stack']} / {r['hs_nextgc']} | {r['max_sockets']} / {r['max_gor']} | {r['n']} | {r['ok']} | {r['e503']} | {r['eother']} |")
        by = defaultdict(list)
        for r in rows:
            by[(r['rate'], r['build'])].append(r['peak'])
        for k, v in sorted(by.items()):
            print(f"median peak {k}: {st.median(v):.0f} ({min(v):.0f}-{max(v):.0f}) n={len(v)}")
        continue
    reps = defaultdict(list)
    for r in rows:
        reps[(r['round'], r['build'])].append(r)
    print('| round | build | fixed rate peak, fresh | repetition peak MiB | most sockets / goroutines | served | 503 | other errors | RSS after | next fixed rate peak |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    summ = defaultdict(lambda: defaultdict(list))
    for (rd, b), rs in reps.items():
        fresh = [r for r in rs if r['kind'] == 'fixed-fresh'][0]
        after = [r for r in rs if r['kind'] == 'fixed-after'][0]
        steps = [r for r in rs if r['kind'] == 'step']
        peak = steps[-1]['peak']
        vals = dict(fresh=fresh['peak'], peak=peak, socks=max(s['max_sockets'] for s in steps), gor=max(s['max_gor'] for s in steps),
                    ok=sum(s['ok'] for s in steps), e503=sum(s['e503'] for s in steps), eo=sum(s['eother'] for s in steps),
                    end=steps[-1]['rss_end'], after=after['peak'])
        for k, v in vals.items():
            summ[b][k].append(v)
        print(f"| {rd} | {b} | {vals['fresh']:.0f} | {peak:.0f} | {vals['socks']} / {vals['gor']} | {vals['ok']} | {vals['e503']} | {vals['eo']} | {vals['end']:.0f} | {vals['after']:.0f} |")
    for b, m in summ.items():
        print(b, ' '.join(f"{k}={st.median(v):.0f}({min(v):.0f}-{max(v):.0f})" for k, v in m.items()))
