"""`kiosk scan IMAGE...`: pictures through the camera's pipeline, per file what was found."""

from __future__ import annotations

import json

import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("zxingcpp")
pytest.importorskip("pyzbar.pyzbar")

import barcode_images as bi  # noqa: E402
from kiosk.cli import main  # noqa: E402


@pytest.fixture
def pictures(tmp_path):
    files = {
        "phone.png": bi.sample("11110100000001", "QRCODE", "dark-mode"),
        "label.jpg": bi.sample("EM0000000025", "CODE39", "rotated"),
        "web.png": bi.sample("https://example.org/", "QRCODE"),
        "desk.png": bi.empty(2),
    }
    for name, image in files.items():
        assert cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "notes.txt").write_text("not a picture")
    return tmp_path


def test_scan_prints_codes_and_whether_the_kiosk_takes_them(pictures, capsys, monkeypatch):
    monkeypatch.chdir(pictures)  # no config.toml here: the defaults
    assert main(["scan", "phone.png", "label.jpg"]) == 0
    out = capsys.readouterr().out
    assert "phone.png: 1 code" in out and "QRCODE   '11110100000001'  member" in out
    assert "label.jpg: 1 code" in out and "CODE39   'EM0000000025'  item" in out


def test_scan_json_one_object_per_file(pictures, capsys, monkeypatch):
    monkeypatch.chdir(pictures)
    status = main(["scan", "--json", "phone.png", "web.png", "desk.png"])
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1  # some pictures hold nothing the kiosk would take
    assert [r["file"] for r in reports] == ["phone.png", "web.png", "desk.png"]
    [phone] = reports[0]["codes"]
    assert phone["text"] == "11110100000001" and phone["symbology"] == "QRCODE" and phone["accepted"] == "member"
    assert reports[1]["codes"][0]["text"] == "https://example.org/" and reports[1]["codes"][0]["accepted"] is None
    assert reports[2]["codes"] == []


def test_scan_names_files_it_cannot_read(pictures, capsys, monkeypatch):
    monkeypatch.chdir(pictures)
    assert main(["scan", "notes.txt", "missing.png", "phone.png"]) == 2
    out = capsys.readouterr().out
    assert "notes.txt: not a picture" in out
    assert "missing.png: cannot be read" in out
    assert "phone.png: 1 code" in out


def test_scan_uses_the_configs_decoders_and_patterns(pictures, capsys):
    config = pictures / "kiosk.toml"
    config.write_text('[identifiers]\nmember_patterns = ["\\\\d{11}"]\n'
                      '[devices.scanner]\nsymbologies = ["CODE39"]\n')
    assert main(["scan", "--config", str(config), "--json", str(pictures / "phone.png"),
                 str(pictures / "label.jpg")]) == 1
    phone, label = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert phone["codes"] == []  # QR is not among the symbologies
    assert label["codes"][0]["accepted"] == "item"
