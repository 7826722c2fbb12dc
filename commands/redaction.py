"""Secrets in command payloads and charger answers: the values GridLink never stores, logs or
publishes.

A new AuthorizationKey (``ChangeConfiguration``, Security Whitepaper A01) must reach the
charger in clear: the charger keeps it and sends it with every connection. GridLink keeps
only its hash (``new_key_hash`` on the command, ``password_hash`` on the station; A01.FR.08,
A01.FR.09). So wherever a payload or an answer is stored or published — the command
document, its result and ``command.<status>`` events, the configuration snapshot — it first
goes through :func:`redacted` (requests) or :func:`redacted_answer` (answers), which put
:data:`MARKER` in place of the value. The clear request exists only in memory, from the
request message to the :class:`~services.envelope.CsmsCall` that carries it to the charger;
a command whose secret is not in memory any more cannot be sent (:func:`withheld`).

Configuration keys are CiString50 (case-insensitive): ``authorizationkey`` is the same key.
"""

from __future__ import annotations

from typing import Any

#: What is stored and shown instead of a secret value.
MARKER = "********"
#: Configuration keys whose values are secrets (lower-cased). AuthorizationKey is write-only
#: on the charger too (whitepaper §7.2).
SECRET_KEYS = frozenset({"authorizationkey"})

Payload = dict[str, Any]


def is_secret_key(key: object) -> bool:
    """Is ``key`` a configuration key whose value is a secret?"""
    return isinstance(key, str) and key.lower() in SECRET_KEYS


def holds_secret(action: str, payload: Payload) -> bool:
    """Does this request carry a secret (so it can only be sent from memory)?"""
    return action == "ChangeConfiguration" and is_secret_key(payload.get("key"))


def redacted(action: str, payload: Payload) -> Payload:
    """The request as it may be stored or shown: a secret value replaced by :data:`MARKER`
    (a new dict; ``payload`` itself is not changed)."""
    if holds_secret(action, payload) and "value" in payload:
        return {**payload, "value": MARKER}
    return payload


def withheld(action: str, payload: Payload) -> bool:
    """Is this a stored request whose secret was left out (not sendable as it is)?"""
    return holds_secret(action, payload) and payload.get("value") == MARKER


def redacted_entry(entry: Payload) -> Payload:
    """A configuration key entry (``{key, value, readonly}``) with a secret value replaced."""
    if is_secret_key(entry.get("key")) and entry.get("value") is not None:
        return {**entry, "value": MARKER}
    return entry


def redacted_answer(action: str, payload: Payload | None) -> Payload | None:
    """A charger's answer as it may be stored or published: a GetConfiguration answer that
    (against the whitepaper: the key is write-only) returns an AuthorizationKey value has it
    replaced."""
    if action != "GetConfiguration" or not payload:
        return payload
    entries = payload.get("configurationKey")
    if not isinstance(entries, list):
        return payload
    return {**payload, "configurationKey": [
        redacted_entry(entry) if isinstance(entry, dict) else entry for entry in entries]}
