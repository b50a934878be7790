"""importomikeys: import Omi's Developer API keys from an NDJSON export of its Firestore ``dev_api_keys``."""

import json
import os
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError
from tqdm import tqdm

from apikeys import lifecycle
from apikeys.audit import Actor
from apikeys.importers import omi

from ..operator import write_note

PROGRESS_LINE_SECONDS = 5


class Command(BaseCommand):
    """``importomikeys FILE [--dry-run] [--prune] [--json] [--default-scopes CODES] [--unknown-scopes drop|skip]
    [--inactive-owners revoke|refuse] [--no-firebase] [--batch-size N]``."""

    help = (
        "Import Omi's Developer API keys from FILE, an export of Omi's Firestore collection dev_api_keys: "
        'one JSON document per line, {"id": "<document id>", "data": {<fields>}}, plain or gzip '
        "(- reads standard input). Every key then verifies here with its Omi secret, for its owner. "
        "Running it again changes only what changed. Refused lines are reported with their line "
        "number and the import goes on; the exit status is 1 when anything was refused. "
        "See docs/migrating-from-omi.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The NDJSON export, plain or .gz; - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Check everything and report, writing nothing.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help=(
                "Also revoke keys imported from Omi earlier whose documents are not in FILE (Omi deletes the "
                "keys it revokes). Keys issued in omikeys are never touched. Skipped if a line of FILE "
                "could not be read."
            ),
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")
        parser.add_argument(
            "--default-scopes",
            metavar="CODES",
            default=",".join(omi.CONTRACT_READ_SCOPES),
            help=(
                "Comma-separated scopes for keys Omi recorded without scopes (made before Omi had them, "
                "read-only then). Default: the four read scopes, %(default)s."
            ),
        )
        parser.add_argument(
            "--unknown-scopes",
            choices=["drop", "skip"],
            default="drop",
            help="A scope omikeys does not know: drop it from the key and report it (default), or skip the key.",
        )
        parser.add_argument(
            "--inactive-owners",
            choices=["revoke", "refuse"],
            default="revoke",
            help=(
                "Keys whose owner's Firebase account is disabled or deleted (or whose user is deactivated "
                "here): import them revoked (default), or refuse new ones. "
                "A key imported earlier is revoked in both modes."
            ),
        )
        parser.add_argument(
            "--no-firebase",
            action="store_false",
            dest="ask_firebase",
            help=(
                "Do not ask Firebase about the owners: no emails, and no check for disabled or deleted "
                "accounts. By default Firebase is asked, 100 uids a call, and the import stops if it cannot be."
            ),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=omi.DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Documents written per transaction, 1 to {omi.MAX_BATCH_SIZE} (default {omi.DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args, file, dry_run, prune, as_json, default_scopes, batch_size, **options):
        if not 1 <= batch_size <= omi.MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {omi.MAX_BATCH_SIZE}.", returncode=2)
        source_name = "<stdin>" if file == "-" else Path(file).name
        settings = omi.Options(
            default_scopes=tuple(code.strip() for code in default_scopes.split(",") if code.strip()),
            unknown_scopes=options["unknown_scopes"],
            inactive_owners=options["inactive_owners"],
            ask_firebase=options["ask_firebase"],
            dry_run=dry_run,
            prune=prune,
            batch_size=batch_size,
            source_name=source_name,
        )
        try:
            lines, raw, size = omi.open_export(file, stdin=sys.stdin.buffer)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from exc
        progress = Progress(self.stderr, raw, size)
        try:
            importer = omi.OmiImporter(settings, Actor.command("importomikeys"), self.notify(progress), progress.update)
            report = importer.run(lines)
        except omi.ImportAborted as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            # Ctrl-C (SIGINT): the batch being written is rolled back, the reading process stopped.
            raise CommandError(
                "Stopped by an interrupt. Batches already written stay; run the same command again to continue.",
                returncode=130,
            ) from None
        except (OSError, EOFError) as exc:
            raise CommandError(f"Reading {file} failed: {exc}. Batches already written stay; run again.") from exc
        except IntegrityError as exc:
            # Only a concurrent writer of the same keys (a second import of the same file) gets here.
            raise CommandError(
                "A key of this batch was written by someone else meanwhile (is another import running?). "
                "Batches already written stay; run again."
            ) from exc
        finally:
            progress.close()
            if raw is not sys.stdin.buffer:
                raw.close()

        if as_json:
            self.stdout.write(json.dumps({"file": source_name, **report.as_dict()}, indent=2))
        else:
            self.stdout.write(render(source_name, report))
        if report.failed:
            refused = f"{report.refused:,} document{'' if report.refused == 1 else 's'} refused"
            raise CommandError(
                f"{refused}{'; ' + report.prune_skipped if report.prune_skipped else ''} (see the report).",
                returncode=1,
            )

    def notify(self, progress):
        def write(kind: str, text: str) -> None:
            progress.write(lambda: write_note(self.stderr, text))

        return write


class Progress:
    """A progress bar (tqdm) when stderr is a terminal, else one line every few seconds."""

    def __init__(self, stderr, raw, size: int | None):
        self.stderr = stderr
        self.raw = raw
        self.size = size
        self.bar = None
        self.last_line = time.monotonic()
        if stderr.isatty():
            out = stderr._out
            try:
                known = min(os.get_terminal_size(out.fileno())) > 0
            except (OSError, ValueError):
                known = False
            # A terminal that reports no size (a fresh pseudo-terminal) gets 100 by 20, else tqdm draws nothing.
            self.bar = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc="importing",
                file=out,
                dynamic_ncols=known,
                ncols=None if known else 100,
                nrows=None if known else 20,
            )

    def position(self) -> int | None:
        """How far into the file the import has read, in bytes; None when unknown (a pipe).

        The reading process (``omi.read_in_process``) reads the file, not this one: the
        descriptor's offset, which both share, says how far it got.
        """
        try:
            return os.lseek(self.raw.fileno(), 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):
            pass
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return None

    def update(self, report: omi.Report) -> None:
        position = self.position()
        if self.bar is not None:
            if position is not None:
                self.bar.update(position - self.bar.n)
            self.bar.set_postfix(documents=f"{report.documents:,}", refused=f"{report.refused:,}", refresh=False)
            return
        if time.monotonic() - self.last_line < PROGRESS_LINE_SECONDS:
            return
        self.last_line = time.monotonic()
        share = f" ({position / self.size:.0%} of the file)" if position is not None and self.size else ""
        rate = f", {report.documents / report.seconds:,.0f} documents/s" if report.seconds else ""
        write_note(
            self.stderr,
            f"importomikeys: {report.documents:,} documents read{share}: {report.created:,} created, "
            f"{report.updated:,} updated, {report.unchanged:,} unchanged, {report.refused:,} refused{rate}",
        )

    def write(self, emit) -> None:
        """Print a message without breaking the bar."""
        if self.bar is not None:
            self.bar.clear()
        emit()
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def render(source_name: str, report: omi.Report) -> str:
    """The report as a table: counts, then refusals by reason, repairs and unknown scopes."""
    heading = f"Import of {source_name}" + (" (dry run: nothing was written)" if report.dry_run else "")
    rows = [
        ("documents read", report.documents),
        ("keys created", report.created),
        ("keys updated", report.updated),
        ("keys unchanged", report.unchanged),
        ("keys revoked", report.revoked),
        ("  of them pruned", report.pruned),
        ("documents refused", report.refused),
        ("owners created", report.owners_created),
        ("owners disabled in Firebase", report.owners_not_eligible["firebase_disabled"]),
        ("owners deleted in Firebase", report.owners_not_eligible["firebase_deleted"]),
        ("keys given the default scopes", report.default_scopes_given),
    ]
    sections = [(heading, [(label, f"{count:,}") for label, count in rows])]
    sections.append(
        (
            "Refused, by reason",
            [
                (reason, f"{count:,}  {omi.Refusal.message(reason)}")
                for reason, count in sorted(report.refused_by_reason.items())
            ],
        )
    )
    sections.append(("Repaired, by field", [(name, f"{count:,}") for name, count in sorted(report.repaired.items())]))
    sections.append(
        (
            "Conflicts, kept as omikeys has them",
            [
                (conflict, f"{count:,}  {lifecycle.ImportConflict.MESSAGES[conflict]}")
                for conflict, count in sorted(report.conflicts.items())
            ],
        )
    )
    unknown = [(code, f"{count:,}") for code, count in sorted(report.unknown_scopes.items())]
    if report.unknown_scopes_other:
        unknown.append((omi.UNKNOWN_SCOPES_OTHER, f"{report.unknown_scopes_other:,}  beyond the first listed"))
    sections.append(("Unknown scopes", unknown))
    width = max(len(label) for _, section in sections for label, _ in section)
    lines = []
    for title, section in sections:
        if not section:
            continue
        lines += ["" if lines else None, title, *(f"  {label:<{width}}  {value}" for label, value in section)]
    if not report.firebase_asked:
        lines.append("\nFirebase was not asked (--no-firebase): owners have no emails, and were not checked.")
    if report.prune_skipped:
        lines.append(f"\nPrune skipped: {report.prune_skipped}")
    if not (report.created or report.updated or report.revoked):
        verb = "would change" if report.dry_run else "changed"
        lines.append(f"\nNothing {verb}: no key was created, updated or revoked.")
    # A rate over less than a second says more about start-up than about importing: left out.
    rate = f"{report.documents / report.seconds:,.0f} documents/s" if report.seconds >= 1 else ""
    took = f"{report.seconds:.1f}" if report.seconds >= 1 else f"{report.seconds:.2f}"
    lines.append(f"\nTook {took} s{', ' + rate if rate else ''}.")
    return "\n".join(line for line in lines if line is not None)
