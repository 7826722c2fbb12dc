"""How a charger answers a CSMS-initiated CALL: one fixed pipeline, without I/O.

Look up the action's answer function (the core profiles': :mod:`simulator.csms_calls`; the
security extension's: :mod:`simulator.security_calls`) -> check the payload against its 1.6
schema (a failure is a CALLERROR with its 1.6 code, :mod:`simulator.frames`) -> call it ->
check the result against its schema (as ``--validate`` asks) -> the CALLRESULT frame.  An
action without an answer function is CALLERROR NotSupported when it is a known action of
the other direction, NotImplemented otherwise.  Every answer is counted by the recorder.
"""

from __future__ import annotations

from typing import Any

from simulator import csms_calls, frames, security_calls
from simulator.answering import AnsweringCharger, Handler
from simulator.errors import PayloadError
from simulator.recorder import Recorder
from simulator.validation import Validation

#: The answer function of every CSMS-initiated action the simulator answers.
HANDLERS: dict[str, Handler] = {**csms_calls.HANDLERS, **security_calls.HANDLERS}


def answer(
    charger: AnsweringCharger,
    frame: list[Any],
    now: float,
    *,
    recorder: Recorder,
    validation: Validation,
) -> str:
    """The frame that answers a CALL ``[2, id, action, payload]`` from the CSMS."""
    unique_id = frame[1]
    if len(frame) < 4 or not isinstance(frame[2], str):
        recorder.csms_call("?", "FormationViolation")
        return frames.encode_error(unique_id, "FormationViolation", "bad CALL frame")
    action, payload = frame[2], frame[3]
    handler = HANDLERS.get(action)
    if handler is None:
        code = "NotSupported" if action in csms_calls.KNOWN_NOT_SUPPORTED else "NotImplemented"
        recorder.csms_call(action, code)
        return frames.encode_error(unique_id, code, f"{action} is not supported")
    try:
        frames.check(frames.CALL, action, payload)
    except PayloadError as exc:
        recorder.csms_call(action, exc.code)
        return frames.encode_error(unique_id, exc.code, exc.description)
    result = frames.to_payload(handler(charger, payload, now))
    if validation.wanted(frames.CALLRESULT, action):
        frames.check(frames.CALLRESULT, action, result)
    recorder.csms_call(action, str(result.get("status", "ok")))
    return frames.encode_result(unique_id, result)


__all__ = ["HANDLERS", "answer"]
