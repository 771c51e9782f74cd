"""Practice-level MFA policy: the all-or-nothing requirement, admins' requests, review queries."""
