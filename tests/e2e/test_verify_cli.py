"""``lienthong verify``: files and folders, exit codes, JSON, ETSI XML, HTML, the process pool.

Everything runs against the real test PKI (OCSP and CRL on 127.0.0.1). Most tests call the
command in this process through a throwaway parser (as ``exchange.cli`` will register it); one
runs it as its own process on a terminal, to see the fork pool, the progress bar and the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from lxml import html as lxml_html

from schemas import build_document
from signing import (
    KeySource,
    TrustSettings,
    add_verify_command,
    open_key,
    sign_package,
    validate_pdf,
)
from signing import batch as verify_cli
from signing.batch import detect_kind
from signing.reports import RUN_SCHEMA, report_to_dict
from signing.reports.etsi import NS_VR
from signing.reports.html import VERDICT_TEXT
from signing.validation.report import document_report_from_dict
from tests.support.attacks import (
    ATTACKS,
    Originals,
    flip_signed_byte,
    make_pdf,
    sign_pdf,
    signer_for,
)
from tests.support.pki import P12_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
PASSED, FAILED, INDET = "TOTAL-PASSED", "TOTAL-FAILED", "INDETERMINATE"


# ----- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(pki) -> dict[str, bytes]:
    """Documents shared by the tests (signing takes the time): name -> bytes."""
    clerk = signer_for(pki.identity("clerk"))
    signed = sign_pdf(make_pdf(), clerk)
    package = build_document(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49"],
        code_number="7",
        code_notation="VPCP",
        subject="Gói có chữ ký",
        attachments=[("qd.pdf", "application/pdf", signed), ("note.txt", "text/plain", b"x")],
    )
    with open_key(KeySource(p12=pki.identity("clerk").p12), P12_PASSWORD.decode()) as key:
        signed_package = sign_package(package, key)
    return {
        "valid": signed,
        "tampered": flip_signed_byte(signed),
        "unsigned": make_pdf(),
        "package": signed_package,
        "garbage": b"\x00\x01\x02 this is not a document \xff" * 10,
        "expired": sign_pdf(make_pdf(), signer_for(pki.identity("expired"))),
    }


@pytest.fixture(scope="module")
def trust_args(pki) -> list[str]:
    return ["--trust", str(pki.root_pem), "--intermediate", str(pki.issuing_pem)]


def put(folder: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative names, sub-folders allowed) under ``folder``."""
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


def run(*argv: str | Path) -> int:
    """``lienthong verify ARGV...`` in this process, through a parser like exchange.cli's."""
    parser = argparse.ArgumentParser(prog="lienthong")
    add_verify_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *map(str, argv)])
    return args.func(args)


def run_json(capsys, *argv: str | Path) -> tuple[int, dict]:
    capsys.readouterr()
    code = run("--json", *argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def by_name(document: dict) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in document["results"]}


# ----- exit codes and the JSON document ----------------------------------------------------------


def test_mixed_folder_fails_with_every_verdict_in_json(tmp_path, samples, trust_args, capsys):
    folder = put(
        tmp_path / "in",
        {
            "valid.pdf": samples["valid"],
            "sub/tampered.pdf": samples["tampered"],
            "unsigned.pdf": samples["unsigned"],
            "goi.edxml": samples["package"],
            "rac.pdf": samples["garbage"],
            "ignored.txt": samples["valid"],  # not a suffix walked in folders
        },
    )
    code, doc = run_json(capsys, *trust_args, "--jobs", "2", folder)
    assert code == 1
    assert doc["schema"] == RUN_SCHEMA
    results = by_name(doc)
    assert sorted(results) == ["goi.edxml", "rac.pdf", "tampered.pdf", "unsigned.pdf", "valid.pdf"]
    verdicts = {
        name: (r["kind"], r["indication"], r["sub_indication"]) for name, r in results.items()
    }
    assert verdicts == {
        "valid.pdf": ("pdf", PASSED, None),
        "tampered.pdf": ("pdf", FAILED, "HASH_FAILURE"),
        "unsigned.pdf": ("pdf", INDET, "SIGNED_DATA_NOT_FOUND"),
        "goi.edxml": ("package", PASSED, None),
        "rac.pdf": ("pdf", FAILED, "FORMAT_FAILURE"),
    }
    assert "neither a PDF" in results["rac.pdf"]["message"]
    assert results["rac.pdf"]["report"] is None
    assert results["valid.pdf"]["report"]["schema"] == "lienthong.validation-report/1"
    package = results["goi.edxml"]["report"]
    assert package["schema"] == "lienthong.package-validation-report/1"
    assert [a["indication"] for a in package["attachments"]] == [PASSED]
    summary = doc["summary"]
    assert (summary["files"], summary["passed"], summary["failed"], summary["indeterminate"]) == (
        5,
        2,
        2,
        1,
    )
    assert summary["exit_code"] == 1 and summary["jobs"] == 2
    assert summary["revocation"] == "soft-fail" and summary["validation_time"] is None


def test_only_valid_files_pass(tmp_path, samples, trust_args, capsys):
    folder = put(tmp_path, {"a/valid.pdf": samples["valid"], "b/goi.xml": samples["package"]})
    code, doc = run_json(capsys, *trust_args, folder)
    assert code == 0
    assert [r["indication"] for r in doc["results"]] == [PASSED, PASSED]


def test_valid_and_unsigned_is_indeterminate(tmp_path, samples, trust_args, capsys):
    put(tmp_path, {"valid.pdf": samples["valid"], "unsigned.pdf": samples["unsigned"]})
    code, doc = run_json(capsys, *trust_args, tmp_path / "valid.pdf", tmp_path / "unsigned.pdf")
    assert code == 2
    assert [r["indication"] for r in doc["results"]] == [PASSED, INDET]  # input order


def test_attacks_fail(tmp_path, pki, trust_args, capsys):
    """A couple of the catalogue's attacks, seen through the CLI."""
    clerk = signer_for(pki.identity("clerk"))
    signed = sign_pdf(make_pdf(), clerk)
    originals = Originals(signed, b"", b"", b"", b"")
    chosen = [a for a in ATTACKS if a.name in ("isa-page-content", "usf-garbage-cms")]
    put(tmp_path, {f"{a.name}.pdf": a.make(originals) for a in chosen})
    code, doc = run_json(capsys, *trust_args, "--jobs", "1", tmp_path)
    assert code == 1
    results = by_name(doc)
    for attack in chosen:
        result = results[f"{attack.name}.pdf"]
        assert result["indication"] == attack.indication, result["message"]
        assert result["sub_indication"] in attack.sub_indications


def test_kind_comes_from_content_not_name(tmp_path, samples, trust_args, capsys):
    put(tmp_path, {"scan.xml": samples["valid"], "goi.pdf": samples["package"]})
    code, doc = run_json(capsys, *trust_args, tmp_path / "scan.xml", tmp_path / "goi.pdf")
    assert code == 0
    assert [(r["kind"], r["indication"]) for r in doc["results"]] == [
        ("pdf", PASSED),
        ("package", PASSED),
    ]
    assert detect_kind(b"\xef\xbb\xbf<?xml version='1.0'?><a/>") == "package"
    assert detect_kind(b"junk before the header\n%PDF-1.7\n") == "pdf"
    assert detect_kind(b"PK\x03\x04") is None


def test_unreadable_files_are_results_not_tracebacks(tmp_path, samples, trust_args, capsys):
    put(tmp_path, {"empty.pdf": b"", "valid.pdf": samples["valid"]})
    code, doc = run_json(
        capsys, *trust_args, tmp_path / "missing.pdf", tmp_path / "empty.pdf", tmp_path
    )
    assert code == 1
    rows = [(Path(r["path"]).name, r["indication"], r["sub_indication"]) for r in doc["results"]]
    assert rows == [
        ("missing.pdf", FAILED, "FORMAT_FAILURE"),
        ("empty.pdf", FAILED, "FORMAT_FAILURE"),  # the folder does not list it twice
        ("valid.pdf", PASSED, None),
    ]
    assert "does not exist" in doc["results"][0]["message"]
    assert "empty" in doc["results"][1]["message"]


def test_odd_names_and_the_runs_own_outputs(tmp_path, samples, trust_args, capsys):
    """A file name that is not UTF-8 is shown with \\xNN; reports written inside the input
    folder are not verified on the next run."""
    folder = put(tmp_path, {"valid.pdf": samples["valid"]})
    (folder / os.fsdecode(b"ten-\xff.pdf")).write_bytes(samples["valid"])
    args = (*trust_args, "--etsi-xml", folder / "reports", "--html", folder / "run.html")
    for _ in range(2):
        code, doc = run_json(capsys, *args, folder)
        assert code == 0
        assert sorted(Path(r["path"]).name for r in doc["results"]) == [
            "ten-\\xff.pdf",
            "valid.pdf",
        ]
    assert "ten-\\xff.pdf" in (folder / "run.html").read_text("utf-8")
    assert sorted(p.name for p in (folder / "reports").iterdir()) == [
        "ten-_xff.etsi.xml",
        "valid.etsi.xml",
    ]
    assert run(*args, folder) == 0  # the table, too
    assert "2 file(s): 2 passed" in capsys.readouterr().out


def test_setup_errors_exit_3(tmp_path, samples, trust_args, capsys):
    put(tmp_path, {"valid.pdf": samples["valid"]})
    assert run(tmp_path) == 3
    assert "trust anchor" in capsys.readouterr().err
    assert run("--trust", tmp_path / "nope.pem", tmp_path) == 3
    assert run(*trust_args, "--at", "2024-01-01T00:00:00", tmp_path) == 3  # no time zone
    assert "time zone" in capsys.readouterr().err
    assert run(*trust_args, "--jobs", "0", tmp_path) == 3
    assert run(*trust_args, tmp_path / "no-such-folder" / "x") == 1  # a missing input is a result


# ----- time ---------------------------------------------------------------------------------------


def test_at_validates_an_expired_certificate_as_of_the_past(tmp_path, samples, trust_args, capsys):
    """Signed with a certificate that expired two days ago, no timestamp: today nothing proves
    when it was signed (INDETERMINATE); as of a month ago the certificate was valid."""
    put(tmp_path, {"expired.pdf": samples["expired"]})
    code, doc = run_json(capsys, *trust_args, tmp_path / "expired.pdf")
    assert code == 2
    assert doc["results"][0]["sub_indication"] == "OUT_OF_BOUNDS_NO_POE"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).isoformat()
    code, doc = run_json(capsys, *trust_args, "--at", past, tmp_path / "expired.pdf")
    assert code == 0, doc["results"][0]["message"]
    report = doc["results"][0]["report"]
    assert report["point_in_time"] and report["validation_time"].startswith(past[:10])
    assert doc["summary"]["validation_time"].startswith(past[:10])


# ----- ETSI XML and HTML ------------------------------------------------------------------------

EVIL = "<script>alert('x')<\\script>.pdf"
STATUS = "/".join(
    f"{{{NS_VR}}}{tag}"
    for tag in ("SignatureValidationReport", "SignatureValidationStatus", "MainIndication")
)


def test_etsi_xml_one_well_formed_report_per_pdf(tmp_path, samples, trust_args, capsys):
    folder = put(
        tmp_path / "in",
        {
            "valid.pdf": samples["valid"],
            "Quyết định số 1.pdf": samples["tampered"],
            EVIL: samples["unsigned"],
            "goi.edxml": samples["package"],
            "rac.pdf": samples["garbage"],
            "khac/valid.pdf": samples["valid"],  # same name in another folder
        },
    )
    out = tmp_path / "etsi"
    code, doc = run_json(capsys, *trust_args, "--etsi-xml", out, folder)
    assert code == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "valid.etsi.xml",
            "valid-2.etsi.xml",
            "Quyết_định_số_1.etsi.xml",
            "script_alert_x_script.etsi.xml",
            "goi--qd.etsi.xml",  # the package's PDF attachment
        ]
    ), names
    assert by_name(doc)["goi.edxml"]["etsi_xml"] == ["goi--qd.etsi.xml"]
    assert by_name(doc)["rac.pdf"]["etsi_xml"] == []
    verdicts = {}
    for path in out.iterdir():
        root = etree.fromstring(path.read_bytes())
        assert root.tag == f"{{{NS_VR}}}ValidationReport"
        main = root.find(STATUS)
        assert main is not None and main.text.startswith("urn:etsi:019102:mainindication:")
        verdicts[path.name] = main.text.rpartition(":")[2]
    assert verdicts["Quyết_định_số_1.etsi.xml"] == "total-failed"
    assert verdicts["script_alert_x_script.etsi.xml"] == "indeterminate"
    assert verdicts["goi--qd.etsi.xml"] == verdicts["valid.etsi.xml"] == "total-passed"


def test_html_one_page_with_verdicts_and_escaped_names(
    tmp_path, samples, trust_args, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # short relative paths in the table
    put(
        tmp_path / "in",
        {
            "valid.pdf": samples["valid"],
            "tampered.pdf": samples["tampered"],
            EVIL: samples["unsigned"],
            "goi.edxml": samples["package"],
        },
    )
    page_path = tmp_path / "out" / "run.html"
    assert run(*trust_args, "--html", page_path, "in") == 1
    page = page_path.read_text("utf-8")
    for indication in (PASSED, FAILED, INDET):
        vi, en, _ = VERDICT_TEXT[indication]
        assert f"{vi} / {en}" in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;\\script&gt;.pdf" in page
    tree = lxml_html.fromstring(page)
    assert len(tree.findall(".//article")) == 4
    assert "Tệp đính kèm / Attachment: qd.pdf" in tree.text_content()
    rows = tree.find(".//table[@class='run']").findall("tr")
    assert len(rows) == 1 + 4
    out = capsys.readouterr().out
    assert "tampered.pdf" in out and "HASH_FAILURE" in out  # the table, since no --json


def test_report_dict_round_trip(samples, pki):
    trust = TrustSettings(anchors=[pki.root_pem], intermediates=[pki.issuing_pem])
    for name in ("valid", "tampered", "unsigned"):
        report = validate_pdf(samples[name], trust)
        assert document_report_from_dict(report_to_dict(report)) == report


# ----- parallelism --------------------------------------------------------------------------------


def test_folders_use_the_process_pool(tmp_path, samples, trust_args, capsys, monkeypatch):
    pools: list[int] = []

    class Recording(verify_cli.ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(verify_cli, "ProcessPoolExecutor", Recording)
    files = {f"d{i}/valid.pdf": samples["valid"] for i in range(3)}
    files |= {"d3/tampered.pdf": samples["tampered"], "d4/unsigned.pdf": samples["unsigned"]}
    folder = put(tmp_path, files)
    code, doc = run_json(capsys, *trust_args, "--jobs", "2", folder)
    assert pools == [2]
    assert code == 1
    assert [r["indication"] for r in doc["results"]] == [PASSED] * 3 + [FAILED, INDET]
    code, _ = run_json(capsys, *trust_args, folder / "d0" / "valid.pdf")
    assert pools == [2] and code == 0  # one file: no pool


def test_command_in_its_own_process_on_a_terminal(tmp_path, samples, trust_args):
    """As users run it: fork pool, progress bar on the terminal (stderr), table on stdout."""
    folder = put(
        tmp_path,
        {f"{i:02d}.pdf": samples["valid"] for i in range(6)} | {"x.pdf": samples["tampered"]},
    )
    code = (
        "import argparse, sys\n"
        "from signing import add_verify_command\n"
        "parser = argparse.ArgumentParser(prog='lienthong')\n"
        "add_verify_command(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "150"}
    argv = [sys.executable, "-c", code, "verify", *trust_args, "--jobs", "2", "."]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=terminal, cwd=folder, env=env
    ) as process:
        os.close(terminal)
        seen = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            seen += chunk
        out = process.stdout.read().decode()
        assert process.wait(60) == 1
    os.close(controller)
    assert b"verifying" in seen and b"Traceback" not in seen
    assert "7 file(s): 6 passed, 1 failed, 0 indeterminate" in out
    assert "HASH_FAILURE" in out and "2 process(es)" in out


# ----- warnings in every summary; hard-fail without revocation data -----------------------------


def _rogue_tsa(pki):
    """A time-stamper whose certificate chains to the untrusted look-alike root."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    rogue = pki.identity("untrusted")
    key = asn1_keys.PrivateKeyInfo.load(
        rogue.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert = asn1_x509.Certificate.load(rogue.cert_der)
    return DummyTimeStamper(cert, key)


def _message_column(table: str) -> str:
    """The table's message cells, unfolded (rich wraps long text over several lines)."""
    cells = [line.split("│")[5] for line in table.splitlines() if line.count("│") == 6]
    return " ".join(" ".join(cells).split())


def test_summaries_show_every_warning_the_json_holds(tmp_path, pki, samples, trust_args, capsys):
    """A signature that passes with caveats (its timestamp untrusted, its revocation status not
    checked, PKCS#1 v1.5 after Circular 15) must not be summarised as plainly "valid"."""
    warned = sign_pdf(
        make_pdf(),
        signer_for(pki.identity("no_revinfo"), pss=False),
        timestamper=_rogue_tsa(pki),
    )
    files = put(tmp_path / "in", {"warned.pdf": warned, "clean.pdf": samples["valid"]})
    code, document = run_json(capsys, *trust_args, files)
    assert code == 0
    results = by_name(document)
    clean, item = results["clean.pdf"], results["warned.pdf"]
    (sig,) = item["report"]["signatures"]
    assert sig["indication"] == PASSED
    # what the JSON report says, in its fields and in the signature's messages
    assert sig["timestamps"][0]["trusted"] is False
    assert sig["revocation"]["checked"] is False
    assert sig["policy"]["level"] == "warning"
    said = sig["messages"]
    assert len(said) == 3, said
    assert any("signature timestamp is not trusted" in m for m in said)
    assert any("could not be checked" in m for m in said)
    assert any("PKCS#1 v1.5" in m for m in said)
    # the console table lists every one of them, and does not call the file plainly valid
    capsys.readouterr()
    assert run(*trust_args, files) == 0
    table = capsys.readouterr().out
    assert "3 warning(s)" in table and "2 passed (1 with warnings)" in table
    messages = _message_column(table)
    for message in said:
        assert " ".join(message.split()) in messages, message
    # and so does the HTML: in the run's table, in the file's own report and in its verdict
    page_path = tmp_path / "run.html"
    assert run(*trust_args, "--html", page_path, files) == 0
    tree = lxml_html.fromstring(page_path.read_text("utf-8"))
    rows = tree.find(".//table[@class='run']").findall("tr")
    run_row = next(tr for tr in rows if "warned.pdf" in tr.text_content())
    article = next(a for a in tree.findall(".//article") if "warned.pdf" in a.text_content())
    for message in said:
        assert message in run_row.text_content()
        assert f"{sig['field']}: {message}" in article.text_content()
    assert "VALID, WITH WARNINGS" in tree.find(".//div[@class='verdict warn']").text_content()
    assert "3 cảnh báo / warning(s)" in article.text_content()
    # the JSON summary line and the run's warnings say the same
    assert item["message"] == "1 signature(s) and timestamp(s) valid, with 3 warning(s)"
    assert item["warnings"] == [f"{sig['field']}: {m}" for m in said]
    assert any("names no OCSP responder" in w for w in item["warnings"])  # and why
    assert clean["warnings"] == [] and clean["message"].startswith("all 1 signature")
    assert document["summary"]["passed_with_warnings"] == 1
    # a package carrying that PDF passes with the same warnings, named by attachment
    package = build_document(
        sender="000.00.00.G22",
        recipients=["000.00.00.H49"],
        code_number="9",
        code_notation="VPCP",
        subject="Đính kèm có cảnh báo",
        attachments=[("warned.pdf", "application/pdf", warned)],
    )
    with open_key(KeySource(p12=pki.identity("clerk").p12), P12_PASSWORD.decode()) as key:
        put(tmp_path / "pkg", {"goi.edxml": sign_package(package, key)})
    code, document = run_json(capsys, *trust_args, tmp_path / "pkg")
    (result,) = document["results"]
    assert (code, result["indication"]) == (0, PASSED)
    assert result["message"] == "every signature passed, with 3 warning(s)"
    assert result["warnings"] == [f"attachment warned.pdf: {w}" for w in item["warnings"]]


def test_hard_fail_without_revocation_data_is_indeterminate(tmp_path, pki, trust_args, capsys):
    """A certificate naming no OCSP responder and no CRL passed hard-fail; it must not."""
    signed = sign_pdf(make_pdf(), signer_for(pki.identity("no_revinfo")))
    with open_key(KeySource(p12=pki.identity("no_revinfo").p12), P12_PASSWORD.decode()) as key:
        package = sign_package(
            build_document(
                sender="000.00.00.G22",
                recipients=["000.00.00.H49"],
                code_number="8",
                code_notation="VPCP",
                subject="Không có dữ liệu thu hồi",
            ),
            key,
        )
    files = put(tmp_path / "in", {"a.pdf": signed, "goi.edxml": package})
    for mode in ("hard-fail", "embedded-only"):
        code, document = run_json(capsys, *trust_args, "--revocation", mode, files)
        assert code == 2, (mode, document["results"])
        for result in document["results"]:
            # nothing to wait for: a constraint the chain cannot meet, not TRY_LATER
            want = (INDET, "CHAIN_CONSTRAINTS_FAILURE")
            assert (result["indication"], result["sub_indication"]) == want
        message = by_name(document)["a.pdf"]["message"]
        assert "names no OCSP responder and no CRL distribution point" in message
    code, document = run_json(capsys, *trust_args, "--revocation", "soft-fail", files)
    assert code == 0 and by_name(document)["a.pdf"]["warnings"]
    # a certificate that names its OCSP responder and CRL still passes hard-fail
    clean = sign_pdf(make_pdf(), signer_for(pki.identity("clerk")))
    code, document = run_json(
        capsys, *trust_args, "--revocation", "hard-fail", put(tmp_path / "ok", {"ok.pdf": clean})
    )
    assert code == 0, document["results"]
