"""Everything that speaks Gmail: the API client, sync, MIME parsing, sending, and the local sandbox."""
