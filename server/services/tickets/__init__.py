"""Ticket actions: the only code that changes a ticket. Each change writes its audit ``Event``.

Actions work inside the caller's transaction and never commit: a view or job decides what is one unit
of work (sync commits a page of Gmail history with its ticket changes, rule actions and Outbox rows).
The one exception is re-timing a whole mailbox (``refresh_mailbox``, ``retime_pending``), which is
many units of work: it commits each batch with the cursor that records it.
"""

from server.services.tickets.actions import (
    SYSTEM,
    Actor,
    TicketNumbers,
    add_note,
    add_tag,
    assign,
    open_ticket,
    open_tickets_of,
    policy_for,
    reassign_all,
    record_agent_reply,
    record_event,
    record_first_response,
    refresh_mailbox,
    remove_tag,
    reopen,
    request_retime,
    retime_pending,
    set_priority,
    set_sla_policy,
    set_status,
    snooze,
    take_next,
    touch,
    want_labels,
)
from server.services.tickets.merging import MergeError, candidates, merge, merged_note, survivor, unmerge
from server.services.tickets.splitting import SplitError, split

__all__ = [
    "SYSTEM",
    "Actor",
    "TicketNumbers",
    "add_note",
    "add_tag",
    "assign",
    "open_ticket",
    "open_tickets_of",
    "policy_for",
    "record_agent_reply",
    "record_event",
    "reassign_all",
    "record_first_response",
    "refresh_mailbox",
    "request_retime",
    "retime_pending",
    "remove_tag",
    "reopen",
    "set_priority",
    "set_sla_policy",
    "set_status",
    "snooze",
    "take_next",
    "touch",
    "want_labels",
    "MergeError",
    "candidates",
    "merge",
    "merged_note",
    "survivor",
    "unmerge",
    "SplitError",
    "split",
]
