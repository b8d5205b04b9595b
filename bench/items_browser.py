#!/usr/bin/env python3
"""Times the admin items browser over HTTP (BENCHMARKS.md, "Items browser at
1,000,000 items"). Needs a server on 127.0.0.1:8093 serving task bench-export
and an admin "boss" with the password "a long passphrase"."""
import urllib.request, urllib.parse, http.cookiejar, re, time, sys
cj=http.cookiejar.CookieJar()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
op=urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cj), NoRedirect)
B='http://127.0.0.1:8093'
page=op.open(B+'/sign-in').read().decode()
csrf=re.search(r'name="csrf" value="([0-9a-f]+)"',page).group(1)
try:
    op.open(B+'/sign-in', data=urllib.parse.urlencode({"name":"boss","password":"a long passphrase","csrf":csrf}).encode())
except urllib.error.HTTPError as e:
    pass
def timed(path, n=5):
    ts=[]; body=''
    for _ in range(n):
        t=time.perf_counter(); body=op.open(B+path).read().decode(); ts.append((time.perf_counter()-t)*1000)
    ts.sort()
    return ts[len(ts)//2], max(ts), body
cases=[("first page","/admin/items?task=bench-export"),
       ("status=decided","/admin/items?task=bench-export&status=decided"),
       ("source=human","/admin/items?task=bench-export&source=human"),
       ("label=malignant","/admin/items?task=bench-export&label=malignant"),
       ("reviewer=ana","/admin/items?task=bench-export&reviewer=ana"),
       ("date range","/admin/items?task=bench-export&from=2026-11-28&to=2026-11-28"),
       ("no match (label=nothing)","/admin/items?task=bench-export&label=nothing"),
       ("item page","/admin/items/bench-export/item-00500000")]
for name,path in cases:
    med,mx,body=timed(path)
    print(f"| {name} | {med:.1f} ms | {mx:.1f} ms | {body.count('<tr')-1} |")
path="/admin/items?task=bench-export"; ts=[]
for i in range(200):
    t=time.perf_counter(); body=op.open(B+path).read().decode(); ts.append((time.perf_counter()-t)*1000)
    m=re.search(r'href="(/admin/items\?[^"]*after=[^"]*)"',body)
    if not m: break
    path=m.group(1).replace('&#38;','&').replace('&amp;','&')
ts.sort(); print(f"| next page ×{len(ts)} | {ts[len(ts)//2]:.1f} ms | {ts[-1]:.1f} ms | 50 |")
