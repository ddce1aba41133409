"""The simulated agents of tests/bench/bench_load.py (locust, headless): each signs its add-on calls with
its own ID token, opens the card of a random ticket's email, and now and then acts on it (sets a status,
takes it, adds a note), thinking 1 to 3 seconds between clicks as a person does (BENCH_LOAD_THINK="min,max"
changes that: the single agent's run clicks more often, for more samples)."""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, between, task

DATA = json.loads(open(os.environ["BENCH_LOAD_DATA"], encoding="utf-8").read())  # noqa: SIM115
_agents = itertools.count()


THINK = [float(x) for x in os.environ.get("BENCH_LOAD_THINK", "1,3").split(",")]


class Agent(HttpUser):
    wait_time = between(THINK[0], THINK[1])

    def on_start(self) -> None:
        self.token = DATA["tokens"][next(_agents) % len(DATA["tokens"])]
        self.rng = random.Random()

    def _post(self, route: str, name: str, body: dict) -> None:
        body = {"commonEventObject": {"userLocale": "en", "timeZone": {"id": "Europe/Moscow"}}} | body
        with self.client.post(route, json=body, headers={"Authorization": f"Bearer {self.token}"}, name=name,
                              catch_response=True) as response:  # fmt: skip
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(3)
    def open_card(self) -> None:
        ticket = self.rng.choice(DATA["tickets"])
        self._post("/addon/v1/message", "card", {"postdesk": {"rfc822MessageId": ticket["message_id"]},
                                                 "gmail": {"threadId": ticket["thread_id"]}})  # fmt: skip

    @task(1)
    def act(self) -> None:
        ticket = self.rng.choice(DATA["tickets"])
        do, extra, form = self.rng.choice([
            ("set_status", {"status": "pending"}, {}),
            ("set_status", {"status": "open"}, {}),
            ("assign_me", {}, {}),
            ("add_note", {}, {"note": {"stringInputs": {"value": ["Called the customer back"]}}}),
        ])  # fmt: skip
        common = {"userLocale": "en", "timeZone": {"id": "Europe/Moscow"},
                  "parameters": {"do": do, "ticket": str(ticket["id"]), **extra}, "formInputs": form}  # fmt: skip
        self._post("/addon/v1/action", "action", {"commonEventObject": common})
