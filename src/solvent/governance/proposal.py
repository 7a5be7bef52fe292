"""Proposals: made from calibrated targets one bounded step at a time, checked, dry-run on a book, applied.

`propose` turns targets into a `solvent.proposal/1` document against one base parameters file (named by its
digest). `check_proposal` refuses, with one line naming the proposal's field, a proposal made against other
parameters, a change beyond its step, floor or cap, or one sooner than its delay after the parameter's last
applied change (governance.bounds); it returns the new parameters. `dry_run` margins a book under both and
writes nothing. `apply_proposal` checks, saves the new parameters, then appends the audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from solvent.api import compute_margin
from solvent.engine.book import Book
from solvent.errors import InputError
from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.governance import (
    AccountDiff,
    AuditRecord,
    Change,
    DiffTotals,
    InputDigest,
    ParamsDiff,
    Proposal,
)
from solvent.formats.schemas import MarketSnapshot
from solvent.governance.audit import AuditLog, last_change
from solvent.governance.bounds import BOUNDS, check_step, get_value, with_values
from solvent.governance.calibrate import Target
from solvent.governance.digest import document_sha256, params_sha256
from solvent.market.history import PriceHistory
from solvent.params import MarginParams


def propose(
    targets: Sequence[Target],
    params: MarginParams,
    *,
    proposed_by: str,
    created: datetime,
    inputs: Sequence[InputDigest] = (),
) -> Proposal:
    """Each target one bounded step from its current value (changes that move nothing are left out)."""
    changes = []
    for target in targets:
        current = get_value(params, target.path)
        proposed = BOUNDS[target.path].clip(current, target.value)
        if proposed != current:
            changes.append(
                Change(path=target.path, current=current, proposed=proposed, target=target.value, reason=target.reason)
            )
    return Proposal(
        proposed_by=proposed_by,
        created=created,
        base_params_sha256=params_sha256(params),
        inputs=list(inputs),
        changes=changes,
    )


def load_proposal(path: str) -> Proposal:
    """Read a `solvent.proposal/1` file (InputError naming the file and field)."""
    return decode_json(read_bytes(path), Proposal, path)


def check_proposal(
    proposal: Proposal, params: MarginParams, log: AuditLog | None, now: datetime, source: str = "<proposal>"
) -> MarginParams:
    """The parameters after `proposal`, or InputError: made against other parameters, a value that is not the
    current one, a step beyond its bound, a parameter changed twice, or (with a log) one already applied or a
    parameter changed too soon."""
    digest = params_sha256(params)
    if proposal.base_params_sha256 != digest:
        raise InputError(
            source,
            "base_params_sha256",
            f"made against other parameters ({proposal.base_params_sha256[:12]}...), not these ({digest[:12]}...)",
        )
    if not proposal.changes:
        raise InputError(source, "changes", "no change proposed")
    if log is not None:
        applied = [r for r in log.records() if r.proposal_sha256 == document_sha256(proposal)]
        if applied:
            raise InputError(source, "", f"already applied (audit record #{applied[0].seq})")
    seen: set[str] = set()
    for i, change in enumerate(proposal.changes):
        where = f"changes[{i}]"
        if change.path not in BOUNDS:
            raise InputError(
                source, f"{where}.path", f"{change.path} is not a governed parameter ({', '.join(BOUNDS)})"
            )
        if change.path in seen:
            raise InputError(source, f"{where}.path", f"{change.path} changed twice in one proposal")
        seen.add(change.path)
        current = get_value(params, change.path)
        if change.current != current:
            raise InputError(source, f"{where}.current", f"{change.path} is {current!r}, not {change.current!r}")
        last = last_change(log, change.path) if log is not None else None
        check_step(change.path, current, change.proposed, last, now, f"{where}.proposed", source)
    return with_values(params, {c.path: c.proposed for c in proposal.changes}, source)


def dry_run(
    proposal: Proposal,
    params: MarginParams,
    book: Book,
    market: MarketSnapshot,
    history: PriceHistory | None = None,
    *,
    inputs: Sequence[InputDigest] = (),
    source: str = "<proposal>",
) -> ParamsDiff:
    """Margin `book` under the parameters before and after (within bounds; delays are the apply step's): per
    account IM, MM, equity and liquidation before and after, and the totals. Changes nothing."""
    after = check_proposal(proposal, params, None, proposal.created, source)  # no log: the time checks nothing
    before_result = compute_margin(book, market, params, history)
    after_result = compute_margin(book, market, after, history)
    ids = [str(a) for a in before_result.account_ids]
    liq_before, liq_after = before_result.liquidatable, after_result.liquidatable
    newly = liq_after & ~liq_before
    accounts = [
        AccountDiff(
            account=account,
            im_before=ib,
            im_after=ia,
            mm_before=mb,
            mm_after=ma,
            equity_before=eb,
            equity_after=ea,
            liquidatable_before=lb,
            liquidatable_after=la,
        )
        for account, ib, ia, mb, ma, eb, ea, lb, la in zip(
            ids,
            before_result.im.tolist(),
            after_result.im.tolist(),
            before_result.mm.tolist(),
            after_result.mm.tolist(),
            before_result.equity.tolist(),
            after_result.equity.tolist(),
            liq_before.tolist(),
            liq_after.tolist(),
            strict=True,
        )
    ]
    totals = DiffTotals(
        accounts=len(ids),
        im_before=float(before_result.im.sum()),
        im_after=float(after_result.im.sum()),
        im_change=float((after_result.im - before_result.im).sum()),
        mm_before=float(before_result.mm.sum()),
        mm_after=float(after_result.mm.sum()),
        mm_change=float((after_result.mm - before_result.mm).sum()),
        newly_liquidatable=int(newly.sum()),
        no_longer_liquidatable=int((liq_before & ~liq_after).sum()),
    )
    return ParamsDiff(
        proposal_sha256=document_sha256(proposal),
        params_before_sha256=params_sha256(params),
        params_after_sha256=params_sha256(after),
        inputs=list(inputs),
        totals=totals,
        newly_liquidatable=[ids[n] for n in np.flatnonzero(newly)],
        accounts=accounts,
    )


def apply_proposal(
    proposal: Proposal,
    params: MarginParams,
    log: AuditLog,
    *,
    approved_by: str,
    now: datetime,
    save: Callable[[MarginParams], None],
    diff: ParamsDiff | None = None,
    source: str = "<proposal>",
) -> AuditRecord:
    """Check `proposal` against `params` and the log's delays, `save` the new parameters, then append and return
    the audit record (with `diff`'s digest and totals when the change was dry-run on a book)."""
    after = check_proposal(proposal, params, log, now, source)
    if diff is not None and diff.params_after_sha256 != params_sha256(after):
        raise InputError(source, "", "the dry run was of other parameters than this proposal gives")
    save(after)
    record = AuditRecord(
        seq=len(log.records()) + 1,
        proposed_by=proposal.proposed_by,
        proposed_at=proposal.created,
        approved_by=approved_by,
        applied_at=now,
        proposal_sha256=document_sha256(proposal),
        inputs=proposal.inputs,
        changes=proposal.changes,
        params_before_sha256=params_sha256(params),
        params_after_sha256=params_sha256(after),
        diff_sha256=None if diff is None else document_sha256(diff),
        diff_totals=None if diff is None else diff.totals,
    )
    log.append(record)
    return record
