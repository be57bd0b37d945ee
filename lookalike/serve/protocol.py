"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for request heads.

uvicorn times out an idle kept-alive connection but not one whose request head never finishes: 300 connections
that each sent half a head stayed open 70 s and more (the audit of the serve issue). Here every connection must
deliver a whole head within `HEAD_TIMEOUT` seconds of opening (or of its last answer); one that does not is
closed. A request whose head arrived is never cut (its body is bounded in size by the front door).

Written by hand: uvicorn has no such setting, and its protocol class is the documented place to extend it
(`uvicorn.Config(http=...)` takes a class).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection has to send a complete request head.
HEAD_TIMEOUT = 10.0


class HeadTimeoutH11Protocol(H11Protocol):
    """`H11Protocol` that closes a connection whose request head is not complete within `HEAD_TIMEOUT`."""

    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a whole head arrived: its request runs to the end
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next head on this connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()
