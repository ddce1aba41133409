"""Knowledge that stays on the server: urgency and tone of customer mail (``signals``), decided here,
with the reasons; no mail leaves the server for it."""
