"""The demo mailbox is realistic: 30+ threads in Russian and English with the mail a real inbox gets."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

from server.gmail.sandbox import Sandbox
from server.gmail.sandbox.seed import DEMO_MAILBOX, seed_demo_mailbox


def test_the_demo_mailbox_has_the_variety_of_a_real_shared_inbox():
    sandbox = Sandbox()
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    count = seed_demo_mailbox(sandbox, now)
    user = sandbox.user(DEMO_MAILBOX)
    messages = list(user.messages.values())
    threads = Counter(m.thread_id for m in messages)
    charsets = Counter(c for m in messages for c in m.parsed.get_charsets() if c)
    content_types = Counter(p.get_content_type() for m in messages for p in m.parsed.walk())
    subjects = [m.subject for m in messages]

    assert count == len(messages) and len(threads) >= 30
    assert sum(1 for n in threads.values() if n > 1) >= 8  # conversations with replies
    assert any(re.search("[а-яА-Я]", s) for s in subjects) and any(
        re.fullmatch(r"[ -~]+", s) for s in subjects
    )
    assert charsets["windows-1251"] >= 3 and charsets["koi8-r"] >= 3
    assert any(
        m.parsed.get_content_charset() is None and b"\xcd" in m.raw for m in messages
    )  # undeclared 8-bit
    assert content_types["text/html"] >= 6 and content_types["multipart/alternative"] >= 3
    assert sum(1 for m in messages if m.parsed.get_content_type() == "text/html") >= 3  # HTML-only
    attachments = [p.get_filename() for m in messages for p in m.parsed.walk() if p.get_filename()]
    assert len(attachments) >= 6 and any(re.search("[а-я]", name) for name in attachments)
    assert sum(1 for m in messages if "SENT" in m.label_ids) >= 8  # agent replies from the shared mailbox
    assert any(m.parsed.get("Auto-Submitted") for m in messages) and any(
        m.parsed.get("List-Id") for m in messages
    )
    oldest = min(m.internal_date for m in messages)
    assert now - timedelta(days=30) < datetime.fromtimestamp(oldest / 1000, UTC) < now
