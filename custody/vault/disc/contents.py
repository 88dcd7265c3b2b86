"""What an evidence disc carries beside the footage: the vault's signed record of its files, the
README, the case index, the written description (text and PDF) and the BagIt tag files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from custody.vault import keys
from custody.vault.disc import bag, description, verifier
from custody.vault.disc.plan import ExportRequest, PlannedItem
from custody.vault.items import format_item_id
from custody.vault.timestamps import local_display
from custody.vault.wording import Wording

RECORD_FORMAT = "custody-disc-record/1"

README_ENGLISH = """Evidence disc
=============

This disc holds footage exported from a custody evidence vault, as a BagIt bag
(RFC 8493): the files are under data/ (originals/ exactly as the recorder wrote
them, playable/ the copies made for viewing), their SHA-256 hashes are in
manifest-sha256.txt, and the written description is description.txt and
description.pdf. custody/record.json is the vault's audit record of these files,
signed with the vault's key (custody/public-key.pem).

To check the disc, on any computer with Python 3 (nothing else needed):

    python3 -I verify.py                       (from the disc's top folder)
    python3 -I /media/cdrom/verify.py /media/cdrom

It re-hashes every file, checks the audit events and the vault's signatures,
and prints OK, or FAILED with each problem named. Compare the signing key
fingerprint it prints with the one on the paper description in the case file.
Any BagIt validator (for example the Library of Congress "bagit" tool) can
check the bag's hashes too.
"""

README_CHINESE = """证据光盘
========

本光盘为从 custody 证据库导出的执法音视频，按 BagIt 格式（RFC 8493）存放：文件在 data/ 下
（originals/ 为执法记录仪写入的原始文件，playable/ 为供播放的副本），其 SHA-256 值在
manifest-sha256.txt，文字说明为 description.txt 和 description.pdf。custody/record.json
为证据库对这些文件的审计记录，已用证据库的密钥签名（custody/public-key.pem）。

核验方法：在任意装有 Python 3 的计算机上，于光盘根目录运行
    python3 -I verify.py
程序会重新计算每个文件的 SHA-256，核对审计记录及证据库签名，通过时输出 OK，
否则输出 FAILED 并列出问题。请将输出的签名公钥指纹与案卷中纸质说明上的指纹核对。
"""


class DiscContents:
    """Writes what each disc of one export carries beside its files (``write``)."""

    def __init__(
        self, vault, request: ExportRequest, export_id: str, discs: list[list[PlannedItem]], started_at: str
    ) -> None:
        self.vault = vault
        self.station = vault.settings.station
        self.wording = Wording(self.station.documents)
        self.pdf_font = Path(vault.settings.export.pdf_font)
        self.request = request
        self.export_id = export_id
        self.discs = discs
        self.started_at = started_at
        public_key = vault.audit.public_key
        self.public_key = public_key
        self.fingerprint = keys.public_key_fingerprint(public_key)

    def write(
        self, root: Path, disc: int, disc_items: list[PlannedItem], checkpoint: dict, started_seq: int
    ) -> None:
        """Write disc ``disc``'s record, key, verifier, README, index, description and bag under ``root``."""
        files = [f for entry in disc_items for f in entry.files]
        record = self._signed_record(disc, disc_items, checkpoint, started_seq)
        custody_folder = root / "custody"
        custody_folder.mkdir(mode=0o700, exist_ok=True)
        (custody_folder / "record.json").write_text(
            json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (custody_folder / "public-key.pem").write_bytes(keys.public_key_pem(self.public_key))
        shutil.copyfile(verifier.__file__, root / "verify.py")
        (root / "README.txt").write_text(disc_readme(self.wording), encoding="utf-8")
        (root / "case-index.txt").write_text(self.case_index(), encoding="utf-8")
        described = self.describe(disc, disc_items)
        (root / "description.txt").write_text(description.render_text(described), encoding="utf-8")
        description.render_pdf(described, self.pdf_font, root / "description.pdf")
        bag.write_bag(root, [(f.path, f.sha256) for f in files], self._bag_info(disc, files, described))

    def _signed_record(
        self, disc: int, disc_items: list[PlannedItem], checkpoint: dict, started_seq: int
    ) -> dict:
        """The vault's record of this disc's files and their audit events, signed by the vault's key."""
        vault = self.vault
        files = [f for entry in disc_items for f in entry.files]
        with vault.serialized():
            events = vault.audit.excerpt(
                [entry.item.number for entry in disc_items], [started_seq], checkpoint["seq"]
            )
        record = {
            "format": RECORD_FORMAT,
            "vault": vault.audit.vault_id,
            "station": self.station.name,
            "export": self.export_id,
            "disc": disc,
            "discs": len(self.discs),
            "public_key_fingerprint": self.fingerprint,
            "checkpoint": {
                "seq": checkpoint["seq"],
                "head": checkpoint["head_hash"],
                "at": checkpoint["signed_at"],
                "signature": checkpoint["signature"],
            },
            "files": [
                {
                    "path": f.path,
                    "role": f.role,
                    "item": format_item_id(f.item),
                    "number": f.item,
                    "sha256": f.sha256,
                    "size": f.size,
                }
                for f in files
            ],
            "events": events,
        }
        with vault.serialized():
            record["excerpt_signature"] = vault.audit.sign(verifier.excerpt_message(record))
        return record

    def _bag_info(self, disc: int, files: list, described: description.Description) -> list[tuple[str, str]]:
        request, discs = self.request, len(self.discs)
        return [
            ("Source-Organization", self.station.organisation or self.station.name),
            ("Bagging-Date", described.extraction_time[:10]),
            ("Payload-Oxum", bag.payload_oxum([f.size for f in files])),
            ("External-Identifier", self.export_id),
            ("Bag-Group-Identifier", f"{self.export_id} {request.case}"),
            ("Bag-Count", f"{disc} of {discs}"),
            ("External-Description", f"Evidence footage of case {request.case}, disc {disc} of {discs}"),
            ("Case-Number", request.case),
            ("Party", ", ".join(described.parties) or "-"),
            ("Handling-Officer", ", ".join(described.handling_officers) or "-"),
            ("Maker", request.maker),
            ("Extractor", request.extractor),
            ("Extraction-Time", described.extraction_time),
            ("Exporting-Station", self.station.name),
            ("Custody-Vault", self.vault.audit.vault_id),
            ("Custody-Key-Fingerprint", self.fingerprint),
        ]

    def case_index(self) -> str:
        """Every disc of the export and the files on it, for the case file."""
        w = self.wording
        lines = [
            f"{w('案件', 'Case')}: {self.request.case}",
            f"{w('导出', 'Export')}: {self.export_id}",
            f"{w('光盘数', 'Discs')}: {len(self.discs)}",
            "",
        ]
        for index, disc_items in enumerate(self.discs, start=1):
            lines.append(
                w(f"第 {index} 张光盘（共 {len(self.discs)} 张）", f"Disc {index} of {len(self.discs)}") + ":"
            )
            for entry in disc_items:
                for f in entry.files:
                    lines.append(f"  {entry.item.item_id}  {f.role:<8}  {f.sha256}  {f.path}")
            lines.append("")
        return "\n".join(lines)

    def describe(self, disc: int, disc_items: list[PlannedItem]) -> description.Description:
        """The written description of disc ``disc``: case, parties, officers, maker, extractor, each
        item with its hashes and checks, and the interruptions between its recordings."""
        vault, request = self.vault, self.request
        names = {officer.badge: officer.name for officer in vault.registry.officers()}

        def officer_text(badge: str | None) -> str:
            if not badge:
                return ""
            return f"{badge} {names[badge]}" if badge in names else badge

        items = [entry.item for entry in disc_items]
        return description.Description(
            case=request.case,
            parties=sorted({i.tags["party"] for i in items if i.tags.get("party")}),
            handling_officers=sorted(
                {officer_text(i.tags["officer"]) for i in items if i.tags.get("officer")}
            ),
            maker=request.maker,
            extractor=request.extractor,
            extraction_time=local_display(self.started_at, seconds=True),
            station=self.station.name,
            organisation=self.station.organisation,
            vault_id=vault.audit.vault_id,
            key_fingerprint=self.fingerprint,
            export_id=self.export_id,
            disc=disc,
            discs=len(self.discs),
            recorders=sorted({i.recorder_serial for i in items if i.recorder_serial}),
            items=[self._described_item(entry, officer_text) for entry in disc_items],
            interruptions=self._interruptions(disc_items),
            language=self.wording.language,
        )

    def _described_item(self, entry: PlannedItem, officer_text) -> description.DescribedItem:
        item, w = entry.item, self.wording
        facts = self.vault.media.facts(item) or {}
        duration = facts.get("duration")
        integrity = facts.get("integrity") or {}
        level = integrity.get("level")
        integrity_text = (
            f"{integrity.get('result')} ({w(f'{level} 检查', f'{level} check', joiner=' ')})"
            if integrity
            else w("尚未检查", "not checked yet")
        )
        if integrity.get("errors"):
            integrity_text += f": {integrity['errors'][0]}"
        original, playable = entry.files[0], None
        if entry.playable is not None and len(entry.files) > 1:
            made = entry.playable
            playable = description.DescribedFile(
                path=entry.files[1].path,
                sha256=made.sha256,
                size=made.size,
                made_how=(
                    f"{made.method}, {made.tool}, {local_display(made.finished_at, seconds=True)}; "
                    f"{w('参数', 'arguments')}: {' '.join(made.arguments)}"
                ),
            )
        return description.DescribedItem(
            item_id=item.item_id,
            original_name=item.original_name,
            recorder=item.recorder_serial or "",
            officer=officer_text(item.credited_officer or item.tags.get("officer")),
            recorded_start=local_display(item.recorded_start, seconds=True) if item.recorded_start else "",
            recorded_end=local_display(item.recorded_end, seconds=True) if item.recorded_end else "",
            duration=f"{duration:.3f} s" if isinstance(duration, int | float) else "",
            integrity=integrity_text,
            original=description.DescribedFile(original.path, original.sha256, original.size),
            playable=playable,
            no_playable_because="" if playable else why_no_playable(self.request, facts, w),
            important=item.important,
            document=self._document_text(item),
        )

    def _document_text(self, item) -> str:
        """What a written record or an archived case file is, for the description ("" for footage)."""
        from custody.rules import STAGES
        from custody.vault import casefiles

        w = self.wording
        if item.source == casefiles.ARCHIVE_SOURCE:
            return w("案卷封面及卷内目录", "case file cover and index")
        with self.vault.serialized():
            document = casefiles.document_row(self.vault.catalog, item.number)
        if document is None:
            return ""
        kind = self.vault.settings.cases.document_types.get(document.doc_type)
        stage = next(
            (w(zh, en, joiner=" ") for key, zh, en, _ in STAGES if key == document.stage), document.stage
        )
        pages = f", {document.pages} {w('页', 'pages')}" if document.pages else ""
        doc_type = w(document.doc_type, kind.english, joiner=" ") if kind else document.doc_type
        return f"{doc_type}; {stage}; {document.dated}{pages}"

    def _interruptions(self, disc_items: list[PlannedItem]) -> list[description.DescribedInterruption]:
        """Interruptions between two recordings both on this disc, with how each was explained."""
        exported, w = {entry.item.number for entry in disc_items}, self.wording
        found: dict[str, description.DescribedInterruption] = {}
        for entry in disc_items:
            for finding in self.vault.continuity.findings(item=entry.item):
                if finding.before_item in exported and finding.after_item in exported:
                    state = finding.state
                    if finding.state == "explained":
                        state = w(f"已说明（{finding.closed_by}）", f"explained by {finding.closed_by}",
                                  joiner=" ") + f": {finding.reason}"  # fmt: skip
                    elif finding.state == "open":
                        state = w("未说明", "not explained yet", joiner=" ")
                    found[finding.finding_id] = description.DescribedInterruption(
                        finding_id=finding.finding_id,
                        kind=finding.kind,
                        seconds=finding.seconds,
                        before=format_item_id(finding.before_item),
                        after=format_item_id(finding.after_item),
                        state=state,
                    )
        return [found[key] for key in sorted(found)]


def why_no_playable(request: ExportRequest, facts: dict, w: Wording) -> str:
    """Why an exported item has no playable copy on the disc, in words for the case file."""
    if not request.playable:
        return w("导出时选择仅原始文件", "exported with originals only (--no-playable)")
    if facts.get("photo"):
        return w("照片，原件即可查看", "a photo: the original is viewed as it is")
    if "unreadable" in facts:
        return f"{w('非可识别的音视频文件', 'not media ffmpeg can read')}: {facts['unreadable']}"
    error = (facts.get("playable") or {}).get("error")
    if error:
        return f"{w('无法制作', 'could not be made')}: {error}"
    if not facts:
        return w("媒体检查尚未完成", "the media check has not run yet")
    if not (facts.get("video_codec") or facts.get("audio_codec")):
        return w("无音视频内容", "no audio or video to play")
    return w("可播放副本尚未制作", "the playable copy has not been made yet")


def disc_readme(w: Wording) -> str:
    """The disc's README.txt: Chinese then English, or one of them."""
    return w(README_CHINESE, README_ENGLISH, joiner="\n")
