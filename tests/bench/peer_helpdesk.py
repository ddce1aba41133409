"""Runs django-helpdesk's local-directory importer on a folder of .eml files and prints its timing.

Run only by bench_peer.py, with the Python of a throw-away virtual environment that has
django-helpdesk 2.6.1 (never a Postdesk dependency). A minimal Django project on SQLite, one queue
whose mailbox is a local folder; outgoing mail goes to Django's in-memory backend (so its
acknowledgements cost what building them costs, and nothing leaves the machine).

    python peer_helpdesk.py WORKDIR import FOLDER    # file every .eml in FOLDER; print JSON timing
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

WORK = Path(sys.argv[1]).resolve()
SETTINGS = {
    "SECRET_KEY": "bench-only",
    "DEBUG": False,
    "ALLOWED_HOSTS": ["localhost"],
    "USE_TZ": True,
    "SITE_ID": 1,
    "INSTALLED_APPS": [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.sites",
        "django.contrib.humanize",
        "rest_framework",
        "helpdesk",
    ],
    "DATABASES": {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(WORK / "helpdesk.sqlite3")}
    },
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "DEFAULT_FROM_EMAIL": "support@example.com",
    "ROOT_URLCONF": "peer_urls",
    "TEMPLATES": [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    "MIDDLEWARE": [],
    "LOGGING_CONFIG": None,
    # Teams need pinax-teams, which the importer does not use.
    "HELPDESK_TEAMS_MODE_ENABLED": False,
}


def main() -> None:
    import os

    # The importer files a folder in os.listdir's order (a hash order on ext4): in name order, which
    # is time order here, replies come after what they answer, as they do from a real mailbox.
    unsorted = os.listdir
    os.listdir = lambda path=".": sorted(unsorted(path))  # type: ignore[assignment,misc]
    import django
    from django.conf import settings

    settings.configure(**SETTINGS)
    django.setup()
    import types

    from django.urls import include, path

    urls = types.ModuleType("peer_urls")
    urls.urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]  # type: ignore[attr-defined]
    sys.modules["peer_urls"] = urls
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from helpdesk.email import process_queue
    from helpdesk.models import Queue, Ticket

    folder = Path(sys.argv[3]).resolve()
    queue, _created = Queue.objects.get_or_create(
        slug="support",
        defaults={
            "title": "Support",
            "email_address": "support@example.com",
            "email_box_type": "local",
            "email_box_local_dir": str(folder),
            "allow_email_submission": True,
            "logging_type": "none",
        },
    )
    queue.email_box_local_dir = str(folder)
    queue.save()
    logger = logging.getLogger("bench.helpdesk")
    logger.disabled = True
    files = len(list(folder.glob("*.eml")))
    before = Ticket.objects.count()
    started = time.perf_counter()
    process_queue(queue, logger)
    seconds = time.perf_counter() - started
    left = len(list(folder.glob("*.eml")))
    print(
        json.dumps(
            {
                "messages": files,
                "filed": files - left,
                "tickets": Ticket.objects.count() - before,
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
