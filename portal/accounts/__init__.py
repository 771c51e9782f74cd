"""Account services: passwords, users, invitations and password resets (no request or render)."""
