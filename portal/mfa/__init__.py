"""Multi-factor authentication services: no request handling or rendering here.

Modules: `codes` (one-time SMS/email codes), `totp` (authenticator apps), `phones`,
`crypto` (secrets at rest), `policy` (who must or may use what), `enrollment` (setting up
and switching a method), `login` (the code step of Log In), `messages` (what is sent).
"""
