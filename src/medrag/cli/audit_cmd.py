"""``audit verify`` / ``audit review`` / ``audit head``: the answer audit trail."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import Formatter, add_key_options, audit_key, check_text, dump_json, write_text


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit import AuditLog, verify_audit_log

    key = audit_key(args)
    if args.audit_command == "verify":
        res = verify_audit_log(args.log, key=key, witness=args.witness)
        if args.json:
            dump_json({"ok": res.ok, "entries": res.entries, "authenticated": res.authenticated,
                       "problems": list(res.problems), "notes": list(res.notes)})
            return 0 if res.ok else 1
        how = "authenticated with the key" if res.authenticated else "hash chain only (no key given)"
        if res.ok:
            lines = [f"{args.log}: {res.entries} entries intact ({how})"]
        else:
            lines = [f"{args.log}: {len(res.problems)} problem(s) in {res.entries} entries ({how})"]
            lines += [f"  {p}" for p in res.problems]
        lines += [f"  note: {n}" for n in res.notes]
        write_text("".join(x + "\n" for x in lines))
        return 0 if res.ok else 1
    log = AuditLog(args.log, key=key)
    if args.audit_command == "head":
        head = log.head()
        dump_json(head)
        return 0
    for name in ("reviewer", "reason", "new_text"):
        check_text(name.replace("_", " "), getattr(args, name))
    entry = log.review(
        args.answer, args.action, reviewer=args.reviewer, reason=args.reason,
        sentence=args.sentence, new_text=args.new_text,
    )
    if args.json:
        dump_json(entry)
    else:
        write_text(f"review recorded as entry {entry['seq']} ({entry['hash'][:16]})\n")
    return 0


def add_audit(sub: Any, add: Any) -> None:
    p = add("audit", "verify an answer audit log, append a clinician's review, or export its head", cmd_audit)
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", title="actions")
    asub.required = True
    v = asub.add_parser("verify", help="check the hash chain, the MACs (with a key) and the head record",
                        formatter_class=Formatter)
    v.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    v.add_argument("--witness", metavar="FILE", help="also check against a head record kept elsewhere ('audit head')")
    add_key_options(v)
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    r = asub.add_parser("review", help="append a review of a recorded answer", formatter_class=Formatter)
    r.add_argument("log", metavar="LOG", help="the audit log (JSON Lines); it must exist")
    r.add_argument("--answer", required=True, metavar="HASH", help="the hash of the answer's entry")
    r.add_argument("--action", required=True, choices=("accept", "reject", "edit"))
    r.add_argument("--reviewer", required=True, help="who reviews")
    r.add_argument("--reason", required=True, help="why")
    r.add_argument("--sentence", type=int, metavar="N", help="the sentence reviewed (0-based), if not the whole answer")
    r.add_argument("--new-text", metavar="TEXT", help="the edited sentence (with --action edit)")
    add_key_options(r)
    r.add_argument("--json", action="store_true", help="print the entry as JSON")
    h = asub.add_parser("head", help="print the head record (entry count, last hash, MAC) to keep as a witness",
                        formatter_class=Formatter)
    h.add_argument("log", metavar="LOG", help="the audit log (JSON Lines)")
    add_key_options(h)
