"""Multi-factor authentication services: no request handling or rendering here.

Modules: `methods` (the registry: what each method is, how its codes are checked),
`codes` (one-time SMS/email codes and their limits), `totp` (authenticator apps), `phones`,
`crypto` (secrets at rest), `policy` (who must or may use what), `enrollment` (setting up and
switching a method), `security_tab` (what the Security tab shows), `login` (the code step of
Log In), `messages` (what is sent and the one path that delivers a code).
"""
